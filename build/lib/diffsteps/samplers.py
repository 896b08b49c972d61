"""Stateless samplers over (denoiser, noise process, chain).

As in k-diffusion, a sampler is a function: the step budget lives in the :class:`Chain` argument,
never in sampler state. All samplers share the ε-parametrisation

    x̂_0 = (x_i − √(1 − ᾱ'_i)·ε̂) / √ᾱ'_i,

and the noise injected in the stochastic term comes from the noise process
(:meth:`NoiseProcess.reverse_noise`), so the same functions sample every noise family.

- ``ancestral``: x_{i−1} = μ̃'_i(x̂_0, x_i) + σ_i z with σ² = β̃'_i (``betatilde``) or β'_i (``beta``):
  the process's own posterior chain, :class:`~.noise.reverse.Ancestral`.
- ``ddim``: x_{i−1} = √ᾱ'_{i−1}·x̂_0 + √(1 − ᾱ'_{i−1} − σ_i²)·ε̂ + σ_i z,
  σ_i = η·√((1 − ᾱ'_{i−1})/(1 − ᾱ'_i))·√(1 − ᾱ'_i/ᾱ'_{i−1}). η = 1 equals ancestral ``betatilde``.

The last step (i = 1 → 0) injects no noise. NFE = K network evaluations for a K-step chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .config import SamplerSpec
from .noise.reverse import Ancestral, Denoiser, NoiseSource, Sampler, SampleResult, walk
from .noise.schedule import Chain
from .rng import RNG


def ddim_sigma(chain: Chain, i: int, eta: float) -> float:
    """σ_i = η √((1 − ᾱ'_{i−1})/(1 − ᾱ'_i)) √(1 − ᾱ'_i/ᾱ'_{i−1}) (DDIM eq. 16)."""
    ab, ab_prev = float(chain.alpha_bar[i]), float(chain.alpha_bar[i - 1])
    return eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5


def ddim_step(x0, eps, chain: Chain, i: int, eta: float, z) -> torch.Tensor:
    """x_{i−1} = √ᾱ'_{i−1} x̂_0 + √(1 − ᾱ'_{i−1} − σ²) ε̂ + σ z."""
    ab_prev = float(chain.alpha_bar[i - 1])
    sigma = ddim_sigma(chain, i, eta) if i > 1 else 0.0
    out = ab_prev**0.5 * x0 + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
    return out + sigma * z if sigma > 0 else out


@dataclass(frozen=True)
class DDIM:
    """DDIM (arXiv 2010.02502) with stochasticity η ∈ [0, 1]; η = 0 is the deterministic probability-flow solver."""

    eta: float
    name: str

    def _update(self, x, x0, eps, chain, i, z):
        return ddim_step(x0, eps, chain, i, self.eta, z)

    def __call__(self, denoiser, process, chain, shape, rng, *, clip_x0=True, device="cpu", x_T=None,
                 prediction="eps") -> SampleResult:
        return walk(denoiser, process, chain, shape, rng, self._update, stochastic=self.eta > 0, clip_x0=clip_x0,
                    device=device, x_T=x_T, prediction=prediction)


def sampler_for(spec: SamplerSpec) -> Sampler:
    """The sampler a parsed identifier names."""
    return DDIM(spec.eta, spec.name) if spec.kind == "ddim" else Ancestral(spec.variance)


def sample(denoiser: Denoiser, process: NoiseSource, chain: Chain, spec: SamplerSpec, shape: Sequence[int],
           rng: RNG, *, clip_x0: bool = True, device: torch.device | str = "cpu",
           x_T: torch.Tensor | None = None, prediction: str = "eps") -> SampleResult:
    """Run ``spec`` over ``chain`` from x_T (drawn from the process prior unless given). The denoiser
    predicts ε̂ (``prediction="eps"``) or x̂_0 directly (``"x0"``); the other one of the pair follows from
    x_i = √ᾱ'_i x̂_0 + √(1 − ᾱ'_i) ε̂."""
    return sampler_for(spec)(denoiser, process, chain, shape, rng, clip_x0=clip_x0, device=device, x_T=x_T,
                             prediction=prediction)
