"""The one network every method shares: a DDPM-style UNet (Ho et al. 2020, appendix B).

Residual blocks with GroupNorm and SiLU, a sinusoidal time embedding added inside every block,
multi-head self-attention at configurable resolutions, dropout, and skip connections between the
down and up paths. Input and output are (B, C, H, W); time is a float tensor (B,), so continuous-time
methods can feed non-integer times through the same embedding.

With ``latent_dim > 0`` the same network also takes a latent z (B, latent_dim), as Denoising Diffusion
GAN's generator does: a mapping MLP turns z into a style w, and every ResBlock's GroupNorms become
adaptive, AdaGN(h, w) = (1 + a(w))·GN(h) + b(w) (StyleGAN-like modulation, pure PyTorch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al.): [cos(t·ω_k), sin(t·ω_k)], ω_k = max_period^(−k/(dim/2)).

    t: (B,) float; returns (B, dim).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _groups(channels: int) -> int:
    """GroupNorm groups: 32 as in DDPM where the width allows it, with at least 4 channels per group.

    One channel per group would be instance norm, which removes any per-channel constant, and with
    it the time embedding that each ResBlock adds just before its second norm.
    """
    return max(g for g in range(1, 33) if channels % g == 0 and g <= max(1, channels // 4))


class AdaGroupNorm(nn.Module):
    """GroupNorm whose affine comes from a style w (B, style_dim): (1 + a(w))·GN(h) + b(w); a plain
    affine GroupNorm when style_dim = 0."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels, affine=style_dim == 0)
        self.style = nn.Linear(style_dim, 2 * channels) if style_dim else None

    def forward(self, h: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(h)
        if self.style is None:
            return h
        a, b = self.style(w)[:, :, None, None].chunk(2, dim=1)
        return (1 + a) * h + b


class ResBlock(nn.Module):
    """GN → SiLU → conv → (+ time) → GN → SiLU → dropout → conv, with a 1×1 skip when widths differ;
    the GroupNorms are adaptive (:class:`AdaGroupNorm`) when the network takes a latent."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, style_dim: int = 0):
        super().__init__()
        self.norm1 = AdaGroupNorm(c_in, style_dim)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = AdaGroupNorm(c_out, style_dim)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: stable early training
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """``emb`` is the activated time embedding SiLU(e(t)) (B, 4·width), computed once per network call."""
        h = self.conv1(F.silu(self.norm1(x, w)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h, w))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Multi-head self-attention over the H·W positions, residual."""

    def __init__(self, channels: int, num_heads: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"model.num_heads = {num_heads} must divide the width {channels} at an attention level")
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W)
        # (3, B, heads, HW, d), contiguous in d: scaled_dot_product_attention then takes its fused (flash) kernel,
        # which needs a unit stride there, instead of the unfused math path
        q, k, v = qkv.permute(1, 0, 2, 4, 3).contiguous().unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(B, C, H, W))


@dataclass(frozen=True)
class UNetSpec:
    """Everything that sizes the network (from ``params.yaml: model`` and the data shape)."""

    image_size: int
    in_channels: int
    out_channels: int
    channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    dropout: float
    num_heads: int
    latent_dim: int = 0  # > 0: the network also takes a latent z (B, latent_dim) through AdaGN

    @classmethod
    def from_config(cls, model_cfg, image_size: int, in_channels: int, out_channels: int | None = None,
                    latent_dim: int = 0) -> "UNetSpec":
        return cls(image_size=image_size, in_channels=in_channels, out_channels=out_channels or in_channels,
                   channels=model_cfg.channels, channel_mult=tuple(model_cfg.channel_mult),
                   num_res_blocks=model_cfg.num_res_blocks, attn_resolutions=tuple(model_cfg.attn_resolutions),
                   dropout=model_cfg.dropout, num_heads=model_cfg.num_heads, latent_dim=latent_dim)


class UNet(nn.Module):
    """ε_θ(x_t, t) or, with a latent, f_θ(x_t, t, z): (B, C_in, H, W), (B,)[, (B, latent_dim)] → (B, C_out, H, W)."""

    def __init__(self, spec: UNetSpec):
        super().__init__()
        levels = len(spec.channel_mult)
        if spec.image_size % (2 ** (levels - 1)):
            raise ValueError(f"image size {spec.image_size} is not divisible by 2^{levels - 1}: model.channel_mult "
                             f"has {levels} levels, too many for this image size")
        self.spec = spec
        ch = spec.channels
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # z → w: a small mapping MLP on the RMS-normalised latent (StyleGAN's pixel norm), as in DDGAN
        style = emb_dim if spec.latent_dim else 0
        self.mapping = (nn.Sequential(nn.Linear(spec.latent_dim, style), nn.SiLU(), nn.Linear(style, style), nn.SiLU())
                        if spec.latent_dim else None)
        self.stem = nn.Conv2d(spec.in_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skips = [ch]
        c, res = ch, spec.image_size
        for level, mult in enumerate(spec.channel_mult):
            for _ in range(spec.num_res_blocks):
                block = nn.ModuleList([ResBlock(c, ch * mult, emb_dim, spec.dropout, style)])
                c = ch * mult
                if res in spec.attn_resolutions:
                    block.append(AttnBlock(c, spec.num_heads))
                self.down.append(block)
                skips.append(c)
            if level < levels - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1)]))
                skips.append(c)
                res //= 2

        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, spec.dropout, style), AttnBlock(c, spec.num_heads),
                                  ResBlock(c, c, emb_dim, spec.dropout, style)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(spec.channel_mult))):
            for _ in range(spec.num_res_blocks + 1):
                block = nn.ModuleList([ResBlock(c + skips.pop(), ch * mult, emb_dim, spec.dropout, style)])
                c = ch * mult
                if res in spec.attn_resolutions:
                    block.append(AttnBlock(c, spec.num_heads))
                self.up.append(block)
            if level > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(c, c, 3, padding=1)]))
                res *= 2
        self.head = nn.Sequential(nn.GroupNorm(_groups(c), c), nn.SiLU(), nn.Conv2d(c, spec.out_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    @staticmethod
    def _run(block: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        for layer in block:
            h = layer(h, emb, w) if isinstance(layer, ResBlock) else layer(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if (z is None) != (self.mapping is None):
            raise ValueError(f"UNet with latent_dim = {self.spec.latent_dim}: a latent z must be given exactly when "
                             f"latent_dim > 0 (got {'none' if z is None else tuple(z.shape)})")
        # every ResBlock projects SiLU(e(t)): activated once here, not once per block
        emb = F.silu(self.time_mlp(timestep_embedding(t, self.spec.channels)))
        w = None if z is None else self.mapping(z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8))
        h = self.stem(x)
        hs = [h]
        for block in self.down:
            h = self._run(block, h, emb, w)
            hs.append(h)
        h = self._run(self.mid, h, emb, w)
        for block in self.up:
            if isinstance(block[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(block, h, emb, w)
        return self.head(h)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
