"""The backend table: the one declaration of each model backend. Plans, builds, weights and licences come from it.

A row says what the backend is (its key, which is the adapter's `name`, the model it runs), which protocols it
serves, under which licence and whether a commercial user may run it, where its weights come from (a pip
package, an API, or `Weights` that `dropfit weights pull` fetches), how it is built (`build`: a function of the
adapter's module taking a `BuildContext`), which profiles plan it, whether it needs a GPU, and which other
backends it runs inside (`uses`). From the rows come: each profile's plan (protocol -> backend), the refusals
of `commercial-safe`, the weights table (`pipeline.backends.weights.MODELS`), what `PlannedBackends` builds,
the GPU each phase takes on Modal, and the README's licence table (`licence_table()`; a test keeps them equal).

Profiles (docs/gpu.md):
- `cpu` (default): the CPU backends, whose weights ship inside pip packages; runs anywhere, offline.
- `gpu`: the real model stack on a GPU, weights from the weights folder. Several licences forbid commercial use.
- `commercial-safe`: only backends whose licence allows commercial use; the table refuses a row that says
  otherwise, and the plan refuses such an override.

Everything here is data plus small pure functions; nothing loads a model. A duplicate key, a protocol or
profile that does not exist, two rows planned for one protocol under one profile, or an unknown part is an
error when the table is built, never a silent fallback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from pipeline.backends.config import ModelConfig

Profile = Literal["cpu", "gpu", "commercial-safe"]
PROFILES: tuple[Profile, ...] = ("cpu", "gpu", "commercial-safe")

# The protocols of pipeline.backends.protocols that a backend can serve.
PROTOCOLS: tuple[str, ...] = (
    "PersonLandmarker", "FaceEmbedder", "BodyFitter", "GarmentSegmenter", "VisionLLM",
    "PersonDetector", "PromptSegmenter", "TryOnPainter", "ViewRefiner", "QualityJudge", "MeshBuilder",
)


class ProfileError(ValueError):
    """A profile, or a backend chosen for it, that cannot run: unknown names, or a licence that forbids it.
    A configuration error: raised when settings are built, before any job runs; never retried."""


@dataclass(frozen=True)
class Source:
    """One hub repo at one revision; the files matching `allow_patterns` land under `subdir` of the model."""

    repo_id: str
    revision: str  # a 40-hex commit pins it; a branch or tag ("main") does not: pin before production
    allow_patterns: tuple[str, ...]
    subdir: str = ""

    @property
    def pinned(self) -> bool:
        return re.fullmatch(r"[0-9a-f]{40}", self.revision) is not None


@dataclass(frozen=True)
class Weights:
    """A model's weights in the weights folder: its sub-folder (`key`) and the hub repos they come from."""

    key: str
    sources: tuple[Source, ...]
    approx_gb: float  # roughly, to know before pulling


class BuildContext(Protocol):
    """What a backend's `build` function gets: the config, its verified weights, and the backends it uses."""

    @property
    def config(self) -> ModelConfig: ...

    def weights(self) -> Path:
        """The backend's weights folder, verified against the weights manifest (`WeightsError` if not)."""
        ...

    def weights_list(self, path: str) -> bool:
        """Does the manifest list this optional file of the backend's weights (so it was verified)?"""
        ...

    def part(self, key: str) -> Any:
        """Another backend of the table (one of this row's `uses`), built once per process."""
        ...


