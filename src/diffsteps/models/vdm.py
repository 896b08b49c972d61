"""VDM's noise-prediction network: the shared UNet with Fourier-feature input channels, conditioned
on the normalised log-SNR, and the learned schedule γ as a submodule (so that it is trained,
averaged by the EMA and saved with the weights). VDM, arXiv 2107.00630, §3.4 and appendix B.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..noise.logsnr import LogSNRSchedule
from .unet import UNet, UNetSpec


def fourier_features(z: torch.Tensor, n_min: int, n_max: int) -> torch.Tensor:
    """sin and cos of 2^n·2π·z for n = n_min..n_max−1, per input channel: (B, C, H, W) → (B, 2·C·(n_max − n_min), H, W).

    They let the network see the fine structure of z near t = 0, where the 256 levels of x (2/255
    apart) sit only a few noise scales σ_0/α_0 ≈ 1.3e-3 apart (VDM §3.4)."""
    n = torch.arange(n_min, n_max, device=z.device, dtype=z.dtype)
    freqs = (2.0 ** n) * 2 * math.pi  # (F,)
    h = z[:, :, None] * freqs[None, None, :, None, None]  # (B, C, F, H, W)
    return torch.cat([torch.sin(h), torch.cos(h)], dim=2).flatten(1, 2)


@dataclass(frozen=True)
class VDMSpec:
    """What sizes the network: the UNet (its input widened by the Fourier channels), the schedule and
    the Fourier range."""

    unet: UNetSpec
    schedule: str
    gamma_min: float
    gamma_max: float
    fourier_min: int
    fourier_max: int


class VDMNetwork(nn.Module):
    """ε̂(z_t; γ_t): the UNet on [z_t, fourier(z_t)] with time input 1000·(γ_t − γ_min)/(γ_max − γ_min).

    The time input is γ_t normalised by the run's *initial* endpoints (γ_min, γ_max; VDM's choice)
    and scaled to the discrete methods' 1..1000 range, so the shared sinusoidal embedding sees the
    same frequencies.
    """

    def __init__(self, unet_spec: UNetSpec, gamma: LogSNRSchedule, fourier_min: int, fourier_max: int):
        super().__init__()
        if fourier_max < fourier_min:
            raise ValueError(f"Fourier range fourier_min = {fourier_min}, fourier_max = {fourier_max} is invalid: "
                             "expected fourier_min ≤ fourier_max")
        channels = unet_spec.in_channels
        widened = dataclasses.replace(unet_spec, in_channels=channels * (1 + 2 * (fourier_max - fourier_min)),
                                      out_channels=channels)
        self.unet = UNet(widened)
        self.gamma = gamma
        self.fourier_min, self.fourier_max = fourier_min, fourier_max
        g0, g1 = (float(g.detach()) for g in gamma.endpoints())  # the initial endpoints fix the normalisation for good
        self.gamma_min, self.gamma_max = g0, g1
        self.spec = VDMSpec(unet=widened, schedule=gamma.kind, gamma_min=round(g0, 6), gamma_max=round(g1, 6),
                            fourier_min=fourier_min, fourier_max=fourier_max)

    def predict(self, z: torch.Tensor, gamma_t: torch.Tensor) -> torch.Tensor:
        """ε̂ for z (B, C, H, W) at log-SNR γ_t (B,)."""
        cond = 1000.0 * (gamma_t - self.gamma_min) / (self.gamma_max - self.gamma_min)
        h = torch.cat([z, fourier_features(z, self.fourier_min, self.fourier_max)], dim=1)
        return self.unet(h, cond)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε̂ for z (B, C, H, W) at times t (B,) in [0, 1]: the denoiser the samplers call."""
        return self.predict(z, self.gamma(t))
