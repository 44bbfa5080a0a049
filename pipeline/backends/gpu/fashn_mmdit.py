"""FASHN VTON v1.5's try-on network (`TryOnModel`): a pixel-space MMDiT, ported so it loads the released checkpoint.

Ported from `src/fashn_vton/tryon_mmdit.py` of github.com/fashn-AI/fashn-vton-1.5 at commit
7c0f10af3f91ad4048fe9729c470a13ef905d25a (Apache-2.0, Copyright FASHN AI; its blocks are adapted from FLUX.1's
reference code, github.com/black-forest-labs/flux, Apache-2.0). Changes: type hints, `ModelShape` instead of
constructor defaults, the shape read back from a checkpoint (`shape_of`), the unused `guidance_embed` branch
and the training-only conditional dropout probabilities dropped. Every parameter and buffer keeps its name and
shape, so `load_state_dict(strict=True)` of the released `model.safetensors` checks the port.
Why a port and not the package: fashn-vton is not on PyPI, and its package imports `fashn_human_parser` on any
import, a wrapper whose own licence (the NVIDIA SegFormer licence) is research-only; the maskless, flat-lay path
used here never needs the parser (docs/gpu.md, "Commercial-safe photoreal stack").

The network takes the noisy image, the person image ("clothing-agnostic"; unmasked in maskless mode) and the
person's pose drawing as one 7-channel image, the garment image and the garment's pose drawing as a 4-channel one,
a timestep and the garment category (1 tops, 2 bottoms, 3 one-pieces; 0 is classifier-free guidance's null class);
it predicts the rectified-flow velocity. Images are (B, C, H, W) in [-1, 1].
torch is imported with this module: import it only where the model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ModelShape:
    """The network's hyperparameters. The defaults are the released model's (972M parameters, 576x864)."""

    input_shape: tuple[int, int] = (864, 576)  # (height, width)
    hidden_size: int = 1280
    n_heads: int = 10
    double_blocks_depth: int = 8
    single_blocks_depth: int = 16
    mlp_ratio: float = 4.0
    channels_in: int = 3
    patch_size: int = 12
    theta: int = 10000
    axes_dim: tuple[int, int, int] = (16, 56, 56)
    qkv_bias: bool = True
    n_classes: int = 3
    patch_mixer_depth: int = 4


def shape_of(state: dict[str, Tensor], input_shape: tuple[int, int] = (864, 576)) -> ModelShape:
    """The `ModelShape` a checkpoint was saved from. Sizes come from the tensors' shapes; what no tensor records
    (the image size, rope's theta and its split of each head's dimensions) is the released model's, the split
    scaled to the head size (16/56/56 of 128). Raises KeyError naming a tensor the checkpoint lacks."""
    hidden = state["t_embedder.mlp.out_layer.weight"].shape[0]
    head_dim = state["double_blocks.0.img_attn.norm.query_norm.scale"].shape[0]
    patch = state["x_embedder.proj.weight"].shape[-1]
    if head_dim % 32:
        raise ValueError(f"a head dimension of {head_dim} has no rope split like the released model's (x32)")
    first_axis = head_dim // 8
    return ModelShape(
        input_shape=input_shape, hidden_size=hidden, n_heads=hidden // head_dim,
        double_blocks_depth=_depth(state, "double_blocks."), single_blocks_depth=_depth(state, "single_blocks."),
        mlp_ratio=state["double_blocks.0.img_mlp.0.weight"].shape[0] / hidden,
        channels_in=state["final_layer.linear.weight"].shape[0] // (patch * patch), patch_size=patch,
        axes_dim=(first_axis, (head_dim - first_axis) // 2, (head_dim - first_axis) // 2),
        qkv_bias="double_blocks.0.img_attn.qkv.bias" in state, n_classes=state["y_embedder.weight"].shape[0] - 1,
        patch_mixer_depth=_depth(state, "x_patch_mixer."))


def _depth(state: dict[str, Tensor], prefix: str) -> int:
    return len({key[len(prefix):].split(".")[0] for key in state if key.startswith(prefix)})


# ---- rotary position embedding and attention (FLUX.1) -------------------------------------------------------


def rope(pos: Tensor, dim: int, theta: int) -> Tensor:
    scale = torch.arange(0, dim, 2, dtype=torch.float64, device=pos.device) / dim
    omega = 1.0 / (theta**scale)
    out = torch.einsum("...n,d->...nd", pos, omega)
    out = torch.stack([torch.cos(out), -torch.sin(out), torch.sin(out), torch.cos(out)], dim=-1)
    return out.reshape(*out.shape[:-1], 2, 2).float()


def apply_rope(xq: Tensor, xk: Tensor, freqs_cis: Tensor) -> tuple[Tensor, Tensor]:
    xq_ = xq.float().reshape(*xq.shape[:-1], -1, 1, 2)
    xk_ = xk.float().reshape(*xk.shape[:-1], -1, 1, 2)
    xq_out = freqs_cis[..., 0] * xq_[..., 0] + freqs_cis[..., 1] * xq_[..., 1]
    xk_out = freqs_cis[..., 0] * xk_[..., 0] + freqs_cis[..., 1] * xk_[..., 1]
    return xq_out.reshape(*xq.shape).type_as(xq), xk_out.reshape(*xk.shape).type_as(xk)


def attention(q: Tensor, k: Tensor, v: Tensor, pe: Tensor) -> Tensor:
    """(B, H, L, D) each -> (B, L, H * D)."""
    q, k = apply_rope(q, k, pe)
    x = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return x.transpose(1, 2).flatten(2)


def split_qkv(qkv: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """(B, L, 3 * H * D) -> q, k, v of (B, H, L, D) ("B L (K H D) -> K B H L D")."""
    batch, length, _ = qkv.shape
    q, k, v = qkv.reshape(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4)
    return q, k, v


class EmbedND(nn.Module):
    def __init__(self, dim: int, theta: int, axes_dim: tuple[int, ...]) -> None:
        super().__init__()
        self.dim = dim
        self.theta = theta
        self.axes_dim = axes_dim

    def forward(self, ids: Tensor) -> Tensor:
        emb = torch.cat([rope(ids[..., i], self.axes_dim[i], self.theta) for i in range(ids.shape[-1])], dim=-3)
        return emb.unsqueeze(1)


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x_dtype = x.dtype
        x = x.float()
        rrms = torch.rsqrt(torch.mean(x**2, dim=-1, keepdim=True) + 1e-6)
        return (x * rrms).to(dtype=x_dtype) * self.scale


class QKNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query_norm = RMSNorm(dim)
        self.key_norm = RMSNorm(dim)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return self.query_norm(q).to(v), self.key_norm(k).to(v)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm = QKNorm(dim // num_heads)
        self.proj = nn.Linear(dim, dim)


@dataclass
class ModulationOut:
    shift: Tensor
    scale: Tensor
    gate: Tensor


class Modulation(nn.Module):
    def __init__(self, dim: int, double: bool) -> None:
        super().__init__()
        self.is_double = double
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim, bias=True)

    def forward(self, vec: Tensor) -> tuple[ModulationOut, ModulationOut | None]:
        out = self.lin(nn.functional.silu(vec))[:, None, :].chunk(self.multiplier, dim=-1)
        return ModulationOut(*out[:3]), ModulationOut(*out[3:]) if self.is_double else None


def mlp(hidden: int, ratio: float) -> nn.Sequential:
    inner = int(hidden * ratio)
    return nn.Sequential(nn.Linear(hidden, inner, bias=True), nn.GELU(approximate="tanh"),
                         nn.Linear(inner, hidden, bias=True))


class DoubleStreamBlock(nn.Module):
    """Separate weights for the person stream (`img`) and the garment stream (`txt`), joint attention."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.hidden_size = hidden_size
        self.img_mod = Modulation(hidden_size, double=True)
        self.img_norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.img_attn = SelfAttention(hidden_size, num_heads, qkv_bias)
        self.img_norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.img_mlp = mlp(hidden_size, mlp_ratio)
        self.txt_mod = Modulation(hidden_size, double=True)
        self.txt_norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.txt_attn = SelfAttention(hidden_size, num_heads, qkv_bias)
        self.txt_norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.txt_mlp = mlp(hidden_size, mlp_ratio)

    def _qkv(self, x: Tensor, norm: nn.LayerNorm, attn: SelfAttention, mod: ModulationOut
             ) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = split_qkv(attn.qkv((1 + mod.scale) * norm(x) + mod.shift), self.num_heads)
        q, k = attn.norm(q, k, v)
        return q, k, v

    @staticmethod
    def _rest(x: Tensor, attn_out: Tensor, attn: SelfAttention, norm: nn.LayerNorm, mlp_: nn.Sequential,
              mod1: ModulationOut, mod2: ModulationOut) -> Tensor:
        x = x + mod1.gate * attn.proj(attn_out)
        return x + mod2.gate * mlp_((1 + mod2.scale) * norm(x) + mod2.shift)

    def forward(self, img: Tensor, txt: Tensor, vec: Tensor, pe: Tensor) -> tuple[Tensor, Tensor]:
        img_mod1, img_mod2 = self.img_mod(vec)
        txt_mod1, txt_mod2 = self.txt_mod(vec)
        assert img_mod2 is not None and txt_mod2 is not None  # double modulations
        img_q, img_k, img_v = self._qkv(img, self.img_norm1, self.img_attn, img_mod1)
        txt_q, txt_k, txt_v = self._qkv(txt, self.txt_norm1, self.txt_attn, txt_mod1)
        attn = attention(torch.cat((txt_q, img_q), dim=2), torch.cat((txt_k, img_k), dim=2),
                         torch.cat((txt_v, img_v), dim=2), pe=pe)
        txt_attn, img_attn = attn[:, :txt.shape[1]], attn[:, txt.shape[1]:]
        return (self._rest(img, img_attn, self.img_attn, self.img_norm2, self.img_mlp, img_mod1, img_mod2),
                self._rest(txt, txt_attn, self.txt_attn, self.txt_norm2, self.txt_mlp, txt_mod1, txt_mod2))


