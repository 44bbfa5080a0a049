"""The full-figure refiner on SDXL: a low-strength image-to-image pass over each view, held by its depth and the
person's photo, that turns the render of a textured body into a photograph (docs/gpu.md, "Full-figure
refinement").

`StableDiffusionXLControlNetImg2ImgPipeline` with SDXL base 1.0, the depth ControlNet for SDXL (the rasterizer's
own depth, so the figure keeps its exact shape and pose) and IP-Adapter (SDXL, ViT-H image encoder) conditioned on
the person's photo, so skin, hair and build follow the person rather than the prompt. The pass starts from the
render noised to `strength` (about 0.35: the colours and the try-on's garment carry through), and the keep mask
(the face and the background) is composited back exactly: those pixels are the render's own, bit for bit, with a
short fade into the refined body at the keep mask's edge (on the refined side).

preprocess (`depth_image`, `model_size`, `refine_inputs`) and postprocess (`refine_output`) are plain numpy and
PIL; only `predict` touches torch. The pipeline loads from the weights folder only (`local_files_only=True`),
once per refiner, on first use: float16 on CUDA (the SDXL VAE upcasts itself to decode), float32 on CPU.
Requests that share a size and a person photo run as one pipeline call (IP-Adapter takes one image per call).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.backends.gpu.tryon import feather, is_out_of_memory, release_cached_memory, resize_rgb, to_uint8
from pipeline.backends.installed import installed_version
from pipeline.backends.protocols import RefineRequest
from pipeline.backends.table import BuildContext
from pipeline.errors import RetryableError

MAX_SIDE = 1024  # SDXL's native resolution: the longer side of the refined frame
STEPS = 30  # scheduler steps for a full pass; img2img runs about strength x steps of them
GUIDANCE = 5.0
CONTROL_SCALE = 0.5  # the depth ControlNet's weight (diffusers' SDXL depth examples use 0.5)
IP_ADAPTER_SCALE = 0.6  # how much the person's photo steers the pass against the prompt
FEATHER_FRAC = 0.01  # the fade from the keep mask into the refined body, a fraction of the frame's height
NEAR_FLOOR = 0.25  # the farthest body pixel's brightness in the depth image; the background is 0
STYLE = "a full-length photograph of a person, natural skin, realistic hair, sharp focus, soft studio light"
NEGATIVE = "render, 3d, cgi, plastic skin, cartoon, painting, blurry, deformed, extra limbs"
IP_ADAPTER_WEIGHT = "ip-adapter_sdxl_vit-h.safetensors"  # under ip-adapter/sdxl_models/
IMAGE_ENCODER = "models/image_encoder"  # ViT-H, relative to the ip-adapter folder (the _vit-h adapters' encoder)


@dataclass(frozen=True)
class RefineInputs:
    """One request as the pipeline sees it, at the model's size."""

    image: np.ndarray  # (h, w, 3) uint8: the render, resized
    control: np.ndarray  # (h, w, 3) uint8: the depth image, resized
    prompt: str
    seed: int
    strength: float

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


# ---- preprocess ------------------------------------------------------------------------------------------------


