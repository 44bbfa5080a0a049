"""The try-on LoRA (CatVTON-FLUX's `pytorch_lora_weights.safetensors`): loaded into FLUX Fill's transformer,
checked that it loaded whole, and fused into the transformer's weights.

diffusers raises on wrong shapes or unknown module names, but with no `transformer.` key it loads nothing (and
only logs), and with some unknown names it wraps the rest: both would leave the painter without its LoRA while
its version names one, so both raise here too, before fusing. Fusing (`fuse_lora`, then `unload_lora_weights`)
adds the LoRA's product into each base weight and drops the adapter layers: inference then runs the plain
transformer, without the LoRA's extra matrix products.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' name for a pipeline's LoRA file


def lora_file(lora: Path) -> Path:
    """The LoRA's safetensors file: `lora` itself, or `pytorch_lora_weights.safetensors` in the folder `lora`."""
    file = lora / LORA_WEIGHT_NAME if lora.is_dir() else lora
    if not file.is_file():
        raise FileNotFoundError(f"no try-on LoRA at {file}: pull the weights")
    return file


def load_lora(pipe: Any, lora: Path, fuse: bool = True) -> frozenset[str]:
    """Load the try-on LoRA (diffusers format: keys `transformer.<module>.lora_A.weight`) into the transformer,
    check it, and fuse it into the transformer's weights (then drop the adapter layers, so inference runs the
    plain model); the modules it changed.

    diffusers raises on wrong shapes or unknown module names, but with no `transformer.` key it loads nothing
    (and only logs), and with some unknown names it wraps the rest: both would leave the painter without its
    LoRA while its version names one, so both raise here too, before fusing. Every failure is a ValueError naming
    the file."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors import safe_open

    file = lora_file(lora)
    try:
        pipe.load_lora_weights(str(file.parent), weight_name=file.name, local_files_only=True)
    except (ValueError, RuntimeError) as error:  # peft's NoMatchingPeftModuleError is a ValueError
        cause = " ".join(str(error).splitlines()[:2])
        raise ValueError(f"the try-on LoRA {file} does not fit the FLUX Fill transformer: {cause}") from error
    with safe_open(str(file), framework="pt") as weights:
        named = {key.removeprefix("transformer.").split(".lora_A.")[0] for key in weights.keys()
                 if key.startswith("transformer.") and ".lora_A." in key}
    wrapped = {name for name, module in pipe.transformer.named_modules() if isinstance(module, BaseTunerLayer)}
    if not wrapped:
        raise ValueError(f"the try-on LoRA {file} loaded nothing into the FLUX Fill transformer: it has no "
                         "diffusers-format transformer keys ('transformer.<module>.lora_A.weight')")
    if named - wrapped:
        raise ValueError(f"the try-on LoRA {file} names {len(named - wrapped)} modules the FLUX Fill transformer "
                         f"does not have, e.g. {sorted(named - wrapped)[0]!r}")
    if fuse:
        pipe.fuse_lora(components=["transformer"], lora_scale=1.0)
        pipe.unload_lora_weights()  # the adapter layers go; their product stays in the weights
    return frozenset(wrapped)
