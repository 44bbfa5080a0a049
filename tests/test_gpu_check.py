"""tools/gpu-check, the GPU check for a lent machine, proven on the CPU: its dry run takes every step (preflight,
tiny weights, one end-to-end test per GPU adapter, the whole `gpu` job, bench.gpu_adapters) and writes one report;
asking for CUDA where there is none stops at the preflight with exit 2. The CUDA run itself needs a GPU
(docs/gpu.md, "The GPU check")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TORCHVISION_MISSING

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "tools" / "gpu-check"


def run_check(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "DROPFIT_TEST_DEVICE")}
    return subprocess.run([sys.executable, str(CHECK), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.skipif(bool(TORCHVISION_MISSING), reason=f"the multi-view model needs torchvision: {TORCHVISION_MISSING}")
@pytest.mark.timeout(600)
def test_the_dry_run_takes_every_step_on_the_cpu_and_writes_one_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = run_check("--dry-run", str(out), timeout=560)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["ok"] and report["device"] == "cpu" and report["dry_run"]
    steps = {s["step"]: s for s in report["steps"]}
    assert list(steps) == ["preflight", "weights", "adapters", "job", "bench"]
    assert all(s["status"] == "passed" and s["seconds"] > 0 for s in steps.values())
    assert report["preflight"]["cuda"] is False and report["preflight"]["packages"]["diffusers"] == "0.42.1"
    adapters = steps["adapters"]["tests"]
    assert adapters["counts"] == {"passed": 6}
    assert {Path(t["test"].split("::")[0]).name for t in adapters["tests"]} == {
        "test_gpu_tryon.py", "test_gpu_lora.py", "test_gpu_mesh.py", "test_gpu_vision.py", "test_gpu_refiner.py"}
    assert steps["job"]["tests"]["counts"] == {"passed": 1}
    bench = steps["bench"]["bench"]
    assert len(bench["rows"]) == 5 and all(r["cuda_peak_mb"] == 0.0 for r in bench["rows"])  # no CUDA here
    assert report["seconds"] < report["budget_s"]
    markdown = (out / "gpu-check.md").read_text()
    assert markdown.startswith("# GPU check: passed") and "flux-fill try-on" in markdown
    assert {p.name for p in out.iterdir()} == {"gpu-check.json", "gpu-check.md", "preflight.log", "weights.log",
                                                "adapters.log", "job.log", "bench.log"}  # 7 files: the device's 8


def test_asking_for_cuda_where_there_is_none_stops_at_the_preflight(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = run_check("--device", "cuda", str(tmp_path), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert not report["ok"] and [s["step"] for s in report["steps"]] == ["preflight"]
    assert "CUDA is not available" in report["steps"][0]["reason"]
    assert "CUDA is not available" in (tmp_path / "gpu-check.md").read_text()