def depth_image(depth: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 as the SDXL depth ControlNet was trained on (DPT's inverse depth: near is bright): the body's
    inverse depth spread over [NEAR_FLOOR, 1] x 255, the background (+inf or not finite) black."""
    body = np.isfinite(depth) & (depth > 0)
    out = np.zeros(depth.shape, dtype=np.float32)
    if body.any():
        inverse = 1.0 / depth[body]
        low, high = float(inverse.min()), float(inverse.max())
        spread = (inverse - low) / (high - low) if high > low else np.ones_like(inverse)
        out[body] = NEAR_FLOOR + (1.0 - NEAR_FLOOR) * spread
    grey = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def model_size(size: tuple[int, int], multiple: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(w, h) for a render of `size` = (w, h): its aspect, the longer side `max_side`, both multiples of
    `multiple` (at least one)."""
    width, height = size
    scale = max_side / max(width, height)
    return (max(multiple, round(width * scale / multiple) * multiple),
            max(multiple, round(height * scale / multiple) * multiple))


def check_request(request: RefineRequest) -> None:
    shape = request.render.shape
    if request.render.ndim != 3 or shape[2] != 3 or request.render.dtype != np.uint8:
        raise ValueError(f"render must be (H, W, 3) uint8, got {shape} {request.render.dtype}")
    for name in ("depth", "keep_mask"):
        if getattr(request, name).shape != shape[:2]:
            raise ValueError(f"{name} is {getattr(request, name).shape}, the render is {shape[:2]}")
    if request.person.ndim != 3 or request.person.shape[2] != 3:
        raise ValueError(f"person must be (h, w, 3), got {request.person.shape}")
    if not 0.0 < request.strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {request.strength}")


def refine_prompt(cues: str) -> str:
    """The photographic style, then the request's own cues (the view, the garment)."""
    cues = cues.strip().rstrip(".")
    return f"{STYLE}, {cues}" if cues else STYLE


def refine_inputs(request: RefineRequest, multiple: int, max_side: int = MAX_SIDE) -> RefineInputs:
    """preprocess: the render and its depth image at the model's size, the prompt with the style first."""
    check_request(request)
    size = model_size((request.render.shape[1], request.render.shape[0]), multiple, max_side)
    return RefineInputs(image=resize_rgb(request.render, size), control=resize_rgb(depth_image(request.depth), size),
                        prompt=refine_prompt(request.prompt), seed=request.seed, strength=request.strength)


# ---- postprocess -----------------------------------------------------------------------------------------------


def refine_output(request: RefineRequest, generated: np.ndarray, feather_frac: float = FEATHER_FRAC) -> np.ndarray:
    """postprocess: the generated frame at the render's size, composited so that every pixel of the keep mask
    (> 0.5) is the render's own, fading into the refined pixels over `feather_frac` of the height outside it."""
    height, width = request.render.shape[:2]
    refined = resize_rgb(generated, (width, height))
    editable = (request.keep_mask <= 0.5).astype(np.float32)
    alpha = feather(editable, round(feather_frac * height))
    mixed = request.render.astype(np.float32) + alpha[..., None] * (refined.astype(np.float32) - request.render)
    out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    kept = editable == 0
    out[kept] = request.render[kept]  # exact, whatever the float arithmetic did
    return out


# ---- the refiner -----------------------------------------------------------------------------------------------


class DiffusersViewRefiner:
    """`ViewRefiner` on SDXL + depth ControlNet + IP-Adapter folders (diffusers layout).

    Loads once, lazily, from local files only. Calls are serialized (the scheduler keeps per-call state).
    `batches` records the size of every pipeline call."""

    name = "sdxl-depth-refiner"

    def __init__(self, sdxl: Path, controlnet: Path, ip_adapter: Path, device: str | None = None,
                 steps: int = STEPS, max_side: int = MAX_SIDE, variant: str | None = "fp16",
                 ip_adapter_weight: str = IP_ADAPTER_WEIGHT, image_encoder: str = IMAGE_ENCODER) -> None:
        self.sdxl, self.controlnet, self.ip_adapter = Path(sdxl), Path(controlnet), Path(ip_adapter)
        self.device = device
        self.steps = steps
        self.max_side = max_side
        self.variant = variant
        self.ip_adapter_weight = ip_adapter_weight
        self.image_encoder = image_encoder
        self.batches: list[int] = []
        self.version = (f"{self.sdxl.name} + {self.controlnet.name} + {ip_adapter_weight} "
                        f"(diffusers {installed_version('diffusers')})")
        self._pipe: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        self.load()

    def load(self) -> Any:
        with self._lock:
            return self._pipeline()

    def refine(self, requests: list[RefineRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        with self._lock:
            pipe = self._pipeline()
            inputs = [refine_inputs(r, multiple=pipe.vae_scale_factor * 4, max_side=self.max_side) for r in requests]
            generated = self._predict(pipe, requests, inputs)
        return [refine_output(r, g) for r, g in zip(requests, generated, strict=True)]

    def _pipeline(self) -> Any:
        if self._pipe is None:
            self._pipe = load_refiner(self.sdxl, self.controlnet, self.ip_adapter, self.device, self.variant,
                                      self.ip_adapter_weight, self.image_encoder)
        return self._pipe

    def _predict(self, pipe: Any, requests: Sequence[RefineRequest], inputs: Sequence[RefineInputs]
                 ) -> list[np.ndarray]:
        """One pipeline call per group of requests with the same model size, strength and person photo."""
        out: list[np.ndarray | None] = [None] * len(inputs)
        for person, index in groups(requests, inputs):
            images = predict_in_parts(pipe, [inputs[i] for i in index], person, self.steps, self.batches)
            for i, image in zip(index, images, strict=True):
                out[i] = image
        return out  # type: ignore[return-value]


def groups(requests: Sequence[RefineRequest], inputs: Sequence[RefineInputs]
           ) -> list[tuple[np.ndarray, list[int]]]:
    """The requests' indices grouped by model size, strength and person photo (equal pixels), in first-seen
    order, each with its person photo."""
    found: list[tuple[tuple[int, int], float, np.ndarray, list[int]]] = []
    for i, (request, given) in enumerate(zip(requests, inputs, strict=True)):
        group = next((g for g in found if g[0] == given.size and g[1] == given.strength
                      and np.array_equal(g[2], request.person)), None)
        if group is None:
            found.append((given.size, given.strength, request.person, [i]))
        else:
            group[3].append(i)
    return [(person, index) for _, _, person, index in found]


def load_refiner(sdxl: Path, controlnet: Path, ip_adapter: Path, device: str | None, variant: str | None,
                 ip_adapter_weight: str = IP_ADAPTER_WEIGHT, image_encoder: str = IMAGE_ENCODER) -> Any:
    """The SDXL ControlNet img2img pipeline from `sdxl` with the ControlNet in `controlnet` and the IP-Adapter
    (and its image encoder) in `ip_adapter`, from local files only, on `device`, VAE slicing on."""
    import torch
    from diffusers import ControlNetModel, StableDiffusionXLControlNetImg2ImgPipeline

    for folder, marker in ((sdxl, "model_index.json"), (controlnet, "config.json"),
                           (ip_adapter, f"sdxl_models/{ip_adapter_weight}")):
        if not (folder / marker).is_file():
            raise FileNotFoundError(f"no {marker} in {folder}: pull the weights (`dropfit weights pull`)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    net = ControlNetModel.from_pretrained(str(controlnet), dtype=dtype, variant=variant, local_files_only=True)
    pipe = StableDiffusionXLControlNetImg2ImgPipeline.from_pretrained(
        str(sdxl), controlnet=net, dtype=dtype, variant=variant, local_files_only=True, add_watermarker=False)
    pipe = pipe.to(device)
    pipe.load_ip_adapter(str(ip_adapter), subfolder="sdxl_models", weight_name=ip_adapter_weight,
                         image_encoder_folder=image_encoder, local_files_only=True)
    pipe.set_ip_adapter_scale(IP_ADAPTER_SCALE)
    pipe.vae.enable_slicing()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def predict_in_parts(pipe: Any, batch: list[RefineInputs], person: np.ndarray, steps: int,
                     calls: list[int] | None = None) -> list[np.ndarray]:
    """`predict` on the whole batch; when the GPU runs out of memory, on each half in turn (each request has its
    own seeded generator, so a split changes nothing beyond rounding). One request that does not fit is a
    RetryableError."""
    try:
        if calls is not None:
            calls.append(len(batch))
        return predict(pipe, batch, person, steps)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        release_cached_memory()
        if len(batch) == 1:
            raise RetryableError("refiner: the GPU ran out of memory on a single view") from error
    middle = len(batch) // 2
    return [*predict_in_parts(pipe, batch[:middle], person, steps, calls),
            *predict_in_parts(pipe, batch[middle:], person, steps, calls)]


def schedule_steps(steps: int, strength: float) -> int:
    """The schedule's length: `steps`, or more where `steps` x `strength` would round to no denoising step at all
    (img2img runs int(steps x strength) of them; none would fail inside the pipeline)."""
    return max(steps, math.ceil(1.0 / strength - 1e-9))


def predict(pipe: Any, batch: list[RefineInputs], person: np.ndarray, steps: int) -> list[np.ndarray]:
    """(h, w, 3) uint8 per input, in one pipeline call; every input has the same size and strength."""
    import torch

    width, height = batch[0].size
    result = pipe(
        prompt=[b.prompt for b in batch], negative_prompt=[NEGATIVE] * len(batch),
        image=[Image.fromarray(b.image) for b in batch], control_image=[Image.fromarray(b.control) for b in batch],
        ip_adapter_image=Image.fromarray(np.ascontiguousarray(person)),
        height=height, width=width, strength=batch[0].strength,
        num_inference_steps=schedule_steps(steps, batch[0].strength), guidance_scale=GUIDANCE,
        controlnet_conditioning_scale=CONTROL_SCALE,
        generator=[torch.Generator("cpu").manual_seed(b.seed) for b in batch], output_type="np",
    )
    return list(to_uint8(result.images))


def build(ctx: BuildContext) -> DiffusersViewRefiner:
    """SDXL, the depth ControlNet and IP-Adapter from the refiner's weights folder."""
    folder = ctx.weights()
    return DiffusersViewRefiner(folder / "sdxl", folder / "controlnet-depth", folder / "ip-adapter",
                                steps=ctx.config.refine_steps, max_side=ctx.config.refine_max_side)
