"""Which backend serves each protocol under each profile, and whether a commercial user may run it.

Everything here is data plus small pure functions; nothing loads a model. The README's licence table is
rendered from `BACKENDS` (`licence_table()`), and a test keeps the two identical.

Profiles (docs/gpu.md):
- `cpu` (default): the CPU backends, whose weights ship inside pip packages; runs anywhere, offline.
- `gpu`: the real model stack on a GPU (try-on diffusion, YOLO, SAM, InsightFace, multi-view 3D), weights
  loaded from the weights folder (`dropfit weights pull`). Several of these licences forbid commercial use.
- `commercial-safe`: for each protocol, the `gpu` choice when its licence allows commercial use, else the
  `cpu` choice. Today that is the CPU backends plus SAM and Gemini. It refuses (with `ProfileError`) any
  override or backend in use whose licence does not allow commercial use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Profile = Literal["cpu", "gpu", "commercial-safe"]
PROFILES: tuple[Profile, ...] = ("cpu", "gpu", "commercial-safe")

# The protocols of pipeline.backends.protocols that a backend can serve.
PROTOCOLS: tuple[str, ...] = (
    "PersonLandmarker", "FaceEmbedder", "BodyFitter", "GarmentSegmenter", "VisionLLM",
    "PersonDetector", "PromptSegmenter", "TryOnPainter", "QualityJudge", "MeshBuilder",
)


class ProfileError(ValueError):
    """A profile, or a backend chosen for it, that cannot run: unknown names, or a licence that forbids it.
    A configuration error: raised when settings are built, before any job runs; never retried."""


@dataclass(frozen=True)
class BackendLicence:
    """One backend: what it serves, under which licence, and whether a commercial user may run it."""

    key: str  # the adapter's `name` (e.g. "mediapipe-pose"), as recorded in each run's manifest
    model: str  # the model (weights) it runs, which is what the licence is about
    serves: tuple[str, ...]  # protocol names, from PROTOCOLS
    licence: str  # of the weights (and of the code where it is the stricter one)
    commercial: bool  # may a commercial user run it without a separate licence
    why: str  # one short clause: why it is (not) commercial-safe
    weights: str  # where its weights come from: a pip package, a `dropfit weights` key, an API ("" = its parts')
    uses: tuple[str, ...] = ()  # the backends it is made of (its licence is the strictest of them all)


BACKENDS: tuple[BackendLicence, ...] = (
    # ---- CPU: weights inside pip packages (docs/cpu-stack.md) ---------------------------------------------
    BackendLicence("mediapipe-pose", "BlazePose (full), selfie segmentation", ("PersonLandmarker",), "Apache-2.0",
                   True, "permissive", "in package `mediapipe==0.10.21`"),
    BackendLicence("dlib-resnet", "dlib face ResNet, 5-point predictor", ("FaceEmbedder",),
                   "CC0 (the models); dlib: Boost", True,
                   "public-domain weights; the 68-point predictor (non-commercial data) is not used",
                   "in package `face-recognition-models==0.3.0`"),
    BackendLicence("anny", "Anny parametric body", ("BodyFitter",), "Apache-2.0 code, CC0 assets", True,
                   "permissive", "in package `anny==0.6.2`"),
    BackendLicence("classical-garment-mask", "OpenCV image processing", ("GarmentSegmenter",),
                   "BSD-3-Clause / Apache-2.0 (OpenCV)", True, "permissive", "none (no learned weights)"),
    BackendLicence("gemini", "Gemini 2.5 Flash (API)", ("VisionLLM", "QualityJudge"), "Google Gemini API terms",
                   True, "a paid API whose terms allow commercial use", "API (`DROPFIT_GEMINI_API_KEY`)"),
    # ---- GPU: weights from the weights folder (`dropfit weights pull`) ------------------------------------
    BackendLicence("sam", "SAM ViT-B (`facebook/sam-vit-base`)", ("PromptSegmenter",), "Apache-2.0", True,
                   "permissive", "`dropfit weights` key `sam`"),
    BackendLicence("ultralytics-yolo", "YOLO11n", ("PersonDetector",), "AGPL-3.0", False,
                   "AGPL-3.0 copyleft; closed commercial use needs an Ultralytics enterprise licence",
                   "`dropfit weights` key `yolo`"),
    BackendLicence("insightface", "InsightFace buffalo_l (SCRFD-10G, ArcFace R50)", ("FaceEmbedder",),
                   "InsightFace pretrained models licence", False, "non-commercial research use only",
                   "`dropfit weights` key `insightface`"),
    BackendLicence("flux-fill-tryon", "FLUX.1-Fill-dev + CatVTON-FLUX try-on LoRA", ("TryOnPainter",),
                   "FLUX.1 [dev] Non-Commercial; CatVTON LoRA CC BY-NC-SA", False,
                   "both the base model and the LoRA are non-commercial", "`dropfit weights` key `tryon`"),
    BackendLicence("hunyuan3d-2mv", "Hunyuan3D-2mv (shape)", ("MeshBuilder",),
                   "Tencent Hunyuan 3D 2.0 Community Licence", False,
                   "excludes the EU, UK and South Korea; large deployments need a licence",
                   "`dropfit weights` key `multiview`"),
    BackendLicence("ultralytics-yolo+mediapipe-pose+sam", "YOLO finds the person, mediapipe poses it, SAM masks it",
                   ("PersonLandmarker",), "AGPL-3.0 (via ultralytics-yolo)", False, "runs YOLO11n", "",
                   uses=("ultralytics-yolo", "mediapipe-pose", "sam")),
)
BACKEND_BY_KEY: dict[str, BackendLicence] = {b.key: b for b in BACKENDS}

# What serves each protocol under `cpu` and `gpu`; None = nothing (the phase does without: renders stay as
# rendered, the viewer back-projects the views, the person is found by the landmarker). Gemini serves only
# when an API key is configured; that is the registry's business, not the plan's.
_CPU: dict[str, str | None] = {  # in PROTOCOLS order
    "PersonLandmarker": "mediapipe-pose", "FaceEmbedder": "dlib-resnet", "BodyFitter": "anny",
    "GarmentSegmenter": "classical-garment-mask", "VisionLLM": "gemini", "PersonDetector": None,
    "PromptSegmenter": None, "TryOnPainter": None, "QualityJudge": "gemini", "MeshBuilder": None,
}
_GPU: dict[str, str | None] = {
    **_CPU,
    "PersonLandmarker": "ultralytics-yolo+mediapipe-pose+sam", "FaceEmbedder": "insightface",
    "PersonDetector": "ultralytics-yolo", "PromptSegmenter": "sam", "TryOnPainter": "flux-fill-tryon",
    "MeshBuilder": "hunyuan3d-2mv",
}


def commercial_use(key: str) -> bool:
    """May a commercial user run this backend (and every backend it runs inside)?"""
    backend = BACKEND_BY_KEY[key]
    return backend.commercial and all(commercial_use(part) for part in backend.uses)


def _default_plan(profile: str) -> dict[str, str | None]:
    if profile == "cpu":
        return dict(_CPU)
    if profile == "gpu":
        return dict(_GPU)
    if profile == "commercial-safe":
        return {p: gpu if gpu is None or commercial_use(gpu) else _CPU[p] for p, gpu in _GPU.items()}
    raise ProfileError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")


def _check_override(protocol: str, key: str) -> None:
    if protocol not in PROTOCOLS:
        raise ProfileError(f"unknown protocol {protocol!r} in the backend overrides: use one of "
                           f"{', '.join(PROTOCOLS)}")
    candidates = ", ".join(b.key for b in BACKENDS if protocol in b.serves)
    if key not in BACKEND_BY_KEY:
        raise ProfileError(f"unknown backend {key!r} for {protocol}: use one of {candidates}")
    if protocol not in BACKEND_BY_KEY[key].serves:
        raise ProfileError(f"backend {key} does not serve {protocol} (it serves "
                           f"{', '.join(BACKEND_BY_KEY[key].serves)}); {protocol} is served by {candidates}")


def backend_plan(profile: str, overrides: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Protocol name -> the backend key that serves it under `profile` (None: nothing serves it), with
    `overrides` (protocol -> backend key) applied. Raises `ProfileError` on an unknown profile, protocol or
    backend, a backend that does not serve the protocol, or a backend the profile's licence rule forbids."""
    plan = _default_plan(profile)
    for protocol, key in (overrides or {}).items():
        _check_override(protocol, key)
        plan[protocol] = key
    check_profile(profile, (key for key in plan.values() if key is not None))
    return plan


