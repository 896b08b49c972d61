"""Gamma noise: Denoising Diffusion Gamma Models (DDGM, Nachmani et al. 2021, arXiv 2110.05948).

With θ_t = √ᾱ_t·θ0 and k_t = β_t/(ᾱ_t θ0²) (the paper writes α_t; with ᾱ_t the variance telescopes),
the forward marginal is

    x_t = √ᾱ_t x_0 + (ḡ_t − k̄_t θ_t),   ḡ_t ~ Γ(k̄_t, θ_t),   k̄_t = Σ_{s≤t} k_s = (1 − ᾱ_t)/(ᾱ_t θ0²),

because Σ β_s/ᾱ_s = Σ (1/ᾱ_s − 1/ᾱ_{s−1}) = 1/ᾱ_t − 1. Its variance is k̄_t θ_t² = 1 − ᾱ_t, so the
standardised noise ε_t = (ḡ_t − k̄_t θ_t)/√(1 − ᾱ_t) = (G − k̄_t)/√k̄_t with G ~ Γ(k̄_t, 1) has zero mean,
unit variance and skewness 2/√k̄_t. k̄ and θ are functions of ᾱ alone, so on a respaced chain
(ᾱ'_i = ᾱ_{τ_i}) they equal their values at τ_i exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import LOSSES, NoiseProcess, expand_like, noise_loss, on_device
from ..families.ddgm import DDGMOptions
from ..rng import to_device


class GammaNoise(NoiseProcess):
    """ε_t = (Γ(k̄_t, 1) − k̄_t)/√k̄_t; forward step x_t = √α_t x_{t−1} + (g_t − k_t θ_t), g_t ~ Γ(k_t, θ_t);
    loss |ε − ε_θ| (``l1``, the paper's) or (ε − ε_θ)² (``l2``, an ablation)."""

    name = "gamma"
    markov_forward = True  # Γ(k̄_{t−1}, θ_{t−1})·√α_t + Γ(k_t, θ_t) = Γ(k̄_t, θ_t): the scales agree
    nll_undefined_reason = DDGMOptions.nll_undefined_reason  # the family's declaration (diffsteps.families)

    def __init__(self, schedule, theta0: float, loss: str):
        super().__init__(schedule)
        if not theta0 > 0:
            raise ValueError(f"GammaNoise: theta0 = {theta0!r} is invalid: must be > 0")
        if loss not in LOSSES:
            raise ValueError(f"GammaNoise: loss = {loss!r} is invalid: must be one of {list(LOSSES)}")
        self.theta0, self.loss_norm = float(theta0), loss
        ab = self.alpha_bar.numpy()
        #: k̄_t for t = 0..T, float64; k̄_0 = 0 (no noise at the data end)
        self.k_bar = (1.0 - ab) / (ab * self.theta0**2)
        #: θ_t = √ᾱ_t θ0 for t = 0..T
        self.theta = np.sqrt(ab) * self.theta0

    def sample_noise(self, shape, t, rng, *, device="cpu", dtype=torch.float32):
        t = self._check_t(t)
        k = on_device(self.k_bar, t.device)[t]  # (B,)
        g = rng.standard_gamma(k, shape)  # float64: float32 collapses at k ~ 1e10 and underflows at k ~ 1e-2
        k = expand_like(k, g)
        return to_device(((g - k) / k.sqrt()).to(dtype), device)  # standardised in float64, then cast

    def forward_step(self, x_prev, t, rng):
        t = self._check_t(t)
        beta = on_device(self.schedule.betas, t.device)[t - 1]
        k_t = beta / (on_device(self.alpha_bar, t.device)[t] * self.theta0**2)  # (B,)
        g = rng.standard_gamma(k_t, x_prev.shape)  # Γ(k_t, 1), float64
        scale = on_device(self.theta, t.device)[t]
        noise = expand_like(scale, g) * (g - expand_like(k_t, g))  # g_t − k_t θ_t
        alpha = expand_like(1.0 - beta, x_prev)
        return alpha.sqrt() * x_prev + noise.to(device=x_prev.device, dtype=x_prev.dtype)

    def loss(self, eps_pred, eps):
        return noise_loss(eps_pred, eps, self.loss_norm)

    def prior_sample(self, shape, rng, *, device="cpu"):
        """x_T = ḡ_T − k̄_T θ_T = √(1 − ᾱ_T)·ε_T, DDGM's start (its variance is 1 − ᾱ_T, not 1)."""
        return float((1 - self.alpha_bar[self.T]).sqrt()) * super().prior_sample(shape, rng, device=device)

    def skewness(self, t):
        return 2.0 / np.sqrt(self.k_bar[np.asarray(t)])
