"""The phase table is the one declaration of a phase: it refuses rows that contradict it, every product phase's
function takes exactly the roles its row declares, and `PhaseIO` refuses reads and writes a row does not list."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import replace

import pytest

import pipeline.backends.protocols as protocols
from fakes import photo
from infra.folder_store import FolderStore
from pipeline.backends.planned import resolve
from pipeline.phase_api import PhaseIO, PhaseTask, UndeclaredAccess
from pipeline.phases import PHASES, Phase, PhaseTable
from pipeline.plan import InputRef
from pipeline.registry import backends_type, phases_on_gpu
from pipeline.spec import JobSpec

AVATAR, WARDROBE, FITTING, VIEWER = (PHASES[n] for n in ("avatar", "wardrobe", "fitting", "viewer3d"))


@pytest.mark.parametrize(("rows", "words"), [
    ((AVATAR, AVATAR), "taken, reserved"),
    ((replace(AVATAR, name="publish"),), "taken, reserved"),
    ((replace(AVATAR, name="person"),), "taken, reserved"),
    ((FITTING,), "avatar is not an earlier phase"),
    ((AVATAR, WARDROBE, replace(FITTING, reads=("avatar/nothing.npz",))), "which avatar does not write"),
    ((AVATAR, replace(WARDROBE, publishes=("garment.json", "report.pdf"))), "publishes 'report.pdf'"),
    ((replace(AVATAR, publishes=("mask.png",)), replace(WARDROBE, publishes=("mask.png",))), "both publish"),
    ((replace(AVATAR, inputs=("selfie",)),), "unknown inputs"),
])
def test_a_table_that_contradicts_itself_is_refused_when_built(rows: tuple[Phase, ...], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        PhaseTable(rows)


def test_needs_follow_from_inputs_and_reads() -> None:
    assert AVATAR.needs == ("person",) and WARDROBE.needs == ("garment",)
    assert FITTING.needs == ("avatar", "wardrobe") and VIEWER.needs == ("fitting",)
    assert FITTING.may_read("avatar", "body.npz") and not FITTING.may_read("avatar", "overlay.png")
    assert VIEWER.may_read("fitting", "angles/090.png") and FITTING.may_write("angles/090.png")


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.name)
def test_each_phase_function_takes_exactly_the_roles_its_row_declares(phase: Phase) -> None:
    kind = backends_type(resolve(phase.run))
    fields = {f.name: f for f in dataclasses.fields(kind)}
    assert set(fields) == set(phase.backends), f"{phase.run}'s {kind.__name__} and its row's roles differ"
    hints = typing.get_type_hints(kind)
    for role, protocol in phase.backends.items():
        assert getattr(protocols, protocol) in typing.get_args(hints[role]) or hints[role] is getattr(
            protocols, protocol), f"{phase.name}.{role} is typed {hints[role]}, its row says {protocol}"


def test_the_gpu_phases_follow_from_the_backends_the_profile_plans() -> None:
    from pipeline.backends.table import BACKENDS

    assert phases_on_gpu(BACKENDS.plan("cpu")) == ()
    safe = BACKENDS.plan("commercial-safe")
    assert phases_on_gpu(safe) == tuple(name for name, protocol in (("fitting", "TryOnPainter"),
                                                                    ("viewer3d", "MeshBuilder")) if safe[protocol])
    assert phases_on_gpu(BACKENDS.plan("gpu")) == ("avatar", "fitting", "viewer3d")
    assert phases_on_gpu(BACKENDS.plan("gpu", {"PersonLandmarker": "mediapipe-pose",
                                               "FaceEmbedder": "dlib-resnet"})) == ("fitting", "viewer3d")


def test_phase_io_refuses_what_the_row_does_not_declare(folder_store: FolderStore) -> None:
    data = photo((200, 40, 40))
    folder_store.put("incoming/j/garment.jpg", data)
    info = folder_store.head("incoming/j/garment.jpg")
    assert info is not None
    ref = InputRef(key=info.key, etag=info.etag, size=len(data), sha256="0" * 64)
    task = PhaseTask(phase="wardrobe", run_key="k", inputs={"garment": ref}, upstream={}, spec=JobSpec())
    io = PhaseIO(folder_store, task, WARDROBE)
    io.write("garment.json", b"{}")
    with pytest.raises(UndeclaredAccess, match="writes notes.txt, which its row"):
        io.write("notes.txt", b"x")
    viewer = PhaseIO(folder_store, task.model_copy(update={"phase": "viewer3d"}), VIEWER)
    with pytest.raises(UndeclaredAccess, match="reads fitting/fitting.json, which its row"):
        viewer.read_upstream("fitting", "fitting.json")


def test_the_architecture_page_shows_the_phase_table_exactly() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs/architecture.md").read_text()
    assert PHASES.markdown() in page, "docs/architecture.md's phase table drifted: paste PHASES.markdown() into it"


def test_a_container_loads_only_its_phases_models(tmp_path) -> None:
    """Under gpu, the wardrobe container must not load YOLO, SAM, InsightFace, FLUX or Hunyuan: with no weights at
    all its warm-up still works, while the fitting container's fails on the missing weights, naming the fix."""
    from pipeline.backends.config import ModelConfig
    from pipeline.backends.weights import WeightsError
    from pipeline.registry import product_registry

    config = ModelConfig(profile="gpu", weights_dir=tmp_path / "no-weights")
    registry = product_registry(config)
    registry.warm_up("wardrobe")
    with pytest.raises(WeightsError, match="dropfit weights pull"):
        registry.warm_up("fitting")
    with pytest.raises(KeyError, match="unknown phase 'fiting'"):
        registry.warm_up("fiting")
