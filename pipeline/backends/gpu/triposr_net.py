"""TripoSR's network (`TripoSRNet`), inference only: image -> triplane -> density, ported so it loads `model.ckpt`.

Ported from `tsr/` of github.com/VAST-AI-Research/TripoSR at commit d26e33181947bbbc4c6fc0f5734e1ec6c080956e (MIT,
Copyright 2024 Tripo AI & Stability AI; its transformer blocks are adapted from diffusers, Apache-2.0):
- `image_tokenizer` (`DINOSingleImageTokenizer`): a DINO ViT-B/16 (`facebook/dino-vitb16`, Apache-2.0) built from
  its `config.json` with random weights (model.ckpt holds the trained ones). TripoSR builds transformers'
  `ViTModel`; here it is `DinoViT`, the same network under transformers 4's parameter names
  (`encoder.layer.N.attention.attention.query`, ...), which are the names model.ckpt was saved with: transformers 5
  renamed them (`layers.N.attention.q_proj`, ...), and its position-embedding interpolation is no longer 4.35's
  (TripoSR pins transformers 4.35.0), so building `ViTModel` here would need a rename table and still drift.
  The checkpoint has no modulation layers (TripoSR's tokenizer has none).
- `tokenizer` (`Triplane1DTokenizer`): the learned triplane queries, 3 planes of `plane_size`^2 tokens.
- `backbone` (`Transformer1D`): GroupNorm, proj_in, pre-norm blocks (self-attention, cross-attention to the image
  tokens, GEGLU feed-forward), proj_out, plus the input.
- `post_processor` (`TriplaneUpsampleNetwork`): a 2x2 transposed convolution per plane.
- `decoder` (`NeRFMLP`): features of a point sampled from the three planes -> density (and colour, unused).
- `density` is the renderer's `query_triplane` (`TriplaneNeRFRenderer`, no parameters): positions in
  (-radius, radius), bilinear samples of the xy, xz and yz planes concatenated, exp(density + density_bias).
Every parameter keeps TripoSR's name and shape, so `load_state_dict(strict=True)` of the released checkpoint
checks the port. The training-only parts (gradient checkpointing, dropout, the NeRF ray marcher) are left out.
torch is imported with this module: import it only where the model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGE_MEAN = (0.485, 0.456, 0.406)  # DINOSingleImageTokenizer's normalisation (ImageNet's)
IMAGE_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VitShape:
    """The image encoder's hyperparameters: facebook/dino-vitb16's config.json."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    layer_norm_eps: float = 1e-12
    qkv_bias: bool = True


@dataclass(frozen=True)
class TripoShape:
    """The network's hyperparameters: stabilityai/TripoSR's config.yaml (the defaults are the released model's)."""

    vit: VitShape = VitShape()
    cond_image_size: int = 512
    plane_size: int = 32
    num_channels: int = 1024
    num_attention_heads: int = 16
    attention_head_dim: int = 64
    num_layers: int = 16
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    triplane_channels: int = 40  # post_processor.out_channels
    decoder_neurons: int = 64
    decoder_hidden_layers: int = 9
    decoder_activation: str = "silu"
    radius: float = 0.87
    density_bias: float = -1.0


# ---- the image tokenizer: DINO ViT-B/16 under transformers 4's names ---------------------------------------------