@dataclass(frozen=True)
class BackendSpec:
    """One backend: what it serves, under which licence, how it is built and where its weights come from."""

    key: str  # the adapter's `name` (e.g. "mediapipe-pose"), as recorded in each run's manifest
    model: str  # the model (weights) it runs, which is what the licence is about
    serves: tuple[str, ...]  # protocol names, from PROTOCOLS
    licence: str  # of the weights (and of the code where it is the stricter one)
    commercial: bool  # may a commercial user run it without a separate licence
    why: str  # one short clause: why it is (not) commercial-safe
    weights: Weights | str  # fetched to the weights folder, or where they come from in words ("" = its parts')
    build: str  # "module:function" taking a BuildContext, returning the backend
    profiles: tuple[Profile, ...] = ()  # the profiles whose plan picks it for the protocols it serves
    gpu: bool = False  # it runs on a GPU: a phase that uses it takes a GPU container on Modal
    uses: tuple[str, ...] = ()  # the backends it runs inside it (its licence is the strictest of them all)
    requires: str | None = None  # a ModelConfig field that must be set for it to serve (an API key)
    main_thread: str | None = None  # "module:function" run on the main thread when a process plans it

    @property
    def weights_key(self) -> str | None:
        return self.weights.key if isinstance(self.weights, Weights) else None


