"""Exponential moving average of the weights, with a decay warm-up.

After optimiser step k (k = 0, 1, ... counts earlier EMA updates)

    θ̄ ← d_k θ̄ + (1 − d_k) θ,   d_k = min(decay, (1 + k) / (10 + k))  with warm-up, else d_k = decay.

The warm-up (as in TensorFlow's ``ExponentialMovingAverage(num_updates=...)``) keeps short runs from
sampling with weights dominated by the random initialisation: with decay 0.9999 and no warm-up, θ̄
after 10k steps still holds e^{-1} ≈ 37 % of θ_0.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


def ema_decay(k: int, decay: float, warmup: bool) -> float:
    """d_k = min(decay, (1 + k) / (10 + k)) with warm-up, else ``decay``; k = number of earlier updates."""
    return min(decay, (1.0 + k) / (10.0 + k)) if warmup else decay


class EMA:
    """A frozen copy of ``model`` whose parameters track θ̄; buffers are copied as they are."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup = decay, warmup
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """θ̄ ← d_k θ̄ + (1 − d_k) θ for every parameter; returns the d_k used."""
        d = ema_decay(self.num_updates, self.decay, self.warmup)
        ema, live = list(self.model.parameters()), [p.detach().to(q.dtype) for q, p in zip(self.model.parameters(),
                                                                                            model.parameters())]
        # lerp: θ̄ + (1 − d)(θ − θ̄); exact when θ = θ̄, so constant weights stay bit-identical. One fused call over
        # every parameter: per-parameter calls cost more than the arithmetic of a small model
        torch._foreach_lerp_(ema, live, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.num_updates += 1
        return d

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])
