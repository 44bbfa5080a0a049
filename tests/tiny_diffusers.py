"""Tiny random-weight diffusers pipelines built from configs, saved in the real on-disk layout.

The GPU adapters load them with `from_pretrained(path, local_files_only=True)` exactly as they load real weights,
so the tests run the adapters' real code on CPU, offline, in well under a second per call. This follows
diffusers' own fast tests (`get_dummy_components`), with the tokenizers written on the fly instead of
downloaded from the hub.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

CHARACTERS = string.ascii_lowercase + string.digits + ",.;:'-()"
HIDDEN = 32  # CLIP hidden size = pooled projection; T5 d_model = joint attention dim
CLIP_TOKENS = 256  # the real CLIP reads 77 tokens (words); this one reads characters, so it needs more


def tiny_clip_tokenizer() -> Any:
    """A character-level CLIP BPE tokenizer (no merges): every lowercase letter, digit and common punctuation."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in CHARACTERS:
        vocab[char] = len(vocab)
        vocab[f"{char}</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=CLIP_TOKENS)


def tiny_t5_tokenizer() -> Any:
    """A character-level T5 (Unigram) tokenizer: <pad>=0, </s>=1, <unk>=2, the word boundary, the characters."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    return T5Tokenizer(vocab=pieces + [(char, -3.0) for char in CHARACTERS], extra_ids=0)


def tiny_flux_fill(folder: Path, seed: int = 0) -> Path:
    """A FluxFillPipeline with random weights (seeded), saved under `folder`; returns the folder.

    The VAE has two blocks (scale factor 2, so sizes are multiples of 4) and 2 latent channels; the transformer
    takes 8 packed latent + 8 packed masked-image + 16 packed mask channels.
    """
    import torch

    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    with torch.random.fork_rng():  # seeded, without touching the caller's random state
        torch.manual_seed(seed)
        return save_flux_fill(folder, tokenizer, tokenizer_2)


def save_flux_fill(folder: Path, tokenizer: Any, tokenizer_2: Any) -> Path:
    """Build the tiny components from torch's current random state and save the pipeline under `folder`."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=32, out_channels=8, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=HIDDEN, pooled_projection_dim=HIDDEN, axes_dims_rope=[4, 4, 8],
        guidance_embeds=True,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=HIDDEN, intermediate_size=37,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(tokenizer), projection_dim=HIDDEN,
        max_position_embeddings=CLIP_TOKENS,
    ))
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_2), d_model=HIDDEN, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4, 8),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, latent_channels=2, norm_num_groups=1, use_quant_conv=False,
        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
    )
    pipe = FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
    )
    folder = Path(folder)
    pipe.save_pretrained(folder)
    return folder


# diffusers' FLUX LoRA trainers' default targets: attention and feed-forward of the double-stream blocks, and the
# attention projections the single-stream blocks share with them (these have no `to_out` and no `ff`).
LORA_TARGETS = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
                "attn.add_v_proj", "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
                "ff_context.net.2")


def tiny_flux_lora(pipeline: Path, folder: Path, seed: int = 0, rank: int = 4) -> Path:
    """A random LoRA for the transformer of the tiny pipeline in `pipeline`, saved under `folder` as the
    CatVTON-FLUX try-on LoRA is: `FluxFillPipeline.save_lora_weights` of peft's state dict, i.e.
    `pytorch_lora_weights.safetensors` with keys `transformer.<module>.lora_A.weight` / `.lora_B.weight` and no
    alphas (diffusers then scales by 1). Returns the file.

    peft starts lora_B at zero (a no-op LoRA); here it is random too, so the LoRA changes the output."""
    import torch
    from diffusers import FluxFillPipeline, FluxTransformer2DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel.from_config(FluxTransformer2DModel.load_config(pipeline / "transformer"))
        transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                           target_modules=list(LORA_TARGETS)))
        layers = get_peft_model_state_dict(transformer)
        for name, weights in layers.items():
            if ".lora_B." in name:
                torch.nn.init.normal_(weights, std=0.5)
    folder = Path(folder)
    FluxFillPipeline.save_lora_weights(folder, transformer_lora_layers=layers)
    return folder / "pytorch_lora_weights.safetensors"