class BackendTable:
    def __init__(self, rows: Iterable[BackendSpec]) -> None:
        self.rows: tuple[BackendSpec, ...] = tuple(rows)
        self.by_key: dict[str, BackendSpec] = {}
        for row in self.rows:
            if row.key in self.by_key:
                raise ValueError(f"backend {row.key!r} is declared twice in the backend table")
            self.by_key[row.key] = row
        self._check()

    def _check(self) -> None:
        weights: dict[str, str] = {}
        planned: dict[tuple[str, str], str] = {}
        for row in self.rows:
            if not row.serves or not set(row.serves) <= set(PROTOCOLS):
                raise ValueError(f"backend {row.key} serves {row.serves}; protocols are {PROTOCOLS}")
            if not set(row.profiles) <= set(PROFILES):
                raise ValueError(f"backend {row.key} names profiles {row.profiles}; profiles are {PROFILES}")
            unknown = [u for u in row.uses if u not in self.by_key]
            if unknown:
                raise ValueError(f"backend {row.key} uses {unknown}, which the table does not have")
            if "commercial-safe" in row.profiles and not self.commercial_use(row.key):
                raise ValueError(f"backend {row.key} is planned under commercial-safe but its licence forbids it")
            if row.weights_key is not None:
                if row.weights_key in weights:
                    raise ValueError(f"backends {weights[row.weights_key]} and {row.key} share weights key "
                                     f"{row.weights_key!r}")
                weights[row.weights_key] = row.key
            for profile in row.profiles:
                for protocol in row.serves:
                    other = planned.setdefault((profile, protocol), row.key)
                    if other != row.key:
                        raise ValueError(f"profile {profile} plans both {other} and {row.key} for {protocol}")

    def __getitem__(self, key: str) -> BackendSpec:
        return self.by_key[key]

    def with_row(self, row: BackendSpec) -> BackendTable:
        """This table and one more backend (a test's or a deployment's extension)."""
        return BackendTable((*self.rows, row))

    # ---- licences --------------------------------------------------------------------------------------

    def commercial_use(self, key: str) -> bool:
        """May a commercial user run this backend (and every backend it runs inside)?"""
        row = self.by_key[key]
        return row.commercial and all(self.commercial_use(part) for part in row.uses)

    def parts(self, keys: Iterable[str]) -> set[str]:
        """The keys and every backend they run inside, recursively."""
        found: set[str] = set()
        todo = list(keys)
        while todo:
            key = todo.pop()
            if key not in found:
                found.add(key)
                todo.extend(self.by_key[key].uses)
        return found

    def needs_gpu(self, key: str) -> bool:
        return any(self.by_key[k].gpu for k in self.parts([key]))

    # ---- plans -----------------------------------------------------------------------------------------

    def default_plan(self, profile: str) -> dict[str, str | None]:
        """Protocol -> the row the profile plans for it (None: nothing serves it; the phase does without)."""
        if profile not in PROFILES:
            raise ProfileError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
        plan: dict[str, str | None] = dict.fromkeys(PROTOCOLS)
        for row in self.rows:
            if profile in row.profiles:
                plan.update(dict.fromkeys(row.serves, row.key))
        return plan

    def _check_override(self, protocol: str, key: str) -> None:
        if protocol not in PROTOCOLS:
            raise ProfileError(f"unknown protocol {protocol!r} in the backend overrides: use one of "
                               f"{', '.join(PROTOCOLS)}")
        candidates = ", ".join(b.key for b in self.rows if protocol in b.serves)
        if key not in self.by_key:
            raise ProfileError(f"unknown backend {key!r} for {protocol}: use one of {candidates}")
        if protocol not in self.by_key[key].serves:
            raise ProfileError(f"backend {key} does not serve {protocol} (it serves "
                               f"{', '.join(self.by_key[key].serves)}); {protocol} is served by {candidates}")

    def plan(self, profile: str, overrides: Mapping[str, str] | None = None) -> dict[str, str | None]:
        """Protocol name -> the backend key that serves it under `profile` (None: nothing serves it), with
        `overrides` (protocol -> backend key) applied. Raises `ProfileError` on an unknown profile, protocol or
        backend, a backend that does not serve the protocol, or a backend the profile's licence rule forbids."""
        plan = self.default_plan(profile)
        for protocol, key in (overrides or {}).items():
            self._check_override(protocol, key)
            plan[protocol] = key
        self.check_profile(profile, (key for key in plan.values() if key is not None))
        return plan

    def check_profile(self, profile: str, keys: Iterable[str]) -> None:
        """Refuse, with a message that says what to do, a backend the profile does not allow. Only
        `commercial-safe` restricts: every backend (and each of its parts) must allow commercial use."""
        if profile not in PROFILES:
            raise ProfileError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
        if profile != "commercial-safe":
            return
        for key in keys:
            if key not in self.by_key:
                raise ProfileError(f"profile commercial-safe cannot use {key}: it is not in the backend table "
                                   "(pipeline/backends/table.py), so nothing says a commercial user may run it")
            row = self.by_key[key]
            if not self.commercial_use(key):
                safe = self.default_plan("commercial-safe")
                instead = "; ".join(f"{p} is served by {safe[p] or 'nothing (the phase does without)'}"
                                    for p in row.serves)
                raise ProfileError(f"profile commercial-safe cannot use {key} ({row.licence}: {row.why}). "
                                   f"Under commercial-safe, {instead}: drop {key} from the backend overrides "
                                   "(DROPFIT_BACKENDS), or use profile gpu, which is for non-commercial use only")

    def job_plan(self, deployment: str, overrides: Mapping[str, str] | None, requested: str | None
                 ) -> tuple[str, dict[str, str | None]]:
        """The profile a job runs under and its plan: the deployment's (with its overrides) unless job.json asks
        for a narrower profile (that profile's own plan). Raises `ProfileError` when it asks for a wider one."""
        if requested is None or requested == deployment:
            return deployment, self.plan(deployment, overrides)
        if requested not in REACH:
            raise ProfileError(f"unknown profile {requested!r}: use one of {', '.join(PROFILES)}")
        if REACH[requested] > REACH[deployment]:
            narrower = ", ".join(p for p in PROFILES if REACH[p] <= REACH[deployment])
            raise ProfileError(f"job.json asks for profile {requested}, but this deployment runs profile "
                               f"{deployment}, and a job may only keep or narrow it ({narrower})")
        return requested, self.plan(requested)

    def profiles_using(self, key: str) -> tuple[str, ...]:
        """The profiles whose default plan uses this backend (directly or inside another)."""
        return tuple(p for p in PROFILES
                     if key in self.parts(k for k in self.default_plan(p).values() if k is not None))

    def weights_for(self, plan: Mapping[str, str | None]) -> tuple[str, ...]:
        """The weights keys a plan needs (its backends' and their parts'), in table order."""
        used = self.parts(k for k in plan.values() if k is not None)
        return tuple(row.weights_key for row in self.rows if row.key in used and row.weights_key is not None)

    def licence_table(self) -> str:
        """The README's table of backends and licences, as markdown (a test keeps the README identical)."""
        lines = ["| backend | model | serves | licence | commercial use | profiles that use it | weights |",
                 "|---|---|---|---|---|---|---|"]
        for b in self.rows:
            verdict = "yes" if self.commercial_use(b.key) else f"no: {b.why}"
            profiles = ", ".join(f"`{p}`" for p in self.profiles_using(b.key)) or "none (override only)"
            if isinstance(b.weights, Weights):
                weights = f"`dropfit weights` key `{b.weights.key}`"
            else:
                weights = b.weights or "those of " + ", ".join(f"`{u}`" for u in b.uses)
            lines.append(f"| `{b.key}` | {b.model} | {', '.join(b.serves)} | {b.licence} | {verdict} | {profiles} "
                         f"| {weights} |")
        return "\n".join(lines) + "\n"