class PatchEmbeddings(nn.Module):
    def __init__(self, vit: VitShape) -> None:
        super().__init__()
        self.projection = nn.Conv2d(vit.num_channels, vit.hidden_size, vit.patch_size, stride=vit.patch_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.projection(images).flatten(2).transpose(1, 2)


class VitEmbeddings(nn.Module):
    def __init__(self, vit: VitShape) -> None:
        super().__init__()
        self.patch_size = vit.patch_size
        self.cls_token = nn.Parameter(torch.randn(1, 1, vit.hidden_size) * 0.02)
        self.patch_embeddings = PatchEmbeddings(vit)
        positions = (vit.image_size // vit.patch_size) ** 2 + 1
        self.position_embeddings = nn.Parameter(torch.randn(1, positions, vit.hidden_size) * 0.02)

    def interpolated_positions(self, height: int, width: int) -> Tensor:
        """transformers 4.35's `ViTEmbeddings.interpolate_pos_encoding` (the version TripoSR pins): bicubic, by a
        scale factor with DINO's +0.1."""
        grid = self.position_embeddings.shape[1] - 1
        h0, w0 = height // self.patch_size, width // self.patch_size
        if h0 * w0 == grid and height == width:
            return self.position_embeddings
        side, dim = int(math.sqrt(grid)), self.position_embeddings.shape[-1]
        patches = self.position_embeddings[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, scale_factor=((h0 + 0.1) / math.sqrt(grid), (w0 + 0.1) / math.sqrt(grid)),
                                mode="bicubic", align_corners=False)
        if patches.shape[-2:] != (h0, w0):
            raise ValueError(f"position embeddings interpolated to {tuple(patches.shape[-2:])}, not {(h0, w0)}")
        patches = patches.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((self.position_embeddings[:, :1], patches), dim=1)

    def forward(self, images: Tensor) -> Tensor:
        tokens = self.patch_embeddings(images)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        return tokens + self.interpolated_positions(images.shape[-2], images.shape[-1])


class VitSelfAttention(nn.Module):
    def __init__(self, vit: VitShape) -> None:
        super().__init__()
        self.heads = vit.num_attention_heads
        self.query = nn.Linear(vit.hidden_size, vit.hidden_size, bias=vit.qkv_bias)
        self.key = nn.Linear(vit.hidden_size, vit.hidden_size, bias=vit.qkv_bias)
        self.value = nn.Linear(vit.hidden_size, vit.hidden_size, bias=vit.qkv_bias)

    def forward(self, hidden: Tensor) -> Tensor:
        return attend(self.query(hidden), self.key(hidden), self.value(hidden), self.heads)


class VitSelfOutput(nn.Module):
    def __init__(self, vit: VitShape) -> None:
        super().__init__()
        self.dense = nn.Linear(vit.hidden_size, vit.hidden_size)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.dense(hidden)


class VitAttention(nn.Module):
    def __init__(self, vit: VitShape) -> None:
        super().__init__()
        self.attention = VitSelfAttention(vit)
        self.output = VitSelfOutput(vit)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.output(self.attention(hidden))


class Dense(nn.Module):
    """A module holding one `dense` Linear (ViT's `intermediate` and `output`)."""

    def __init__(self, features_in: int, features_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(features_in, features_out)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.dense(hidden)


class VitLayer(nn.Module):
    def __init__(self, vit: VitShape) -> None:
        super().__init__()
        self.attention = VitAttention(vit)
        self.intermediate = Dense(vit.hidden_size, vit.intermediate_size)
        self.output = Dense(vit.intermediate_size, vit.hidden_size)
        self.layernorm_before = nn.LayerNorm(vit.hidden_size, eps=vit.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(vit.hidden_size, eps=vit.layer_norm_eps)

    def forward(self, hidden: Tensor) -> Tensor:
        hidden = hidden + self.attention(self.layernorm_before(hidden))
        return hidden + self.output(F.gelu(self.intermediate(self.layernorm_after(hidden))))


class VitEncoder(nn.Module):
    def __init__(self, vit: VitShape) -> None:
        super().__init__()
        self.layer = nn.ModuleList(VitLayer(vit) for _ in range(vit.num_hidden_layers))

    def forward(self, hidden: Tensor) -> Tensor:
        for layer in self.layer:
            hidden = layer(hidden)
        return hidden


class DinoViT(nn.Module):
    """transformers 4's `ViTModel` (pooling layer included: its weights are in model.ckpt; its output is unused)."""

    def __init__(self, vit: VitShape) -> None:
        super().__init__()
        self.embeddings = VitEmbeddings(vit)
        self.encoder = VitEncoder(vit)
        self.layernorm = nn.LayerNorm(vit.hidden_size, eps=vit.layer_norm_eps)
        self.pooler = Dense(vit.hidden_size, vit.hidden_size)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) normalised -> the last hidden state (B, 1 + patches, hidden)."""
        return self.layernorm(self.encoder(self.embeddings(images)))


class ImageTokenizer(nn.Module):
    image_mean: Tensor
    image_std: Tensor

    def __init__(self, vit: VitShape) -> None:
        super().__init__()
        self.model = DinoViT(vit)
        self.register_buffer("image_mean", torch.tensor(IMAGE_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGE_STD).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> image tokens (B, tokens, hidden)."""
        return self.model((images - self.image_mean) / self.image_std)


# ---- the triplane tokens and the transformer ----------------------------------------------------------------------


class TriplaneTokenizer(nn.Module):
    def __init__(self, shape: TripoShape) -> None:
        super().__init__()
        self.plane_size = shape.plane_size
        self.embeddings = nn.Parameter(torch.randn(3, shape.num_channels, shape.plane_size, shape.plane_size)
                                       / math.sqrt(shape.num_channels))

    def forward(self, batch: int) -> Tensor:
        """(B, channels, 3 * plane_size^2): the planes' tokens, plane by plane, row by row."""
        channels = self.embeddings.shape[1]
        tokens = self.embeddings.permute(1, 0, 2, 3).reshape(channels, -1)
        return tokens.unsqueeze(0).expand(batch, -1, -1)

    def detokenize(self, tokens: Tensor) -> Tensor:
        """(B, channels, 3 * plane_size^2) -> (B, 3, channels, plane_size, plane_size)."""
        batch, channels, _ = tokens.shape
        side = self.plane_size
        return tokens.reshape(batch, channels, 3, side, side).permute(0, 2, 1, 3, 4)


def attend(query: Tensor, key: Tensor, value: Tensor, heads: int) -> Tensor:
    """Multi-head scaled dot-product attention on (B, N, heads * head_dim) projections."""
    batch, length, width = query.shape

    def split(x: Tensor) -> Tensor:
        return x.reshape(batch, -1, heads, width // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(query), split(key), split(value))
    return out.transpose(1, 2).reshape(batch, length, width)


class Attention(nn.Module):
    """diffusers' `Attention` as TripoSR configures it: no q/k/v bias, an output Linear (`to_out.0`)."""

    def __init__(self, dim: int, heads: int, head_dim: int, cross_dim: int | None = None) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(cross_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(cross_dim or dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def forward(self, hidden: Tensor, context: Tensor | None = None) -> Tensor:
        context = hidden if context is None else context
        out = attend(self.to_q(hidden), self.to_k(context), self.to_v(context), self.heads)
        return self.to_out[0](out)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, hidden: Tensor) -> Tensor:
        hidden, gate = self.proj(hidden).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, hidden: Tensor) -> Tensor:
        for module in self.net:
            hidden = module(hidden)
        return hidden


class TransformerBlock(nn.Module):
    """`BasicTransformerBlock`: pre-norm self-attention, cross-attention to the image tokens, feed-forward."""

    def __init__(self, dim: int, heads: int, head_dim: int, cross_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, head_dim, cross_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, hidden: Tensor, context: Tensor) -> Tensor:
        hidden = hidden + self.attn1(self.norm1(hidden))
        hidden = hidden + self.attn2(self.norm2(hidden), context)
        return hidden + self.ff(self.norm3(hidden))


class Transformer1D(nn.Module):
    def __init__(self, shape: TripoShape) -> None:
        super().__init__()
        inner = shape.num_attention_heads * shape.attention_head_dim
        self.norm = nn.GroupNorm(shape.norm_num_groups, shape.num_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(shape.num_channels, inner)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(inner, shape.num_attention_heads, shape.attention_head_dim, shape.cross_attention_dim)
            for _ in range(shape.num_layers))
        self.proj_out = nn.Linear(inner, shape.num_channels)

    def forward(self, tokens: Tensor, context: Tensor) -> Tensor:
        """(B, channels, N) triplane tokens attending to (B, M, cross_dim) image tokens -> (B, channels, N)."""
        hidden = self.proj_in(self.norm(tokens).transpose(1, 2))
        for block in self.transformer_blocks:
            hidden = block(hidden, context)
        return self.proj_out(hidden).transpose(1, 2) + tokens


class TriplaneUpsample(nn.Module):
    def __init__(self, shape: TripoShape) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(shape.num_channels, shape.triplane_channels, kernel_size=2, stride=2)

    def forward(self, planes: Tensor) -> Tensor:
        """(B, 3, C, H, W) -> (B, 3, C', 2H, 2W)."""
        batch = planes.shape[0]
        up = self.upsample(planes.flatten(0, 1))
        return up.reshape(batch, 3, *up.shape[1:])


class NeRFMLP(nn.Module):
    def __init__(self, shape: TripoShape) -> None:
        super().__init__()
        activation = {"silu": nn.SiLU, "relu": nn.ReLU}[shape.decoder_activation]
        width, layers = shape.decoder_neurons, []
        features = 3 * shape.triplane_channels  # the three planes' samples, concatenated
        for _ in range(shape.decoder_hidden_layers):
            layers += [nn.Linear(features, width), activation()]
            features = width
        layers.append(nn.Linear(width, 4))  # density + 3 colour features
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features)


# ---- the whole network --------------------------------------------------------------------------------------------


class TripoSRNet(nn.Module):
    """TripoSR's `TSR` for inference: `triplanes` of an image, the `density` of points in them."""

    def __init__(self, shape: TripoShape) -> None:
        super().__init__()
        self.shape = shape
        self.image_tokenizer = ImageTokenizer(shape.vit)
        self.tokenizer = TriplaneTokenizer(shape)
        self.backbone = Transformer1D(shape)
        self.post_processor = TriplaneUpsample(shape)
        self.decoder = NeRFMLP(shape)

    def triplanes(self, images: Tensor) -> Tensor:
        """(B, H, W, 3) RGB in [0, 1] -> (B, 3, C', 2 * plane_size, 2 * plane_size), the scene codes. The image is
        resized to cond_image_size as TripoSR's `ImagePreprocessor` does (bilinear, antialiased)."""
        size = self.shape.cond_image_size
        images = F.interpolate(images.permute(0, 3, 1, 2), (size, size), mode="bilinear", align_corners=False,
                               antialias=True)
        context = self.image_tokenizer(images)
        tokens = self.backbone(self.tokenizer(images.shape[0]), context)
        return self.post_processor(self.tokenizer.detokenize(tokens))

    def density(self, triplane: Tensor, positions: Tensor) -> Tensor:
        """One scene's (3, C', H, W) triplane, (N, 3) points in (-radius, radius) -> (N,) density,
        exp(raw + density_bias) as the released config's `density_activation: exp`."""
        grid = positions / self.shape.radius  # to (-1, 1), grid_sample's range
        pairs = torch.stack((grid[:, [0, 1]], grid[:, [0, 2]], grid[:, [1, 2]]), dim=0)  # (3, N, 2)
        samples = F.grid_sample(triplane, pairs.unsqueeze(1), mode="bilinear", align_corners=False)  # (3,C',1,N)
        features = samples.squeeze(2).permute(2, 0, 1).reshape(positions.shape[0], -1)  # (N, 3 * C'), plane-major
        raw = self.decoder(features)[:, 0]
        return torch.exp(raw + self.shape.density_bias)


# ---- the configs and the checkpoint -------------------------------------------------------------------------------

CLASSES = {  # config.yaml's classes, the ones this port implements
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
}
FIXED = {  # (section, field): the only value the port implements (TripoSR's default, and the released model's)
    ("backbone", "attention_bias"): False, ("backbone", "activation_fn"): "geglu",
    ("backbone", "only_cross_attention"): False, ("backbone", "double_self_attention"): False,
    ("backbone", "norm_type"): "layer_norm", ("renderer", "feature_reduction"): "concat",
    ("renderer", "density_activation"): "exp",
}


def resolved(config: dict[str, Any]) -> dict[str, Any]:
    """config.yaml with its `${section.field}` references (OmegaConf interpolations) replaced by their values."""
    def value(item: Any) -> Any:
        if isinstance(item, str) and item.startswith("${") and item.endswith("}"):
            section, _, name = item[2:-1].partition(".")
            return config[section][name]
        return item

    return {key: ({k: value(v) for k, v in part.items()} if isinstance(part, dict) else part)
            for key, part in config.items()}


def shape_of(config: dict[str, Any], vit_config: dict[str, Any]) -> TripoShape:
    """The network's shape from config.yaml (parsed) and the image encoder's config.json (parsed); ValueError
    for a config this port does not implement (another class, or an option it does not port)."""
    config = resolved(config)
    wrong = {key: config.get(key) for key, cls in CLASSES.items() if config.get(key) != cls}
    if wrong:
        raise ValueError(f"config.yaml names classes this TripoSR port does not implement: {wrong}")
    unported = {f"{section}.{name}": config[section][name] for (section, name), fixed in FIXED.items()
                if config[section].get(name, fixed) != fixed}
    if vit_config.get("hidden_act", "gelu") != "gelu" or vit_config.get("model_type", "vit") != "vit":
        unported["image encoder"] = f"{vit_config.get('model_type')} with {vit_config.get('hidden_act')}"
    if unported:
        raise ValueError(f"config.yaml sets options this TripoSR port does not implement: {unported}")
    vit = VitShape(**{f.name: vit_config[f.name] for f in fields(VitShape) if f.name in vit_config})
    backbone, decoder = config["backbone"], config["decoder"]
    shape = TripoShape(
        vit=vit, cond_image_size=config["cond_image_size"], plane_size=config["tokenizer"]["plane_size"],
        num_channels=config["tokenizer"]["num_channels"],
        num_attention_heads=backbone.get("num_attention_heads", 16),
        attention_head_dim=backbone.get("attention_head_dim", 88), num_layers=backbone.get("num_layers", 1),
        cross_attention_dim=backbone["cross_attention_dim"], norm_num_groups=backbone.get("norm_num_groups", 32),
        triplane_channels=config["post_processor"]["out_channels"], decoder_neurons=decoder["n_neurons"],
        decoder_hidden_layers=decoder["n_hidden_layers"], decoder_activation=decoder.get("activation", "relu"),
        radius=config["renderer"]["radius"], density_bias=config["renderer"].get("density_bias", -1.0))
    sizes = {"backbone.in_channels": backbone.get("in_channels"), "post_processor.in_channels":
             config["post_processor"]["in_channels"], "decoder.in_channels / 3": decoder["in_channels"] / 3,
             "backbone.cross_attention_dim": shape.cross_attention_dim}
    expected = {"backbone.in_channels": shape.num_channels, "post_processor.in_channels": shape.num_channels,
                "decoder.in_channels / 3": shape.triplane_channels, "backbone.cross_attention_dim": vit.hidden_size}
    if sizes != expected:
        raise ValueError(f"config.yaml's sizes do not fit together: {sizes}, expected {expected}")
    return shape


def load_triposr(path: Path, shape: TripoShape, device: str) -> TripoSRNet:
    """The network in the checkpoint `path` (a pickled state dict, read with weights_only), strictly loaded
    (every tensor named and shaped as the port's), on `device` in float32, in eval mode."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a TripoSR state dict")
    model = TripoSRNet(shape)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        cause = " ".join(str(error).splitlines()[:3])[:400]
        raise ValueError(f"{path} is not a TripoSR checkpoint this port loads: {cause}") from error
    return model.to(device=device, dtype=torch.float32).eval()