def check_profile(profile: str, backends_in_use: Iterable[str]) -> None:
    """Refuse, with a message that says what to do, a backend the profile does not allow. Only
    `commercial-safe` restricts: every backend must be in the licence table and allow commercial use.
    `backends_in_use` are backend keys or the built adapters' `name`s; a composite's name ("a+b+c") that is
    not in the table is checked part by part."""
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    if profile != "commercial-safe":
        return
    names = [name for key in backends_in_use for name in ([key] if key in BACKEND_BY_KEY else key.split("+"))]
    for key in names:
        backend = BACKEND_BY_KEY.get(key)
        if backend is None:
            raise ProfileError(f"profile commercial-safe cannot use {key}: it is not in the licence table "
                               "(pipeline/backends/licences.py), so nothing says a commercial user may run it")
        if not commercial_use(key):
            safe = _default_plan("commercial-safe")
            instead = "; ".join(f"{p} is served by {safe[p] or 'nothing (the phase does without)'}"
                                for p in backend.serves)
            raise ProfileError(f"profile commercial-safe cannot use {key} ({backend.licence}: {backend.why}). "
                               f"Under commercial-safe, {instead}: drop {key} from the backend overrides "
                               "(DROPFIT_BACKENDS), or use profile gpu, which is for non-commercial use only")