# How much a profile needs and allows, in order: cpu (no weights, every licence commercial) < commercial-safe
# (still commercial) < gpu (every model, non-commercial licences). A job may ask for its deployment's profile or
# a narrower one, never a wider one: job.json can never take a commercial-safe deployment into non-commercial
# models, nor ask a cpu deployment for weights it does not have.
REACH: dict[str, int] = {"cpu": 0, "commercial-safe": 1, "gpu": 2}

ALL: tuple[Profile, ...] = PROFILES
CPU_AND_SAFE: tuple[Profile, ...] = ("cpu", "commercial-safe")
FLUX_FILL_PARTS = ("model_index.json", "scheduler/*", "text_encoder/*", "text_encoder_2/*", "tokenizer/*",
                   "tokenizer_2/*", "transformer/*", "vae/*")  # the diffusers layout, not the single-file copies
SDXL_FP16_PARTS = ("model_index.json", "scheduler/*", "tokenizer/*", "tokenizer_2/*", "text_encoder/config.json",
                   "text_encoder/model.fp16.safetensors", "text_encoder_2/config.json",
                   "text_encoder_2/model.fp16.safetensors", "unet/config.json",
                   "unet/diffusion_pytorch_model.fp16.safetensors", "vae/config.json",
                   "vae/diffusion_pytorch_model.fp16.safetensors")  # the fp16 variant only: half the download

