"""The cost of every job: usage measured per run, shared runs split over a batch's jobs, priced from the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import RunLog, make_fake_registry, photo
from functions.app import build_local
from functions.status import job_detail
from infra.settings import Settings
from pipeline import layout
from pipeline.cost import Prices, Usage, job_cost
from pipeline.manifests import BatchReport, ResultManifest
from pipeline.state import read_model, run_manifest

PRICE = 0.001  # US$ per core-second: large, so the figures are far from rounding


@pytest.mark.parametrize(("cuda_name", "key"), [
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"), ("NVIDIA A100-PCIE-40GB", "A100-40GB"), ("NVIDIA H100 80GB HBM3", "H100"),
    ("NVIDIA L40S", "L40S"), ("NVIDIA L4", "L4"), ("Tesla T4", "T4"), ("NVIDIA H200", "H200"), ("NVIDIA A10G", "A10G"),
])
def test_a_gpu_is_priced_by_the_table_row_its_cuda_name_names(cuda_name: str, key: str) -> None:
    prices = Prices()
    assert prices.gpu_price(cuda_name) == prices.gpu_per_s[key]


def test_an_unknown_gpu_is_left_unpriced_and_said_so() -> None:
    cost = job_cost({"fitting": Usage(wall_s=2.0, cpu_s=0.5, gpu_s=2.0, gpu="Radeon 9000")}, {}, "own", Prices())
    assert cost.usd == 0.0 and cost.gpu_s == 2.0 and "no price for GPU 'Radeon 9000'" in cost.priced


def test_cpu_time_costs_nothing_without_a_cpu_price_and_the_manifest_says_why() -> None:
    usage = {"avatar": Usage(wall_s=1.0, cpu_s=0.8),
             "fitting": Usage(wall_s=3.0, cpu_s=2.5, gpu_s=3.0, gpu="NVIDIA L4")}
    free = job_cost(usage, {"avatar": 0.5}, "half the avatar", Prices())
    assert free.cpu_s == pytest.approx(0.4 + 2.5) and free.usd == pytest.approx(3.0 * Prices().gpu_per_s["L4"])
    assert "no CPU price is configured" in free.priced
    priced = job_cost(usage, {"avatar": 0.5}, "half the avatar", Prices(cpu_core_per_s=PRICE))
    assert priced.usd == pytest.approx(free.usd + (0.4 + 2.5) * PRICE)
    assert priced.phases["avatar"].share == 0.5 and priced.split == "half the avatar"


def test_a_catalog_splits_shared_runs_over_its_jobs_and_the_report_sums_them(tmp_path: Path) -> None:
    settings = Settings(workers=2, lease_s=5, retry_base_s=0.05, cpu_core_price_per_s=PRICE)
    app = build_local(tmp_path / "bucket", settings, registry=make_fake_registry(RunLog(tmp_path / "runs.log")))
    store = app.store
    with app.runtime:
        for name, colour in (("alice.jpg", (200, 40, 40)), ("bob.jpg", (40, 160, 60))):
            store.put(f"{layout.catalog_people_prefix('c')}{name}", photo(colour))
        for name, colour in (("shirt.jpg", (40, 40, 200)), ("top.jpg", (200, 200, 40)), ("tee.jpg", (90, 20, 90))):
            store.put(f"{layout.catalog_garments_prefix('c')}{name}", photo(colour))
        store.put(layout.batch_marker_key("c"), b"{}")
        assert app.runtime.run_until(lambda: store.head(layout.batch_report_key("c")) is not None, timeout=60)
    report = read_model(store, layout.batch_report_key("c"), BatchReport)
    assert report is not None and report.succeeded == 6
    costs = []
    for entry in report.jobs:
        manifest = read_model(store, layout.result_manifest_key(entry.job_id), ResultManifest)
        assert manifest is not None and manifest.cost is not None
        cost = manifest.cost
        shares = {name: phase.share for name, phase in cost.phases.items()}
        assert shares == {"avatar": pytest.approx(1 / 3), "wardrobe": pytest.approx(1 / 2), "fitting": 1.0,
                          "viewer3d": 1.0}
        for name, summary in manifest.phases.items():
            run = run_manifest(store, name, summary.run_key)
            assert run is not None and run.usage is not None and summary.usage == run.usage
            assert run.usage.wall_s == run.duration_s and run.usage.cpu_s >= 0 and run.usage.gpu_s == 0
            assert cost.phases[name].cpu_s == pytest.approx(run.usage.cpu_s * shares[name], abs=1e-4)
        assert cost.usd == pytest.approx(cost.cpu_s * PRICE, abs=1e-6)  # cpu_s is rounded to 0.1 ms
        assert "3 pairs with this person photo" in cost.split and "2 with this garment photo" in cost.split
        costs.append(cost)
    assert report.cost is not None and report.cost.jobs == 6
    assert report.cost.cpu_s == pytest.approx(sum(c.cpu_s for c in costs), abs=1e-3)
    assert report.cost.usd == pytest.approx(sum(c.usd for c in costs), abs=1e-7)
    # each run counted once over the batch: the split parts add up to the runs' own CPU time
    runs = {(name, s.run_key): s.usage for e in report.jobs
            for name, s in read_model(store, layout.result_manifest_key(e.job_id), ResultManifest).phases.items()}
    assert report.cost.cpu_s == pytest.approx(sum(u.cpu_s for u in runs.values() if u is not None), abs=1e-3)
    detail = job_detail(store, app.registry, report.jobs[0].job_id, settings=settings)
    assert any(row == "cost" for row in detail.columns[0].cells)


def test_a_single_job_counts_its_runs_whole_and_tells_the_cost_to_subscribers(tmp_path: Path) -> None:
    from conftest import job_finished

    app = build_local(tmp_path / "bucket", Settings(workers=2, lease_s=5),
                      registry=make_fake_registry(RunLog(tmp_path / "runs.log")))
    with app.runtime:
        app.store.put(layout.incoming_image_key("one", "person", "jpg"), photo((200, 40, 40)))
        app.store.put(layout.incoming_image_key("one", "garment", "jpg"), photo((40, 40, 200)))
        assert app.runtime.run_until(lambda: job_finished(app.store, "one"), timeout=60)
        assert app.runtime.wait_idle(30)
    manifest = read_model(app.store, layout.result_manifest_key("one"), ResultManifest)
    assert manifest is not None and manifest.cost is not None
    assert {p.share for p in manifest.cost.phases.values()} == {1.0} and "single job" in manifest.cost.split
    assert manifest.cost.usd == 0.0 and "no CPU price" in manifest.cost.priced
    import json

    event = json.loads(app.store.get(layout.result_event_key("one", "succeeded")))
    assert event["data"]["cost"] == {"usd": 0.0, "cpu_s": manifest.cost.cpu_s, "gpu_s": 0.0}
    page = app.store.get(layout.result_prefix("one") + "index.html").decode()
    assert "Cost: <strong>$0.000000</strong>" in page and "no CPU price is configured" in page