class SingleStreamBlock(nn.Module):
    """A DiT block with parallel linear layers (arXiv:2302.05442) and FLUX's modulation."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.hidden_size = hidden_size
        self.mlp_hidden_dim = int(hidden_size * mlp_ratio)
        self.linear1 = nn.Linear(hidden_size, hidden_size * 3 + self.mlp_hidden_dim)
        self.linear2 = nn.Linear(hidden_size + self.mlp_hidden_dim, hidden_size)
        self.norm = QKNorm(hidden_size // num_heads)
        self.pre_norm = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.modulation = Modulation(hidden_size, double=False)

    def forward(self, x: Tensor, vec: Tensor, pe: Tensor) -> Tensor:
        mod, _ = self.modulation(vec)
        x_mod = (1 + mod.scale) * self.pre_norm(x) + mod.shift
        qkv, hidden = torch.split(self.linear1(x_mod), [3 * self.hidden_size, self.mlp_hidden_dim], dim=-1)
        q, k, v = split_qkv(qkv, self.num_heads)
        q, k = self.norm(q, k, v)
        output = self.linear2(torch.cat((attention(q, k, v, pe=pe), self.mlp_act(hidden)), 2))
        return x + mod.gate * output


class LastLayer(nn.Module):
    def __init__(self, hidden_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)
        return self.linear((1 + scale[:, None, :]) * self.norm_final(x) + shift[:, None, :])


class PatchEmbed(nn.Module):
    """A strided convolution, one token per patch; the output stays (B, C, h, w)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden_dim, bias=True)
        self.silu = nn.SiLU()
        self.out_layer = nn.Linear(hidden_dim, hidden_dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(self.silu(self.in_layer(x)))


def timestep_embedding(t: Tensor, dim: int, max_period: int = 10000, time_factor: float = 1000.0) -> Tensor:
    """(N,) timesteps in [0, 1] -> (N, dim) sinusoidal embeddings."""
    t = time_factor * t
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half).to(t.device)
    args = t[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding.to(t) if torch.is_floating_point(t) else embedding


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.mlp = MLPEmbedder(frequency_embedding_size, hidden_size)
        self.frequency_embedding_size = frequency_embedding_size

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_embedding_size))


