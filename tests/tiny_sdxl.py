"""A tiny random-weight SDXL + depth ControlNet + IP-Adapter, saved as `dropfit weights pull` lays out the real
ones under the refiner's weights key (`sdxl/`, `controlnet-depth/`, `ip-adapter/`), with the fp16 variant's file
names the real pull fetches.

The configs follow diffusers' own fast tests of `StableDiffusionXLControlNetImg2ImgPipeline`
(`get_dummy_components`): a two-level UNet and ControlNet with cross-attention of 64 (the two text encoders' 32
each), text-time embeddings of 6 x 8 + 32, a two-block VAE (scale factor 2). The IP-Adapter file is the original
(non-diffusers) layout of `ip-adapter_sdxl_vit-h.safetensors`: `image_proj.proj` / `image_proj.norm` and one
`ip_adapter.<n>.to_k_ip` / `to_v_ip` pair per cross-attention layer, n = 1, 3, 5, ... in the UNet's order; its
image encoder is a tiny CLIP vision model under `models/image_encoder`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiny_diffusers import HIDDEN, tiny_clip_tokenizer

CROSS = 2 * HIDDEN  # SDXL's cross-attention width: both text encoders' hidden states side by side
TIME_DIM = 8
IMAGE_EMBED = 32  # the tiny CLIP vision model's projection
VARIANT = "fp16"


def tiny_sdxl_refiner(folder: Path, seed: int = 0) -> Path:
    """The three parts under `folder` (seeded random weights); returns `folder`."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = save_sdxl(Path(folder) / "sdxl")
        save_controlnet(Path(folder) / "controlnet-depth", unet)
        save_ip_adapter(Path(folder) / "ip-adapter", unet)
    return Path(folder)


def unet_config() -> dict[str, Any]:
    return dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=TIME_DIM,
                transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=6 * TIME_DIM + HIDDEN,
                cross_attention_dim=CROSS, norm_num_groups=1)


def save_sdxl(folder: Path) -> Any:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = tiny_clip_tokenizer()
    text = CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=HIDDEN, intermediate_size=37,
                          num_attention_heads=4, num_hidden_layers=2, vocab_size=len(tokenizer), projection_dim=HIDDEN,
                          max_position_embeddings=256, hidden_act="gelu")
    unet = UNet2DConditionModel(**unet_config())
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        layers_per_block=1, norm_num_groups=1, sample_size=32)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       timestep_spacing="leading", steps_offset=1)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=CLIPTextModel(text), tokenizer=tokenizer,
                                     text_encoder_2=CLIPTextModelWithProjection(text), tokenizer_2=tokenizer,
                                     unet=unet, scheduler=scheduler)
    pipe.save_pretrained(folder, variant=VARIANT)
    return unet


def save_controlnet(folder: Path, unet: Any) -> None:
    from diffusers import ControlNetModel

    ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32)).save_pretrained(
        folder, variant=VARIANT)


def ip_adapter_state(unet: Any) -> dict[str, Any]:
    """The original IP-Adapter layout for `unet`'s cross-attention layers, random (to_v_ip large enough that the
    image visibly changes the output)."""
    import torch

    state = {"image_proj.proj.weight": torch.randn(4 * CROSS, IMAGE_EMBED) * 0.1,
             "image_proj.proj.bias": torch.zeros(4 * CROSS),
             "image_proj.norm.weight": torch.ones(CROSS), "image_proj.norm.bias": torch.zeros(CROSS)}
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        block = unet.get_submodule(name.rsplit(".processor", 1)[0])
        hidden = block.to_k.out_features
        state[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, CROSS) * 0.1
        state[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, CROSS) * 0.5
        key += 2
    return state


def save_ip_adapter(folder: Path, unet: Any) -> None:
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    (folder / "sdxl_models").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in ip_adapter_state(unet).items()},
              str(folder / "sdxl_models" / "ip-adapter_sdxl_vit-h.safetensors"))
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=HIDDEN, projection_dim=IMAGE_EMBED, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, image_size=32, patch_size=8, num_channels=3))
    encoder.save_pretrained(folder / "models" / "image_encoder")
