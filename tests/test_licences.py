"""Profiles and licences: which backend serves each protocol, and commercial-safe refusing what it must."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from pydantic import ValidationError

import pipeline.backends.protocols as protocols
from infra.settings import Settings
from pipeline.backends.config import ModelConfig
from pipeline.backends.licences import (
    BACKEND_BY_KEY,
    BACKENDS,
    PROFILES,
    PROTOCOLS,
    ProfileError,
    backend_plan,
    check_profile,
    commercial_use,
    licence_table,
)
from pipeline.backends.weights import MODELS, WEIGHTS_BY_BACKEND, weights_for

ROOT = Path(__file__).resolve().parents[1]


def used_by(plan: dict[str, str | None]) -> set[str]:
    keys = {k for k in plan.values() if k is not None}
    return keys | {part for k in keys for part in BACKEND_BY_KEY[k].uses}


def test_the_readme_shows_the_licence_table_exactly() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Model backends and licences\n", 1)
    assert len(section) == 2, "README.md lost its '## Model backends and licences' section"
    assert licence_table() in section[1].split("\n## ", 1)[0], (
        "the README's licence table drifted from pipeline/backends/licences.py; paste licence_table() into it")


def test_the_table_is_consistent() -> None:
    assert len(BACKEND_BY_KEY) == len(BACKENDS)
    for backend in BACKENDS:
        assert backend.serves and set(backend.serves) <= set(PROTOCOLS), backend.key
        assert set(backend.uses) <= set(BACKEND_BY_KEY), backend.key
    for name in PROTOCOLS:
        assert isinstance(getattr(protocols, name, None), type), f"{name} is not a Protocol in protocols.py"
    for spec in MODELS.values():
        assert spec.backend in BACKEND_BY_KEY and spec.serves == BACKEND_BY_KEY[spec.backend].serves


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_plans_every_protocol_with_a_backend_that_serves_it(profile: str) -> None:
    plan = backend_plan(profile)
    assert list(plan) == list(PROTOCOLS)
    for protocol, key in plan.items():
        assert key is None or protocol in BACKEND_BY_KEY[key].serves


def test_cpu_uses_no_downloaded_weights() -> None:
    assert not used_by(backend_plan("cpu")) & set(WEIGHTS_BY_BACKEND)
    assert weights_for(backend_plan("cpu")) == ()


def test_gpu_picks_each_gpu_adapter() -> None:
    plan = backend_plan("gpu")
    assert plan["TryOnPainter"] == "flux-fill-tryon"
    assert plan["FaceEmbedder"] == "insightface"
    assert plan["PersonDetector"] == "ultralytics-yolo"
    assert plan["PromptSegmenter"] == "sam"
    assert plan["MeshBuilder"] == "hunyuan3d-2mv"
    assert plan["PersonLandmarker"] == "ultralytics-yolo+mediapipe-pose+sam"
    assert weights_for(plan) == tuple(MODELS)  # every pulled model is used by gpu


def test_commercial_safe_never_picks_a_non_commercial_backend() -> None:
    plan = backend_plan("commercial-safe")
    assert all(commercial_use(k) for k in used_by(plan))
    gpu, cpu = backend_plan("gpu"), backend_plan("cpu")
    for protocol in PROTOCOLS:  # the rule: the gpu choice when commercial-safe, else the cpu default
        expected = gpu[protocol] if gpu[protocol] and commercial_use(gpu[protocol]) else cpu[protocol]
        assert plan[protocol] == expected
    assert plan["PromptSegmenter"] == "sam" and plan["FaceEmbedder"] == "dlib-resnet"
    assert weights_for(plan) == ("sam",)


def test_a_composite_is_as_restricted_as_its_strictest_part() -> None:
    assert not commercial_use("ultralytics-yolo+mediapipe-pose+sam")
    assert commercial_use("mediapipe-pose") and commercial_use("sam")


@pytest.mark.parametrize(("profile", "overrides", "words"), [
    ("commercial-safe", {"FaceEmbedder": "insightface"},
     ["profile commercial-safe cannot use insightface", "non-commercial", "dlib-resnet", "profile gpu"]),
    ("commercial-safe", {"TryOnPainter": "flux-fill-tryon"}, ["cannot use flux-fill-tryon", "nothing"]),
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
        backend_plan(profile, overrides)
    for word in words:
        assert word in str(caught.value)


def test_overrides_apply_where_the_licence_rule_allows_them() -> None:
    assert backend_plan("cpu", {"FaceEmbedder": "insightface"})["FaceEmbedder"] == "insightface"
    assert backend_plan("commercial-safe", {"PromptSegmenter": "sam"})["PromptSegmenter"] == "sam"


def test_check_profile_guards_the_backends_actually_built() -> None:
    check_profile("gpu", ["insightface", "some-test-fake"])  # only commercial-safe restricts
    check_profile("commercial-safe", ["mediapipe-pose", "sam", "gemini"])
    with pytest.raises(ProfileError, match="not in the licence table"):
        check_profile("commercial-safe", ["some-test-fake"])
    with pytest.raises(ProfileError, match="cannot use ultralytics-yolo"):
        check_profile("commercial-safe", ["ultralytics-yolo"])
    check_profile("commercial-safe", ["mediapipe-pose+sam"])  # a composite's name: checked part by part
    with pytest.raises(ProfileError, match="cannot use ultralytics-yolo "):
        check_profile("commercial-safe", ["ultralytics-yolo+mediapipe-pose"])


@pytest.mark.parametrize(("module", "cls"), [
    ("pipeline.backends.mediapipe_person", "MediapipePersonLandmarker"),
    ("pipeline.backends.dlib_face", "DlibFaceEmbedder"),
    ("pipeline.backends.anny_body", "AnnyBodyFitter"),
    ("pipeline.backends.garment_mask", "ClassicalGarmentSegmenter"),
    ("pipeline.backends.gemini", "GeminiVisionLLM"),
    ("pipeline.backends.gpu.sam", "SamSegmenter"),
    ("pipeline.backends.gpu.yolo_person", "YoloPersonDetector"),
    ("pipeline.backends.gpu.insightface_face", "InsightFaceEmbedder"),
    ("pipeline.backends.gpu.tryon", "DiffusersTryOnPainter"),
])
def test_the_table_names_backends_as_the_adapters_name_themselves(module: str, cls: str) -> None:
    """check_profile gets the built adapters' `name`s: a renamed adapter must be renamed in the table too."""
    name = getattr(importlib.import_module(module), cls).name
    assert name in BACKEND_BY_KEY, f"{module}.{cls}.name = {name!r} is not a key of licences.BACKENDS"


def test_settings_refuse_to_start_with_a_forbidden_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROPFIT_PROFILE", "commercial-safe")
    monkeypatch.setenv("DROPFIT_BACKENDS", '{"FaceEmbedder": "insightface"}')
    with pytest.raises(ValidationError, match="profile commercial-safe cannot use insightface"):
        Settings()
    monkeypatch.setenv("DROPFIT_BACKENDS", "{}")
    assert Settings().models().plan() == backend_plan("commercial-safe")
    with pytest.raises(ValidationError, match="unknown profile|Input should be"):
        Settings(profile="tpu")  # type: ignore[arg-type]


def test_model_config_refuses_the_same_and_places_the_weights(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot use flux-fill-tryon"):
        ModelConfig(profile="commercial-safe", backends={"TryOnPainter": "flux-fill-tryon"})
    assert ModelConfig(cache_dir=tmp_path).weights == tmp_path / "weights"
    assert ModelConfig(cache_dir=tmp_path, weights_dir=tmp_path / "w").weights == tmp_path / "w"
    settings = Settings(profile="gpu", model_cache_dir=tmp_path, weights_dir=tmp_path / "vol")
    assert settings.models().weights == tmp_path / "vol" and settings.models().profile == "gpu"