def tokens(x: Tensor) -> tuple[Tensor, Tensor]:
    """(B, C, h, w) patch features -> (B, h * w, C) tokens and their (B, h * w, 3) position ids (0, row, col)."""
    batch, _, h, w = x.shape
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = ids[..., 1] + torch.arange(h)[:, None]
    ids[..., 2] = ids[..., 2] + torch.arange(w)[None, :]
    return x.flatten(2).transpose(1, 2), ids.reshape(1, h * w, 3).expand(batch, -1, -1).to(x.device)


def keep_or_null(tensor: Tensor, keep: Tensor) -> Tensor:
    """Each sample's `tensor` where `keep`, zeros (the null condition of classifier-free guidance) elsewhere."""
    return torch.where(keep.view(keep.shape[0], *[1] * (tensor.dim() - 1)), tensor, torch.zeros_like(tensor))


class TryOnModel(nn.Module):
    def __init__(self, shape: ModelShape | None = None) -> None:
        super().__init__()
        shape = shape or ModelShape()
        self.shape = shape
        hidden, heads = shape.hidden_size, shape.n_heads
        if sum(shape.axes_dim) != hidden // heads:
            raise ValueError(f"rope axes {shape.axes_dim} must sum to the head dimension {hidden // heads}")
        self.input_shape = shape.input_shape
        self.patch_size = shape.patch_size
        self.channels_in = shape.channels_in
        self.t_embedder = TimestepEmbedder(hidden)
        self.y_embedder = nn.Embedding(shape.n_classes + 1, hidden)  # +1: the null class
        self.pe_embedder = EmbedND(hidden // heads, shape.theta, shape.axes_dim)
        self.x_embedder = PatchEmbed(shape.patch_size, shape.channels_in * 2 + 1, hidden)
        self.garment_embedder = PatchEmbed(shape.patch_size, shape.channels_in + 1, hidden)
        self.x_patch_mixer = nn.ModuleList(SingleStreamBlock(hidden, heads, shape.mlp_ratio)
                                           for _ in range(shape.patch_mixer_depth))
        if shape.patch_mixer_depth:  # unused at inference; in the checkpoint, so registered for strict loading
            self.register_buffer("patch_mixer_token", torch.zeros(1, 1, shape.channels_in * shape.patch_size**2))
        self.double_blocks = nn.ModuleList(DoubleStreamBlock(hidden, heads, shape.mlp_ratio, shape.qkv_bias)
                                           for _ in range(shape.double_blocks_depth))
        self.single_blocks = nn.ModuleList(SingleStreamBlock(hidden, heads, shape.mlp_ratio)
                                           for _ in range(shape.single_blocks_depth))
        self.final_layer = LastLayer(hidden, shape.channels_in * shape.patch_size**2)

    def forward_for_cfg(self, x: Tensor, times: Tensor, **conditions: Tensor) -> tuple[Tensor, Tensor]:
        """One pass over the conditioned and the unconditioned copy of the batch: (v_cond, v_uncond)."""
        batch = x.shape[0]
        keep = torch.cat([torch.ones(batch, dtype=torch.bool), torch.zeros(batch, dtype=torch.bool)]).to(x.device)
        doubled = {name: torch.cat([value, value]) for name, value in conditions.items()}
        out = self.forward(torch.cat([x, x]), torch.cat([times, times]), keep=keep, **doubled)
        return out[:batch], out[batch:]

    def forward(self, x: Tensor, times: Tensor, ca_images: Tensor, garment_images: Tensor, person_poses: Tensor,
                garment_poses: Tensor, garment_categories: Tensor, keep: Tensor | None = None) -> Tensor:
        """The velocity (B, 3, H, W). `keep` (B,) bool: which samples see their conditions (None: all)."""
        if keep is None:
            keep = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        person = torch.cat([x, keep_or_null(ca_images, keep), keep_or_null(person_poses, keep)], dim=1)
        img, x_ids = tokens(self.x_embedder(person))
        garment = torch.cat([keep_or_null(garment_images, keep), keep_or_null(garment_poses, keep)], dim=1)
        txt, garment_ids = tokens(self.garment_embedder(garment))
        vec = self.t_embedder(times) + self.y_embedder(keep_or_null(garment_categories, keep))
        x_pe, g_pe = self.pe_embedder(x_ids), self.pe_embedder(garment_ids)
        for block in self.x_patch_mixer:
            img = block(img, vec=vec, pe=x_pe)
        pe = torch.cat([x_pe, g_pe], dim=2)
        for block in self.double_blocks:
            img, txt = block(img=img, txt=txt, vec=vec, pe=pe)
        img = torch.cat((txt, img), 1)
        for block in self.single_blocks:
            img = block(img, vec=vec, pe=pe)
        return self.unpatchify(self.final_layer(img[:, txt.shape[1]:, ...], vec))

    def unpatchify(self, x: Tensor) -> Tensor:
        """(B, h * w, C * p * p) -> (B, C, h * p, w * p) ("b (h w) (c p1 p2) -> b c (h p1) (w p2)")."""
        p, c = self.patch_size, self.channels_in
        h, w = self.input_shape[0] // p, self.input_shape[1] // p
        x = x.reshape(x.shape[0], h, w, c, p, p)
        return x.permute(0, 3, 1, 4, 2, 5).reshape(x.shape[0], c, h * p, w * p)


def load_tryon_model(path: Any, device: str, dtype: torch.dtype) -> TryOnModel:
    """The network in the safetensors file `path`, strictly loaded (every tensor named and shaped as the port's),
    on `device` in `dtype`, in eval mode."""
    from safetensors.torch import load_file

    state = load_file(str(path), device="cpu")
    try:
        model = TryOnModel(shape_of(state))
        model.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError, ValueError) as error:
        cause = " ".join(str(error).splitlines()[:2])
        raise ValueError(f"{path} is not a FASHN VTON v1.5 checkpoint this port loads: {cause}") from error
    return model.to(device=device, dtype=dtype).eval()
