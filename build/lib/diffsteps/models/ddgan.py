"""Denoising Diffusion GAN's two players (arXiv 2112.07804, §3–4), in pure PyTorch.

- The generator is the study's shared UNet with a latent input (AdaGN, ``UNetSpec.latent_dim``), read
  as an x_0-predictor: x̂_0 = G(x_t, t, z) = tanh(f_θ(x_t, t, z)) ∈ (−1, 1).
- The discriminator D(x_{t−1}, x_t, t) → logit is time-dependent: it sees the pair concatenated on
  channels and adds a time embedding inside every block, like DDGAN's small discriminator (residual
  down-sampling blocks, leaky ReLU, minibatch standard deviation before the head). Its widths follow
  the UNet's encoder (``model.channels × channel_mult``), so both players grow with ``model``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .unet import UNet, UNetSpec, timestep_embedding


class DDGANGenerator(nn.Module):
    """x̂_0 = tanh(UNet(x_t, t, z)): (B, C, H, W), (B,), (B, latent_dim) → (B, C, H, W)."""

    def __init__(self, spec: UNetSpec):
        super().__init__()
        if spec.latent_dim < 1:
            raise ValueError(f"DDGAN's generator needs a latent: latent_dim = {spec.latent_dim} must be ≥ 1")
        self.spec = spec
        self.unet = UNet(spec)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.unet(x_t, t, z))


@dataclass(frozen=True)
class DiscriminatorSpec:
    image_size: int
    in_channels: int  # channels of one image; D reads two (x_{t−1} and x_t)
    channels: int
    channel_mult: tuple[int, ...]

    @classmethod
    def from_unet(cls, spec: UNetSpec) -> "DiscriminatorSpec":
        return cls(image_size=spec.image_size, in_channels=spec.in_channels, channels=spec.channels,
                   channel_mult=tuple(spec.channel_mult))


class DownBlock(nn.Module):
    """conv → +time → act → conv → ½ resolution, with an average-pooled 1×1 skip; (h + skip)/√2."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.leaky_relu(x, 0.2)) + self.emb(emb)[:, :, None, None]
        h = F.avg_pool2d(self.conv2(F.leaky_relu(h, 0.2)), 2)
        return (h + self.skip(F.avg_pool2d(x, 2))) / math.sqrt(2)


def minibatch_stddev(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append one channel: the standard deviation of each feature over a group of samples, averaged
    over features and positions (StyleGAN); it lets D see a collapsed batch. The group is the
    largest of group, ..., 1 that divides B. (B, C, H, W) → (B, C + 1, H, W)."""
    B, C, H, W = h.shape
    g = max(d for d in range(1, min(group, B) + 1) if B % d == 0)
    if g == 1:  # a single sample has no spread: the channel is zero
        return torch.cat([h, h.new_zeros(B, 1, H, W)], dim=1)
    y = h.reshape(g, B // g, C, H, W)
    sd = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
    return torch.cat([h, sd.repeat(g)[:, None, None, None].expand(B, 1, H, W)], dim=1)


class Discriminator(nn.Module):
    """D(x_{t−1}, x_t, t): (B, C, H, W), (B, C, H, W), (B,) → logits (B,)."""

    def __init__(self, spec: DiscriminatorSpec):
        super().__init__()
        levels = len(spec.channel_mult)
        if spec.image_size % (2**levels):
            raise ValueError(f"image size {spec.image_size} is not divisible by 2^{levels}: the discriminator "
                             f"halves the resolution once per level of model.channel_mult ({levels} levels)")
        self.spec = spec
        ch = spec.channels
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.LeakyReLU(0.2), nn.Linear(emb_dim, emb_dim),
                                      nn.LeakyReLU(0.2))
        self.stem = nn.Conv2d(2 * spec.in_channels, ch, 3, padding=1)
        widths = [ch] + [ch * m for m in spec.channel_mult]
        self.blocks = nn.ModuleList(DownBlock(a, b, emb_dim) for a, b in zip(widths[:-1], widths[1:]))
        c = widths[-1]
        self.final = nn.Conv2d(c + 1, c, 3, padding=1)
        self.head = nn.Linear(c, 1)

    def forward(self, x_prev: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.spec.channels).to(x_prev.dtype))  # float64 too (R1 tests)
        h = self.stem(torch.cat([x_prev, x_t], dim=1))
        for block in self.blocks:
            h = block(h, emb)
        h = F.leaky_relu(self.final(minibatch_stddev(h)), 0.2)
        return self.head(h.sum(dim=(2, 3))).squeeze(1)
