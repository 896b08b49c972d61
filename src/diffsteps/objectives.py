"""Training objectives: small callables returning an unreduced per-sample loss (as in EDM's loss.py)."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from .metrics.nll import LogSNRDenoiser, bits_per_dim, vdm_bound
from .noise.base import NoiseProcess
from .noise.logsnr import VarianceGradient
from .rng import RNG


class Objective(Protocol):
    """loss = objective(model, x0, rng): x0 (B, C, H, W) in [−1, 1] → (B,) unreduced loss."""

    def __call__(self, model: nn.Module, x0: torch.Tensor, rng: RNG) -> torch.Tensor: ...


class EpsilonObjective:
    """DDPM's simple loss, generalised to any noise process:

    t ~ U{1..T}, x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε_t, loss = process.loss(ε_θ(x_t, t), ε_t)
    (‖ε − ε_θ‖² for Gaussian noise).
    """

    def __init__(self, process: NoiseProcess):
        self.process = process

    def __call__(self, model: nn.Module, x0: torch.Tensor, rng: RNG) -> torch.Tensor:
        t = rng.randint(1, self.process.T + 1, (x0.shape[0],))
        fs = self.process.q_sample(x0, t, rng)
        return self.process.loss(model(fs.x_t, t.to(x0.device).float()), fs.eps)


class VDMObjective:
    """VDM's −VLB in bits/dim per sample: prior KL + exact 256-bin decoder + diffusion loss
    (:func:`~.metrics.nll.vdm_bound`), continuous-time (``T_train`` None) or the discrete-T bound.

    Times are low-discrepancy across the batch, t_b = (u + b/B) mod 1 with one u ~ U(0, 1) per batch
    (VDM appendix), which lowers the variance of the batch mean at no cost. In continuous time the
    schedule's interior (if it has one) is trained on the variance of the diffusion loss instead of
    the bound (:class:`~.noise.logsnr.VarianceGradient`); in discrete time the bound itself depends
    on the interior and trains it.
    """

    def __init__(self, T_train: int | None = None):
        self.T_train = T_train

    def __call__(self, model: LogSNRDenoiser, x0: torch.Tensor, rng: RNG) -> torch.Tensor:
        B, D = x0.shape[0], x0[0].numel()
        u = (rng.rand((1,), device=x0.device) + torch.arange(B, device=x0.device) / B) % 1.0
        eps = rng.randn(x0.shape, device=x0.device)
        router = VarianceGradient() if self.T_train is None and model.gamma.has_interior else None
        terms = vdm_bound(model, x0, u, eps, T=self.T_train, router=router)
        if router is not None:
            router.set_loss(bits_per_dim(terms.diffusion, D))
        return bits_per_dim(terms.total, D)
