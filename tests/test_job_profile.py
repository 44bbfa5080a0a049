"""A job's profile (job.json `profile`): a deployment runs a job under its own profile or a narrower one the
job asks for, never a wider one; the profile's backends join the run keys and pick the phases' backends."""

from __future__ import annotations

import json
from functools import partial

import pytest

from fakes import photo
from infra.folder_store import FolderStore
from pipeline import layout
from pipeline.backends.config import ModelConfig
from pipeline.backends.table import BACKENDS, ProfileError
from pipeline.intake import plan_incoming_job
from pipeline.phase_api import PhaseTask
from pipeline.registry import ProfileBackends

OVERRIDES = {"PersonLandmarker": "mediapipe-pose"}


def test_a_job_keeps_the_deployments_profile_and_its_overrides() -> None:
    assert BACKENDS.job_plan("gpu", OVERRIDES, None) == ("gpu", BACKENDS.plan("gpu", OVERRIDES))
    assert BACKENDS.job_plan("gpu", OVERRIDES, "gpu") == ("gpu", BACKENDS.plan("gpu", OVERRIDES))


@pytest.mark.parametrize(("deployment", "asked"), [("gpu", "cpu"), ("gpu", "commercial-safe"),
                                                   ("commercial-safe", "cpu")])
def test_a_job_may_narrow_the_profile_and_gets_its_plain_plan(deployment: str, asked: str) -> None:
    overrides = OVERRIDES if deployment == "gpu" else {}
    assert BACKENDS.job_plan(deployment, overrides, asked) == (asked, BACKENDS.plan(asked))


@pytest.mark.parametrize(("deployment", "asked", "allowed"), [("cpu", "gpu", "cpu"),
                                                              ("cpu", "commercial-safe", "cpu"),
                                                              ("commercial-safe", "gpu", "cpu, commercial-safe")])
def test_a_job_never_widens_it(deployment: str, asked: str, allowed: str) -> None:
    with pytest.raises(ProfileError, match=f"asks for profile {asked}, but this deployment runs profile "
                                           f"{deployment}, and a job may only keep or narrow it \\({allowed}\\)"):
        BACKENDS.job_plan(deployment, {}, asked)


def drop(store: FolderStore, job_id: str, spec: dict) -> None:
    store.put(layout.incoming_spec_key(job_id), json.dumps(spec).encode())
    store.put(layout.incoming_image_key(job_id, "person", "jpg"), photo((200, 40, 40)))
    store.put(layout.incoming_image_key(job_id, "garment", "jpg"), photo((40, 40, 200)))


def test_intake_plans_the_narrower_profile_and_refuses_a_wider_one(folder_store: FolderStore) -> None:
    drop(folder_store, "narrow", {"profile": "cpu"})
    plan = plan_incoming_job(folder_store, "narrow", partial(BACKENDS.job_plan, "gpu", OVERRIDES))
    assert plan is not None and plan.error is None
    assert (plan.profile, plan.backends) == ("cpu", BACKENDS.plan("cpu"))
    assert PhaseTask.from_plan(plan, "fitting").profile == "cpu"
    default = plan_incoming_job(folder_store, "narrow", partial(BACKENDS.job_plan, "cpu", {}))
    assert default is not None and default.runs == plan.runs  # the same backends: the same runs, reused
    drop(folder_store, "wide", {"profile": "gpu"})
    refused = plan_incoming_job(folder_store, "wide", partial(BACKENDS.job_plan, "commercial-safe", {}))
    assert refused is not None and refused.error is not None and not refused.runs
    assert "asks for profile gpu" in refused.error.reason and "job.json" in refused.error.user_action


def test_the_phases_get_the_backends_of_their_jobs_profile() -> None:
    profiles = ProfileBackends(ModelConfig(profile="gpu", backends=OVERRIDES))
    assert profiles.get(None) is profiles.deployment and profiles.get("gpu") is profiles.deployment
    cpu = profiles.get("cpu")
    assert cpu is profiles.get("cpu") and cpu.plan == BACKENDS.plan("cpu")
    assert cpu.serving("TryOnPainter") is None and cpu.serving("MeshBuilder") is None  # no GPU stack for it
    with pytest.raises(ProfileError, match="may only keep or narrow"):
        ProfileBackends(ModelConfig(profile="cpu")).get("gpu")


def test_gemini_joins_the_run_keys_only_when_a_key_is_configured() -> None:
    from pydantic import SecretStr

    without = ProfileBackends(ModelConfig()).job_backends(None)[1]
    with_key = ProfileBackends(ModelConfig(gemini_api_key=SecretStr("k"))).job_backends(None)[1]
    assert without["VisionLLM"] is None and without["QualityJudge"] is None
    assert with_key["VisionLLM"] == "gemini" and with_key["QualityJudge"] == "gemini"
    assert {p for p in without if without[p] != with_key[p]} == {"VisionLLM", "QualityJudge"}
