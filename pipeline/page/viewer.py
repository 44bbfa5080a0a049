"""The vendored 3D viewer: `@google/model-viewer`, installed by `make setup` into .cache/npm.

Its UMD bundle (three.js inside) is a classic script, which Chromium runs from `file://`; its ES-module
builds are not (module scripts need CORS, which a folder does not give). Where it is missing the page shows
everything else and says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MODEL_VIEWER_VERSION = "4.4.0"
PACKAGE = Path("npm/node_modules/@google/model-viewer")
BUNDLE = "dist/model-viewer-umd.min.js"


@dataclass(frozen=True)
class ViewerScript:
    """The viewer's script, or why there is none."""

    source: bytes | None
    missing: str | None = None


def find_viewer(cache: Path) -> ViewerScript:
    """The pinned model-viewer bundle under `cache` (the project's .cache), read once per call."""
    package = cache / PACKAGE
    try:
        version = json.loads((package / "package.json").read_text()).get("version")
        source = (package / BUNDLE).read_bytes()
    except (OSError, ValueError):
        return ViewerScript(None, f"@google/model-viewer {MODEL_VIEWER_VERSION} is not installed in {cache / 'npm'} "
                                  "(`make setup` installs it where npm exists)")
    if version != MODEL_VIEWER_VERSION:
        return ViewerScript(None, f"@google/model-viewer {version} is installed, this build pins "
                                  f"{MODEL_VIEWER_VERSION} (`make setup` installs it)")
    return ViewerScript(source)
