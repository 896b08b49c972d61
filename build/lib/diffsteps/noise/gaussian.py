"""Gaussian noise: DDPM (Ho et al. 2020, arXiv 2006.11239)."""

from __future__ import annotations

import numpy as np
import torch

from .base import NoiseProcess


class GaussianNoise(NoiseProcess):
    """ε_t ~ N(0, I) at every t; forward step x_t = √α_t x_{t−1} + √β_t z; loss ‖ε − ε_θ‖²."""

    name = "gaussian"
    markov_forward = True
    nll_undefined_reason = None

    def sample_noise(self, shape, t, rng, *, device="cpu", dtype=torch.float32):
        self._check_t(t)  # the law does not depend on t, but t = 0 has no noise in any family
        return rng.randn(shape, device=device, dtype=dtype)

    def skewness(self, t):
        return np.zeros(np.shape(t))
