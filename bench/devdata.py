"""Where the development photos are (../shared/data/tryon, or DROPFIT_DEV_DATA), for benchmarks and tests.

They are data, not project code: read from there, never copied into the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

DEV_DATA = Path(os.environ.get("DROPFIT_DEV_DATA", Path(__file__).resolve().parents[2] / "shared/data/tryon"))
SUFFIXES = (".jpg", ".jpeg", ".png")


def dev_photos(kind: str) -> list[Path]:
    """The dev photos of one kind ('people' or 'garments'), sorted; empty when the folder is absent."""
    folder = DEV_DATA / kind
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in SUFFIXES)