# How much a profile needs and allows, in order: cpu (no weights, every licence commercial) < commercial-safe
# (SAM's weights too, still commercial) < gpu (every model, non-commercial licences). A job may ask for its
# deployment's profile or a narrower one, never a wider one: job.json can never take a commercial-safe
# deployment into non-commercial models, nor ask a cpu deployment for weights it does not have.
REACH: dict[str, int] = {"cpu": 0, "commercial-safe": 1, "gpu": 2}


def job_backends(deployment: str, overrides: Mapping[str, str] | None, requested: str | None
                 ) -> tuple[str, dict[str, str | None]]:
    """The profile a job runs under and its plan: the deployment's (with its overrides) unless job.json asks
    for a narrower profile (that profile's own plan). Raises `ProfileError` when it asks for a wider one."""
    if requested is None or requested == deployment:
        return deployment, backend_plan(deployment, overrides)
    if requested not in REACH:
        raise ProfileError(f"unknown profile {requested!r}: use one of {', '.join(PROFILES)}")
    if REACH[requested] > REACH[deployment]:
        narrower = ", ".join(p for p in PROFILES if REACH[p] <= REACH[deployment])
        raise ProfileError(f"job.json asks for profile {requested}, but this deployment runs profile {deployment}, "
                           f"and a job may only keep or narrow it ({narrower})")
    return requested, backend_plan(requested)


def profiles_using(key: str) -> tuple[str, ...]:
    """The profiles whose default plan uses this backend (directly or inside another)."""
    used = []
    for profile in PROFILES:
        keys = {k for k in _default_plan(profile).values() if k is not None}
        keys |= {part for k in keys for part in BACKEND_BY_KEY[k].uses}
        if key in keys:
            used.append(profile)
    return tuple(used)


def licence_table() -> str:
    """The README's table of backends and licences, as markdown (a test keeps the README identical)."""
    lines = ["| backend | model | serves | licence | commercial use | profiles that use it | weights |",
             "|---|---|---|---|---|---|---|"]
    for b in BACKENDS:
        verdict = "yes" if commercial_use(b.key) else f"no: {b.why}"
        profiles = ", ".join(f"`{p}`" for p in profiles_using(b.key)) or "none (override only)"
        weights = b.weights if not b.uses else "those of " + ", ".join(f"`{u}`" for u in b.uses)
        lines.append(f"| `{b.key}` | {b.model} | {', '.join(b.serves)} | {b.licence} | {verdict} | {profiles} "
                     f"| {weights} |")
    return "\n".join(lines) + "\n"
