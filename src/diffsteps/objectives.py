"""Training objectives: small callables returning an unreduced per-sample loss (as in EDM's loss.py)."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from .noise.base import NoiseProcess
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
