"""Build anny's model cache once per machine: `python -m pipeline.body.prepare [--cache DIR]`.

DIR is anny's cache folder (default `<repo>/.cache/anny`, or `$DROPFIT_MODEL_CACHE/anny`). The first build
takes about a minute and writes ~790 MB; later runs find it and do nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.body.anny_model import default_cache_dir, is_prepared, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="anny's cache folder")
    args = parser.parse_args(argv)
    folder = args.cache if args.cache is not None else default_cache_dir()
    if is_prepared(folder):
        print(f"anny cache already built in {folder}: nothing to do")
        return 0
    print(f"building anny's cache in {folder} (about a minute, ~790 MB) ...", flush=True)
    seconds = prepare(folder)
    print(f"built anny's cache in {folder} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