BACKENDS = BackendTable((
    # ---- CPU: weights inside pip packages (docs/cpu-stack.md) ---------------------------------------------
    BackendSpec("mediapipe-pose", "BlazePose (full), selfie segmentation", ("PersonLandmarker",), "Apache-2.0",
                True, "permissive", "in package `mediapipe==0.10.21`",
                build="pipeline.backends.mediapipe_person:build", profiles=CPU_AND_SAFE),
    BackendSpec("dlib-resnet", "dlib face ResNet, 5-point predictor", ("FaceEmbedder",),
                "CC0 (the models); dlib: Boost", True,
                "public-domain weights; the 68-point predictor (non-commercial data) is not used",
                "in package `face-recognition-models==0.3.0`", build="pipeline.backends.dlib_face:build",
                profiles=CPU_AND_SAFE),
    BackendSpec("anny", "Anny parametric body", ("BodyFitter",), "Apache-2.0 code, CC0 assets", True,
                "permissive", "in package `anny==0.6.2`", build="pipeline.backends.anny_body:build", profiles=ALL),
    BackendSpec("classical-garment-mask", "OpenCV image processing", ("GarmentSegmenter",),
                "BSD-3-Clause / Apache-2.0 (OpenCV)", True, "permissive", "none (no learned weights)",
                build="pipeline.backends.garment_mask:build", profiles=ALL),
    BackendSpec("gemini", "Gemini 2.5 Flash (API)", ("VisionLLM", "QualityJudge"), "Google Gemini API terms",
                True, "a paid API whose terms allow commercial use", "API (`DROPFIT_GEMINI_API_KEY`)",
                build="pipeline.backends.gemini:build", profiles=ALL, requires="gemini_api_key"),
    # ---- GPU: weights from the weights folder (`dropfit weights pull`) ------------------------------------
    BackendSpec("sam", "SAM ViT-B (`facebook/sam-vit-base`)", ("PromptSegmenter", "GarmentSegmenter"),
                "Apache-2.0", True, "permissive",
                Weights("sam", (Source("facebook/sam-vit-base", "70c1a07f894ebb5b307fd9eaaee97b9dfc16068f",
                                       ("config.json", "preprocessor_config.json", "model.safetensors")),),
                        approx_gb=0.4),
                build="pipeline.backends.gpu.sam:build", gpu=True),
    BackendSpec("ultralytics-yolo", "YOLO11n", ("PersonDetector",), "AGPL-3.0", False,
                "AGPL-3.0 copyleft; closed commercial use needs an Ultralytics enterprise licence",
                Weights("yolo", (Source("Ultralytics/YOLO11", "main", ("yolo11n.pt",)),), approx_gb=0.01),
                build="pipeline.backends.gpu.yolo_person:build", gpu=True),
    BackendSpec("insightface", "InsightFace buffalo_l (SCRFD-10G, ArcFace R50)", ("FaceEmbedder",),
                "InsightFace pretrained models licence", False, "non-commercial research use only",
                Weights("insightface", (Source("public-data/insightface", "main",
                                               ("models/buffalo_l/det_10g.onnx", "models/buffalo_l/w600k_r50.onnx")),),
                        approx_gb=0.2),
                build="pipeline.backends.gpu.insightface_face:build", profiles=("gpu",), gpu=True),
    BackendSpec("flux-fill-tryon", "FLUX.1-Fill-dev + CatVTON-FLUX try-on LoRA", ("TryOnPainter",),
                "FLUX.1 [dev] Non-Commercial; CatVTON LoRA CC BY-NC-SA", False,
                "both the base model and the LoRA are non-commercial; the FLUX.1 [dev] licence also restricts using "
                "its outputs for biometric processing, which the face-identity check on the painted views may fall "
                "under",
                Weights("tryon", (
                    Source("black-forest-labs/FLUX.1-Fill-dev", "main", FLUX_FILL_PARTS, subdir="flux-fill"),  # gated
                    Source("xiaozaa/catvton-flux-lora-alpha", "main", ("pytorch_lora_weights.safetensors",),
                           subdir="lora"),
                ), approx_gb=34.0),
                build="pipeline.backends.gpu.tryon:build", profiles=("gpu",), gpu=True),
    BackendSpec("hunyuan3d-2mv", "Hunyuan3D-2mv (shape)", ("MeshBuilder",),
                "Tencent Hunyuan 3D 2.0 Community Licence", False,
                "excludes the EU, UK and South Korea; large deployments need a licence",
                Weights("multiview", (Source("tencent/Hunyuan3D-2mv", "3a761b539b29fe4ff64714813aa9560fd66f5de0",
                                             ("hunyuan3d-dit-v2-mv/config.yaml",
                                              "hunyuan3d-dit-v2-mv/model.fp16.safetensors")),),  # not the .ckpt
                        approx_gb=5.0),
                build="pipeline.backends.gpu.hunyuan_mv:build", profiles=("gpu",), gpu=True,
                main_thread="pipeline.backends.gpu.hunyuan_mv:import_native_libraries"),
    BackendSpec("ultralytics-yolo+mediapipe-pose+sam", "YOLO finds the person, mediapipe poses it, SAM masks it",
                ("PersonLandmarker",), "AGPL-3.0 (via ultralytics-yolo)", False, "runs YOLO11n", "",
                build="pipeline.backends.gpu.person:build", profiles=("gpu",),
                uses=("ultralytics-yolo", "mediapipe-pose", "sam")),
    # ---- GPU, commercial use allowed (docs/gpu.md, "Commercial-safe photoreal stack") ---------------------
    BackendSpec("fashn-vton-1.5", "FASHN VTON v1.5 (maskless, 576x864) + DWPose-l pose", ("TryOnPainter",),
                "Apache-2.0 (FASHN VTON v1.5 weights and code; DWPose and its YOLOX-L detector)", True,
                "permissive; FASHN's human parser (research-only NVIDIA licence) is not used",
                Weights("fashn", (
                    Source("fashn-ai/fashn-vton-1.5", "main", ("model.safetensors",)),
                    Source("yzd-v/DWPose", "f7c16a3d45ad3783db41471848c80fbc281cabac",
                           ("yolox_l.onnx", "dw-ll_ucoco_384.onnx"), subdir="dwpose"),
                ), approx_gb=2.3),
                build="pipeline.backends.gpu.fashn_tryon:build", profiles=("commercial-safe",), gpu=True),
    BackendSpec("triposr", "TripoSR (shape, from the front view) + DINO ViT-B/16", ("MeshBuilder",),
                "MIT (TripoSR code and weights); Apache-2.0 (the DINO ViT-B/16 encoder, `facebook/dino-vitb16`)",
                True, "permissive; single-view, so the back is the model's own guess",
                Weights("triposr", (
                    Source("stabilityai/TripoSR", "main", ("config.yaml", "model.ckpt")),
                    Source("facebook/dino-vitb16", "main", ("config.json",), subdir="dino-vitb16"),  # its shape only
                ), approx_gb=1.7),
                build="pipeline.backends.gpu.triposr_mesh:build", profiles=("commercial-safe",), gpu=True,
                main_thread="pipeline.backends.gpu.triposr_mesh:import_native_libraries"),
    BackendSpec("sdxl-depth-refiner", "SDXL base 1.0 img2img + depth ControlNet (SDXL) + IP-Adapter SDXL (ViT-H)",
                ("ViewRefiner",),
                "CreativeML Open RAIL++-M (SDXL base, the depth ControlNet); Apache-2.0 (IP-Adapter and its image "
                "encoder)", True,
                "commercial use allowed under RAIL++-M's use restrictions (its Attachment A), passed on to users",
                Weights("refiner", (
                    Source("stabilityai/stable-diffusion-xl-base-1.0", "main", SDXL_FP16_PARTS, subdir="sdxl"),
                    Source("diffusers/controlnet-depth-sdxl-1.0", "main",
                           ("config.json", "diffusion_pytorch_model.fp16.safetensors"), subdir="controlnet-depth"),
                    Source("h94/IP-Adapter", "main", ("sdxl_models/ip-adapter_sdxl_vit-h.safetensors",
                                                      "models/image_encoder/config.json",
                                                      "models/image_encoder/model.safetensors"), subdir="ip-adapter"),
                ), approx_gb=12.6),
                build="pipeline.backends.gpu.refiner:build", profiles=("gpu", "commercial-safe"), gpu=True),
    BackendSpec("trellis2-4b", "TRELLIS.2-4B (shape, from the front view) + DINOv3 ViT-L/16", ("MeshBuilder",),
                "MIT (TRELLIS.2 code and weights, TRELLIS-image-large decoder); DINOv3 License (the image encoder: "
                "commercial use allowed, no military, ITAR or sanctioned end uses)", True,
                "commercial use allowed; DINOv3's weights are gated behind Meta's licence, so a deployment opts in "
                "with DROPFIT_BACKENDS",
                Weights("trellis2", (
                    Source("microsoft/TRELLIS.2-4B", "main", ("pipeline.json", "ckpts/ss_flow_img_dit_1_3B_64_bf16.*",
                                                             "ckpts/slat_flow_img2shape_dit_1_3B_512_bf16.*",
                                                             "ckpts/slat_flow_img2shape_dit_1_3B_1024_bf16.*",
                                                             "ckpts/shape_dec_next_dc_f16c32_fp16.*")),  # no texture
                    Source("microsoft/TRELLIS-image-large", "main", ("ckpts/ss_dec_conv3d_16l8_fp16.json",
                                                                     "ckpts/ss_dec_conv3d_16l8_fp16.safetensors"),
                           subdir="microsoft/TRELLIS-image-large"),  # where pipeline.json's relative path points
                    Source("facebook/dinov3-vitl16-pretrain-lvd1689m", "main",  # gated: accept Meta's licence
                           ("config.json", "model.safetensors", "preprocessor_config.json"), subdir="dinov3"),
                ), approx_gb=10.1),
                build="pipeline.backends.gpu.trellis_mesh:build", gpu=True),
))
