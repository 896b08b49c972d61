"""Denoising Diffusion Gamma Models (arXiv 2110.05948): Gamma noise of scale θ0, the same samplers and chains as DDPM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from .base import MethodOptions


@dataclass(frozen=True)
class DDGMOptions(MethodOptions):
    """Gamma noise (DDGM): scale θ0 of θ_t = √ᾱ_t θ0, and the loss on the standardised noise."""

    schema: ClassVar[Mapping[str, Any]] = {
        "additionalProperties": False, "required": ["theta0"],
        "properties": {"family": True,
                       "theta0": {"type": "number", "exclusiveMinimum": 0,
                                  "description": "Gamma scale θ0 (θ_t = √ᾱ_t θ0); 0.001 in DDGM"},
                       "loss": {"enum": ["l1", "l2"], "description": "loss on the standardised noise: l1 (the "
                                "paper's) or l2 (ablation)"}}}
    # Gamma marginals: ε̂ = E[ε | x_t] is not the score, so a deterministic sampler solves the DDIM ODE of this noise;
    # the stochastic chain is the posterior chain of a Markov forward process (DDGM §3), which does tend to the data
    gaussian_marginals: ClassVar[bool] = False
    nll_undefined_reason: ClassVar[str | None] = (
        "the reverse kernel of Gamma noise is a shifted Gamma with one-sided support (x_{t−1} ≥ μ_θ(x_t) − "
        "σ_t √k̄_{t−1}), so the posterior of a held-out image puts mass where the model has none and every KL term "
        "of the variational bound is infinite")

    theta0: float
    loss: str = "l1"


OPTIONS = DDGMOptions
