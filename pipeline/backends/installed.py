"""Which version of a package is installed, for a backend's `version` (recorded in every run's manifest)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def installed_version(*names: str, missing: str = "not installed") -> str:
    """The version of the first of `names` (distribution names) that is installed, else `missing`."""
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return missing
