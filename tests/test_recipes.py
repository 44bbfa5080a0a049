"""docs/architecture.md's recipes, done: a fifth phase, a new try-on backend and a new subscriber kind, each added
with its code and one declaration, and a whole job run through each (the phase and the backend on the real CPU
models, the subscriber kind on the test phases)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from conftest import job_finished, run_sample_job
from fakes import RunLog, make_fake_registry, photo
from functions.app import build_local
from functions.status import jobs_table
from infra.folder_store import FolderStore
from infra.notifications import CHANNEL_KINDS, SettingsChannels, build_notifier
from infra.settings import Settings
from pipeline import layout
from pipeline.backends.table import BACKENDS
from pipeline.manifests import ResultManifest
from pipeline.phases import PHASES
from pipeline.registry import product_registry
from pipeline.state import load_plan, run_manifest
from pipeline.wardrobe.contracts import GarmentAnalysis
from recipes import ASKED_CATEGORIES, THUMBNAIL, TINT_PAINTER, FolderChannel


@pytest.fixture(scope="module")
def extended_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ResultManifest]:
    """One job on a phase table with the thumbnail phase and a backend table with the tint painter (planned under
    the cpu profile, which has no painter of its own): both declared once, here."""
    root = tmp_path_factory.mktemp("bucket")
    settings = Settings(profile="cpu", workers=2)
    registry = product_registry(settings.models(), table=PHASES.with_phase(THUMBNAIL),
                                backends=BACKENDS.with_row(TINT_PAINTER))
    return root, run_sample_job(build_local(root, settings, registry=registry), "r1")


def test_a_fifth_phase_runs_last_and_publishes_beside_the_others(extended_job) -> None:
    root, manifest = extended_job
    names = {f.name for f in manifest.files}
    assert {"thumbnail.png", "model.glb", "angles/000.png", "fit_report.json"} <= names  # nothing dropped
    assert list(manifest.phases) == ["avatar", "wardrobe", "fitting", "viewer3d", "thumbnail"]
    with Image.open(root / "results/r1/thumbnail.png") as thumb, Image.open(root / "results/r1/angles/000.png") as f:
        assert thumb.size == (f.size[0] // 4, f.size[1] // 4)
    registry = product_registry(table=PHASES.with_phase(THUMBNAIL))
    table = jobs_table(FolderStore(root), registry)
    assert [c.header for c in table.columns][-1] == "thumbnail"


def test_a_new_try_on_backend_serves_the_profile_its_row_names(extended_job) -> None:
    root, manifest = extended_job
    store = FolderStore(root)
    plan = load_plan(store, "r1")
    assert plan is not None and plan.backends["TryOnPainter"] == "test-tint-painter"
    fitting = run_manifest(store, "fitting", plan.run("fitting").key)
    assert fitting is not None
    tryon = fitting.data["dressing"]["tryon"]
    assert tryon["status"] == "repainted" and tryon["painter"] == "test-tint-painter 1"
    photo = fitting.data["dressing"]["photo"]  # photo.png too: the painter on the person's own photo
    assert photo["painter"] == "test-tint-painter 1" and photo["tries"] >= 1 and photo["identity"] < 0.1
    assert BACKENDS.plan("cpu")["TryOnPainter"] is None  # declared only in the test's table
    # every request (photo.png's tries and each repainted angle's) carried the wardrobe's category, not a guess left
    # to the painter
    garment_json = store.get(layout.run_prefix("wardrobe", plan.run("wardrobe").key) + "garment.json")
    garment = GarmentAnalysis.model_validate_json(garment_json).category.value
    requests = photo["tries"] + sum(tryon["tries"].values())
    assert requests >= 2 and len(ASKED_CATEGORIES) == requests and set(ASKED_CATEGORIES) == {garment}


def test_a_new_subscriber_kind_is_told_of_every_job(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    settings = Settings(notify=(f"folder:{inbox}",), workers=2)
    kinds = CHANNEL_KINDS.with_kind("folder", lambda env, target, per_job: FolderChannel(target))
    store = FolderStore(tmp_path / "bucket")
    notifier = build_notifier(store, settings, channels=SettingsChannels(store, settings, kinds=kinds))
    app = build_local(store.root, settings, registry=make_fake_registry(RunLog(tmp_path / "runs.log")),
                      notifier=notifier)
    with app.runtime:
        app.store.put(layout.incoming_image_key("c1", "person", "jpg"), photo((200, 40, 40)))
        app.store.put(layout.incoming_image_key("c1", "garment", "jpg"), photo((40, 40, 200)))
        assert app.runtime.run_until(lambda: job_finished(app.store, "c1"), timeout=60)
    told = [json.loads(p.read_text()) for p in inbox.glob("*.json")]
    assert [(e["type"], e["subject"]) for e in told] == [("dropfit.job.succeeded", "c1")]
    records = [json.loads(p.read_text()) for p in (tmp_path / "bucket/results/c1/_deliveries").glob("*.json")]
    assert [(r["kind"], r["state"]) for r in records] == [("folder", "delivered")]


def test_an_unknown_subscriber_kind_is_refused_at_start(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "bucket")
    with pytest.raises(ValueError, match="unknown subscriber kind 'pubsub'.*CHANNEL_KINDS"):
        SettingsChannels(store, Settings(notify=("pubsub:projects/p/topics/t",)))
    with pytest.raises(ValueError, match="declared twice"):
        CHANNEL_KINDS.with_kind("sqs", lambda env, target, per_job: FolderChannel(target))
