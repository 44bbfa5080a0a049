"""A tiny random-weight SAM (transformers) saved as a model folder, loaded by the adapter as real weights are."""

from __future__ import annotations

from pathlib import Path


def tiny_sam(folder: Path, seed: int = 0) -> Path:
    """Write a SamModel of a few thousand parameters and its processor (64 px input) to `folder`."""
    import torch
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    config = SamConfig(
        vision_config={"hidden_size": 32, "output_channels": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 64, "patch_size": 8, "window_size": 4, "global_attn_indexes": [1],
                       "num_pos_feats": 8, "mlp_dim": 64},
        prompt_encoder_config={"hidden_size": 16, "image_size": 64, "patch_size": 8, "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 16, "mlp_dim": 32, "num_attention_heads": 2, "iou_head_hidden_dim": 16},
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        SamModel(config).save_pretrained(folder)
    finally:
        torch.random.set_rng_state(state)
    image_processor = SamImageProcessorPil(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                                           mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})
    SamProcessor(image_processor=image_processor).save_pretrained(folder)
    return folder
