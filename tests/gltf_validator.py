"""Run the Khronos glTF validator (npm `gltf-validator`) on GLB bytes, through `tools/gltf-validate.mjs`.

The package is installed per checkout, never globally:
    npm install --prefix .cache/npm gltf-validator@2.0.0-dev.3.10
`validate_glb` skips the calling test, with the reason, when node or the package is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gltf-validate.mjs"
VALIDATOR_VERSION = "2.0.0-dev.3.10"
VALIDATOR_DIR = ROOT / ".cache" / "npm" / "node_modules" / "gltf-validator"
INSTALL = f"npm install --prefix .cache/npm gltf-validator@{VALIDATOR_VERSION}"


def validator_missing() -> str | None:
    """Why the validator cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (needed for the Khronos glTF validator)"
    if not (VALIDATOR_DIR / "package.json").is_file():
        return f"gltf-validator is not installed in {VALIDATOR_DIR}; run `{INSTALL}` in the repository root"
    return None


def validate_glb(data: bytes, timeout_s: float = 120.0) -> dict[str, Any]:
    """The validator's JSON report for a GLB (keys `issues`, `info`, ...); skips when it cannot run."""
    reason = validator_missing()
    if reason is not None:
        pytest.skip(reason)
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(SCRIPT), "-", str(VALIDATOR_DIR)],
        input=data, capture_output=True, timeout=timeout_s, check=False,
    )
    if done.returncode not in (0, 1):  # 1 only means "the report has errors": the report is still printed
        raise RuntimeError(f"gltf-validate.mjs exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return json.loads(done.stdout)


def issue_codes(report: dict[str, Any], severity: int | None = None) -> list[str]:
    """The codes of the report's messages (severity 0 error, 1 warning, 2 info, 3 hint; None for all)."""
    messages = report["issues"]["messages"]
    return [m["code"] for m in messages if severity is None or m["severity"] == severity]
