"""The backend table: each backend declared once; profiles, licences, weights and builds come from it, and a
table that contradicts itself is refused when it is built."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

import pipeline.backends.protocols as protocols
from infra.settings import Settings
from pipeline.backends.config import ModelConfig
from pipeline.backends.table import BACKENDS, PROFILES, PROTOCOLS, BackendSpec, BackendTable, ProfileError
from pipeline.backends.weights import MODELS, WEIGHTS_BY_BACKEND, weights_for

ROOT = Path(__file__).resolve().parents[1]


def used_by(plan: dict[str, str | None]) -> set[str]:
    return BACKENDS.parts(k for k in plan.values() if k is not None)


def test_the_readme_shows_the_licence_table_exactly() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Model backends and licences\n", 1)
    assert len(section) == 2, "README.md lost its '## Model backends and licences' section"
    assert BACKENDS.licence_table() in section[1].split("\n## ", 1)[0], (
        "the README's licence table drifted from pipeline/backends/table.py; run `dropfit weights list --markdown` "
        "and paste its output into the README")


def test_the_table_is_consistent() -> None:
    for row in BACKENDS.rows:
        assert ":" in row.build and row.serves, row.key
    for name in PROTOCOLS:
        assert isinstance(getattr(protocols, name, None), type), f"{name} is not a Protocol in protocols.py"
    for spec in MODELS.values():
        assert spec.serves == BACKENDS[spec.backend].serves and WEIGHTS_BY_BACKEND[spec.backend] == spec.key


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_plans_every_protocol_with_a_backend_that_serves_it(profile: str) -> None:
    plan = BACKENDS.plan(profile)
    assert list(plan) == list(PROTOCOLS)
    for protocol, key in plan.items():
        assert key is None or protocol in BACKENDS[key].serves
    for protocol in ("PersonLandmarker", "FaceEmbedder", "BodyFitter", "GarmentSegmenter"):
        assert plan[protocol] is not None, f"{profile} leaves {protocol}, which a phase needs, unserved"


def test_cpu_uses_no_downloaded_weights() -> None:
    assert not used_by(BACKENDS.plan("cpu")) & set(WEIGHTS_BY_BACKEND)
    assert weights_for(BACKENDS.plan("cpu")) == ()


def test_gpu_picks_each_gpu_adapter() -> None:
    plan = BACKENDS.plan("gpu")
    assert plan["TryOnPainter"] == "flux-fill-tryon"
    assert plan["FaceEmbedder"] == "insightface"
    assert plan["MeshBuilder"] == "hunyuan3d-2mv"
    assert plan["PersonLandmarker"] == "ultralytics-yolo+mediapipe-pose+sam"
    assert {"ultralytics-yolo", "sam", "mediapipe-pose"} <= used_by(plan)  # the person finder's parts
    parts = {part for row in BACKENDS.rows for part in row.uses}
    by_default = set(weights_for(plan)) | set(weights_for(BACKENDS.plan("commercial-safe")))
    override_only = {row.weights_key for row in BACKENDS.rows if not row.profiles and row.key not in parts}
    assert by_default | override_only == set(MODELS)  # every pulled model is planned by a profile or an override


def test_commercial_safe_never_plans_a_non_commercial_backend() -> None:
    plan = BACKENDS.plan("commercial-safe")
    assert all(BACKENDS.commercial_use(k) for k in used_by(plan))
    assert plan["FaceEmbedder"] == "dlib-resnet" and plan["PersonLandmarker"] == "mediapipe-pose"


def test_a_composite_is_as_restricted_as_its_strictest_part_and_needs_a_gpu_if_a_part_does() -> None:
    assert not BACKENDS.commercial_use("ultralytics-yolo+mediapipe-pose+sam")
    assert BACKENDS.commercial_use("mediapipe-pose") and BACKENDS.commercial_use("sam")
    assert BACKENDS.needs_gpu("ultralytics-yolo+mediapipe-pose+sam") and not BACKENDS.needs_gpu("mediapipe-pose")


@pytest.mark.parametrize(("profile", "overrides", "words"), [
    ("commercial-safe", {"FaceEmbedder": "insightface"},
     ["profile commercial-safe cannot use insightface", "non-commercial", "dlib-resnet", "profile gpu"]),
    ("commercial-safe", {"TryOnPainter": "flux-fill-tryon"}, ["cannot use flux-fill-tryon", "fashn-vton-1.5"]),
    ("commercial-safe", {"PersonLandmarker": "ultralytics-yolo+mediapipe-pose+sam"},
     ["cannot use ultralytics-yolo+mediapipe-pose+sam", "AGPL", "mediapipe-pose"]),
    ("tpu", {}, ["unknown profile 'tpu'", "cpu, gpu, commercial-safe"]),
    ("gpu", {"FaceDetector": "dlib-resnet"}, ["unknown protocol 'FaceDetector'", "FaceEmbedder"]),
    ("gpu", {"FaceEmbedder": "arcface"}, ["unknown backend 'arcface'", "dlib-resnet, insightface"]),
    ("cpu", {"FaceEmbedder": "sam"}, ["sam does not serve FaceEmbedder", "PromptSegmenter"]),
])
def test_a_plan_that_cannot_run_is_refused_saying_what_to_do(profile: str, overrides: dict[str, str],
                                                             words: list[str]) -> None:
    with pytest.raises(ProfileError) as caught:
        BACKENDS.plan(profile, overrides)
    for word in words:
        assert word in str(caught.value)


def test_overrides_apply_where_the_licence_rule_allows_them() -> None:
    assert BACKENDS.plan("cpu", {"FaceEmbedder": "insightface"})["FaceEmbedder"] == "insightface"
    assert BACKENDS.plan("commercial-safe", {"GarmentSegmenter": "sam"})["GarmentSegmenter"] == "sam"


def test_check_profile_refuses_what_the_table_does_not_know() -> None:
    BACKENDS.check_profile("gpu", ["insightface"])  # only commercial-safe restricts
    BACKENDS.check_profile("commercial-safe", ["mediapipe-pose", "sam", "gemini"])
    with pytest.raises(ProfileError, match="not in the backend table"):
        BACKENDS.check_profile("commercial-safe", ["some-test-fake"])
    with pytest.raises(ProfileError, match="cannot use ultralytics-yolo"):
        BACKENDS.check_profile("commercial-safe", ["ultralytics-yolo"])


ROW = BACKENDS["mediapipe-pose"]


@pytest.mark.parametrize(("rows", "words"), [
    ((ROW, ROW), "declared twice"),
    ((ROW, replace(ROW, key="other-pose")), "plans both mediapipe-pose and other-pose for PersonLandmarker"),
    ((replace(ROW, uses=("nowhere",)),), "uses ['nowhere']"),
    ((replace(ROW, serves=("PersonFinder",)),), "serves ('PersonFinder',)"),
    ((replace(ROW, commercial=False),), "planned under commercial-safe but its licence forbids it"),
    ((replace(ROW, profiles=("tpu",)),), "names profiles"),  # type: ignore[arg-type]
])
def test_a_table_that_contradicts_itself_is_refused_when_built(rows: tuple[BackendSpec, ...], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        BackendTable(rows)


@pytest.mark.parametrize("row", [r for r in BACKENDS.rows], ids=lambda r: r.key)
def test_each_rows_build_function_exists_and_the_adapter_is_named_as_the_row(row: BackendSpec) -> None:
    module, _, function = row.build.partition(":")
    loaded = importlib.import_module(module)
    assert callable(getattr(loaded, function, None)), row.build
    classes = [v for v in vars(loaded).values() if isinstance(v, type) and getattr(v, "name", None) == row.key]
    composite = bool(row.uses)  # its name is made of its parts' names
    assert classes or composite, f"no class in {module} is named {row.key!r}: the adapter and its row must agree"


def test_settings_refuse_to_start_with_a_forbidden_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROPFIT_PROFILE", "commercial-safe")
    monkeypatch.setenv("DROPFIT_BACKENDS", '{"FaceEmbedder": "insightface"}')
    with pytest.raises(ValidationError, match="profile commercial-safe cannot use insightface"):
        Settings()
    monkeypatch.setenv("DROPFIT_BACKENDS", "{}")
    assert BACKENDS.plan(Settings().models().profile) == BACKENDS.plan("commercial-safe")
    with pytest.raises(ValidationError, match="unknown profile|Input should be"):
        Settings(profile="tpu")  # type: ignore[arg-type]


def test_model_config_refuses_the_same_and_places_the_weights(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot use flux-fill-tryon"):
        ModelConfig(profile="commercial-safe", backends={"TryOnPainter": "flux-fill-tryon"})
    assert ModelConfig(cache_dir=tmp_path).weights == tmp_path / "weights"
    assert ModelConfig(cache_dir=tmp_path, weights_dir=tmp_path / "w").weights == tmp_path / "w"
    settings = Settings(profile="gpu", model_cache_dir=tmp_path, weights_dir=tmp_path / "vol")
    assert settings.models().weights == tmp_path / "vol" and settings.models().profile == "gpu"
