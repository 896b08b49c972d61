"""Stateless samplers over (denoiser, noise process, chain).

As in k-diffusion, a sampler is a function: the step budget lives in the :class:`Chain` argument,
never in sampler state. All samplers share the ε-parametrisation

    x̂_0 = (x_i − √(1 − ᾱ'_i)·ε̂) / √ᾱ'_i,

and the noise injected in the stochastic term comes from the noise process
(:meth:`NoiseProcess.reverse_noise`), so the same functions sample every noise family.

- ``ancestral``: x_{i−1} = μ̃'_i(x̂_0, x_i) + σ_i z with σ² = β̃'_i (``betatilde``) or β'_i (``beta``,
  the large-variance σ̂ of DDIM). The large variance is only ever used in this posterior-mean form:
  in the DDIM form 1 − ᾱ'_{i−1} − σ̂² turns negative on respaced chains.
- ``ddim``: x_{i−1} = √ᾱ'_{i−1}·x̂_0 + √(1 − ᾱ'_{i−1} − σ_i²)·ε̂ + σ_i z,
  σ_i = η·√((1 − ᾱ'_{i−1})/(1 − ᾱ'_i))·√(1 − ᾱ'_i/ᾱ'_{i−1}). η = 1 equals ancestral ``betatilde``.

The last step (i = 1 → 0) injects no noise. NFE = K network evaluations for a K-step chain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch

from .config import SamplerSpec
from .noise.base import expand_like
from .noise.schedule import Chain
from .rng import RNG

#: ε̂ = denoiser(x_t, t): x_t (B, C, H, W), t (B,) float, the chain's time (``Chain.tau``: 1..T or [0, 1]).
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class NoiseSource(Protocol):
    """What a sampler reads from a noise process: where to start and what noise to inject
    (:class:`~.noise.base.NoiseProcess` and :class:`~.noise.logsnr.ContinuousGaussian` both provide it)."""

    def prior_sample(self, shape: Sequence[int], rng: RNG, *, device: torch.device | str = "cpu") -> torch.Tensor: ...

    def reverse_noise(self, shape: Sequence[int], chain: Chain, i: int, rng: RNG, *,
                      device: torch.device | str = "cpu") -> torch.Tensor: ...


@dataclass(frozen=True)
class SampleResult:
    x0: torch.Tensor  # (B, C, H, W) in [-1, 1] (when clipped)
    nfe: int
    seconds: float


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: float | torch.Tensor,
               clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """x̂_0 from ε̂, optionally clipped to [−1, 1]; ε̂ is recomputed from the clipped x̂_0 so that
    both updates use one consistent (x̂_0, ε̂) pair (this keeps DDIM η = 1 ≡ ancestral β̃ exact).
    ``alpha_bar`` is a number or a tensor broadcasting against x_t (per-sample times)."""
    return x0_pair(x_t, (x_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5, alpha_bar, clip)


def x0_pair(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: float | torch.Tensor,
            clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂_0, ε̂) from a prediction of x̂_0, optionally clipped to [−1, 1], with ε̂ = (x_t − √ᾱ x̂_0)/√(1 − ᾱ)."""
    if clip:
        x0 = x0.clamp(-1, 1)
    return x0, (x_t - alpha_bar**0.5 * x0) / (1 - alpha_bar) ** 0.5


def ddim_sigma(chain: Chain, i: int, eta: float) -> float:
    """σ_i = η √((1 − ᾱ'_{i−1})/(1 − ᾱ'_i)) √(1 − ᾱ'_i/ᾱ'_{i−1}) (DDIM eq. 16)."""
    ab, ab_prev = float(chain.alpha_bar[i]), float(chain.alpha_bar[i - 1])
    return eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5


def ancestral_step(x_t, x0, chain: Chain, i: int | torch.Tensor, variance: str, z) -> torch.Tensor:
    """x_{i−1} = c0_i x̂_0 + ct_i x_i + σ_i z, σ² = β̃'_i or β'_i, with no noise at i = 1 (z may be None
    when every i is 1). ``i`` is one chain index or per-sample indices (B,) (DDGAN's training pairs)."""
    c0, ct = chain.posterior_coefs()
    idx = torch.full((x_t.shape[0],), i) if isinstance(i, int) else i.detach().cpu().long()
    mean = expand_like(c0[idx], x_t) * x0 + expand_like(ct[idx], x_t) * x_t
    if z is None:
        if (idx > 1).any():
            raise ValueError("ancestral_step: noise z is required at chain indices i > 1")
        return mean
    var = chain.beta_tilde if variance == "betatilde" else chain.beta
    return mean + expand_like(var[idx].sqrt() * (idx > 1), x_t) * z


def ddim_step(x0, eps, chain: Chain, i: int, eta: float, z) -> torch.Tensor:
    """x_{i−1} = √ᾱ'_{i−1} x̂_0 + √(1 − ᾱ'_{i−1} − σ²) ε̂ + σ z."""
    ab_prev = float(chain.alpha_bar[i - 1])
    sigma = ddim_sigma(chain, i, eta) if i > 1 else 0.0
    out = ab_prev**0.5 * x0 + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
    return out + sigma * z if sigma > 0 else out


PREDICTIONS = ("eps", "x0")


def sample(denoiser: Denoiser, process: NoiseSource, chain: Chain, spec: SamplerSpec, shape: Sequence[int],
           rng: RNG, *, clip_x0: bool = True, device: torch.device | str = "cpu",
           x_T: torch.Tensor | None = None, prediction: str = "eps") -> SampleResult:
    """Run ``spec`` over ``chain`` from x_T (drawn from the process prior unless given). The denoiser
    predicts ε̂ (``prediction="eps"``) or x̂_0 directly (``"x0"``, DDGAN's generator); the other one of
    the pair follows from x_i = √ᾱ'_i x̂_0 + √(1 − ᾱ'_i) ε̂."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction = {prediction!r} is invalid: must be one of {list(PREDICTIONS)}")
    start = time.perf_counter()
    x = process.prior_sample(shape, rng, device=device) if x_T is None else x_T.to(device)
    B = shape[0]
    stochastic = not (spec.kind == "ddim" and spec.eta == 0)
    nfe = 0
    for i in range(chain.K, 0, -1):
        t = torch.full((B,), float(chain.tau[i]), device=device)
        out = denoiser(x, t).float()
        nfe += 1
        ab = float(chain.alpha_bar[i])
        x0, eps = predict_x0(x, out, ab, clip_x0) if prediction == "eps" else x0_pair(x, out, ab, clip_x0)
        # z only where it is used: the last step adds none, and deterministic DDIM (η = 0) never does
        # (x_T is drawn first either way, so every sampler of a cell starts from the same noise)
        z = process.reverse_noise(shape, chain, i, rng, device=device) if i > 1 and stochastic else None
        if spec.kind == "ancestral":
            x = ancestral_step(x, x0, chain, i, spec.variance, z)
        else:
            x = ddim_step(x0, eps, chain, i, spec.eta, z)
    if isinstance(device, torch.device) and device.type == "cuda" or device == "cuda":
        torch.cuda.synchronize()
    return SampleResult(x0=x, nfe=nfe, seconds=time.perf_counter() - start)
