"""The reverse chain of a noise process: the x̂_0 ↔ ε̂ algebra, the posterior step and the K-step walk.

Everything here follows from the forward marginal x_i = √ᾱ'_i x̂_0 + √(1 − ᾱ'_i) ε̂ on a (respaced)
:class:`~.schedule.Chain`, so it is shared by the samplers (:mod:`diffsteps.samplers`), the likelihood
bounds (:mod:`diffsteps.likelihood`) and DDGAN's adversarial objective, none of which import each other:

- :func:`predict_x0` / :func:`x0_pair`: one consistent (x̂_0, ε̂) pair from either prediction;
- :func:`ancestral_step`: x_{i−1} = μ̃'_i(x̂_0, x_i) + σ_i z, the posterior q(x_{i−1} | x_i, x̂_0) with
  σ² = β̃'_i, or β'_i (the large variance);
- :func:`walk`: the K-step loop of every first-order sampler (one network evaluation per step);
- :class:`Ancestral`: the ancestral sampler, which is this posterior chain walked from the prior. It lives
  here, beside the process, because a model whose reverse kernel *is* the posterior (DDGAN's generator)
  samples with it during training, where the study's solvers are not needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from ..rng import RNG
from .base import expand_like, on_device
from .schedule import Chain

#: ε̂ (or x̂_0) = denoiser(x_t, t): x_t (B, C, H, W), t (B,) float, the chain's time (``Chain.tau``: 1..T or [0, 1]).
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PREDICTIONS = ("eps", "x0")
VARIANCES = ("betatilde", "beta")


class NoiseSource(Protocol):
    """What a sampler reads from a noise process: where to start and what noise to inject
    (:class:`~.base.NoiseProcess` and :class:`~.logsnr.ContinuousGaussian` both provide it)."""

    def prior_sample(self, shape: Sequence[int], rng: RNG, *, device: torch.device | str = "cpu") -> torch.Tensor: ...

    def reverse_noise(self, shape: Sequence[int], chain: Chain, i: int, rng: RNG, *,
                      device: torch.device | str = "cpu") -> torch.Tensor: ...

    def state_scale(self, chain: Chain) -> np.ndarray:
        """s_i, (K+1,) float64: s_i·x_i is the chain's state in the family's own coordinates, in which its
        trajectories are measured (their straightness): 1 for a variance-preserving family."""
        ...


@dataclass(frozen=True)
class SampleResult:
    """A sampler's endpoints x0 (B, C, H, W) (in [-1, 1] when clipped), its NFE and wall time. A sampler that
    traces its trajectory (the solver error's reference) also gives, per sample (B,) float64 in the family's own
    coordinates (:meth:`NoiseSource.state_scale`), the ``path_length`` through its nodes and the ``displacement``
    between its ends."""

    x0: torch.Tensor
    nfe: int
    seconds: float
    path_length: torch.Tensor | None = None
    displacement: torch.Tensor | None = None


class Sampler(Protocol):
    """A stateless sampler: ``name`` (its identifier in params.yaml and in every row) and a call that runs it
    over ``chain`` from x_T (drawn from the process prior unless given). The step budget is the chain's K."""

    name: str

    def __call__(self, denoiser: Denoiser, process: NoiseSource, chain: Chain, shape: Sequence[int], rng: RNG, *,
                 clip_x0: bool = True, device: torch.device | str = "cpu", x_T: torch.Tensor | None = None,
                 prediction: str = "eps") -> SampleResult: ...


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: float | torch.Tensor,
               clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """x̂_0 = (x_t − √(1 − ᾱ) ε̂)/√ᾱ, optionally clipped to [−1, 1]; ε̂ is recomputed from the clipped x̂_0 so
    that both updates use one consistent (x̂_0, ε̂) pair (this keeps DDIM η = 1 ≡ ancestral β̃ exact).
    ``alpha_bar`` is a number or a tensor broadcasting against x_t (per-sample times)."""
    return x0_pair(x_t, (x_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5, alpha_bar, clip)


def x0_pair(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: float | torch.Tensor,
            clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂_0, ε̂) from a prediction of x̂_0, optionally clipped to [−1, 1], with ε̂ = (x_t − √ᾱ x̂_0)/√(1 − ᾱ)."""
    if clip:
        x0 = x0.clamp(-1, 1)
    return x0, (x_t - alpha_bar**0.5 * x0) / (1 - alpha_bar) ** 0.5


def ancestral_step(x_t, x0, chain: Chain, i: int | torch.Tensor, variance: str, z) -> torch.Tensor:
    """x_{i−1} = c0_i x̂_0 + ct_i x_i + σ_i z, σ² = β̃'_i or β'_i, with no noise at i = 1 (z may be None
    when every i is 1). ``i`` is one chain index or per-sample indices (B,) (DDGAN's training pairs)."""
    var = chain.beta_tilde if variance == "betatilde" else chain.beta
    if isinstance(i, int):  # one step of a sampler: numbers, so that nothing is copied to the device per step
        c0, ct = (float(c[i]) for c in chain.posterior_coefs())
        if z is None and i > 1:
            raise ValueError("ancestral_step: noise z is required at chain indices i > 1")
        mean = c0 * x0 + ct * x_t
        return mean if i == 1 or z is None else mean + float(var[i].sqrt()) * z
    idx = i.detach().long()
    c0, ct = (on_device(c, idx.device) for c in chain.posterior_coefs())
    mean = expand_like(c0[idx], x_t) * x0 + expand_like(ct[idx], x_t) * x_t
    if z is None:
        if (idx > 1).any():
            raise ValueError("ancestral_step: noise z is required at chain indices i > 1")
        return mean
    return mean + expand_like(on_device(var, idx.device)[idx].sqrt() * (idx > 1), x_t) * z


#: one step of a first-order sampler: (x_i, x̂_0, ε̂, chain, i, z or None) → x_{i−1}
Update = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Chain, int, "torch.Tensor | None"], torch.Tensor]


def start(process: NoiseSource, shape: Sequence[int], rng: RNG, device: torch.device | str,
          x_T: torch.Tensor | None) -> torch.Tensor:
    """x_T: drawn from the process prior (the first draw of ``rng``, so every sampler of a cell starts from the
    same noise) unless given."""
    return process.prior_sample(shape, rng, device=device) if x_T is None else x_T.to(device)


def denoise(denoiser: Denoiser, x: torch.Tensor, chain: Chain, i: int, clip_x0: bool,
            prediction: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One network evaluation at chain index i: the consistent (x̂_0, ε̂) pair for x (B, C, H, W), from a
    denoiser that predicts ε̂ (``prediction="eps"``) or x̂_0 (``"x0"``, DDGAN's generator)."""
    t = torch.full((x.shape[0],), float(chain.tau[i]), device=x.device)
    out = denoiser(x, t).to(x.dtype)  # in x's precision: a float64 solve keeps a float64 denoiser's digits
    ab = float(chain.alpha_bar[i])
    return predict_x0(x, out, ab, clip_x0) if prediction == "eps" else x0_pair(x, out, ab, clip_x0)


def elapsed(t0: float, device: torch.device | str) -> float:
    """Seconds since ``t0``, after the device has finished its queued work (CUDA runs asynchronously)."""
    if isinstance(device, torch.device) and device.type == "cuda" or device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def walk(denoiser: Denoiser, process: NoiseSource, chain: Chain, shape: Sequence[int], rng: RNG, update: Update, *,
         stochastic: bool, clip_x0: bool = True, device: torch.device | str = "cpu",
         x_T: torch.Tensor | None = None, prediction: str = "eps") -> SampleResult:
    """The K-step loop i = K..1 of a first-order sampler: x_T (:func:`start`), then per step one network
    evaluation (:func:`denoise`), the reverse noise z (``stochastic`` samplers, i > 1 only) and ``update``. NFE = K."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction = {prediction!r} is invalid: must be one of {list(PREDICTIONS)}")
    t0 = time.perf_counter()
    x = start(process, shape, rng, device, x_T)
    nfe = 0
    for i in range(chain.K, 0, -1):
        x0, eps = denoise(denoiser, x, chain, i, clip_x0, prediction)
        nfe += 1
        # z only where it is used: the last step adds none, and a deterministic sampler never does
        z = process.reverse_noise(shape, chain, i, rng, device=device) if i > 1 and stochastic else None
        x = update(x, x0, eps, chain, i, z)
    return SampleResult(x0=x, nfe=nfe, seconds=elapsed(t0, device))


@dataclass(frozen=True)
class Ancestral:
    """The ancestral sampler ``ancestral-<variance>``: x_{i−1} = μ̃'_i(x̂_0, x_i) + σ_i z with σ² = β̃'_i
    (``betatilde``) or β'_i (``beta``, the large-variance σ̂ of DDIM). The large variance is only ever used in
    this posterior-mean form: in the DDIM form 1 − ᾱ'_{i−1} − σ̂² turns negative on respaced chains."""

    variance: str

    def __post_init__(self):
        if self.variance not in VARIANCES:
            raise ValueError(f"ancestral variance = {self.variance!r} is invalid: must be one of {list(VARIANCES)}")

    @property
    def name(self) -> str:
        return f"ancestral-{self.variance}"

    def _update(self, x, x0, eps, chain, i, z):
        return ancestral_step(x, x0, chain, i, self.variance, z)

    def __call__(self, denoiser, process, chain, shape, rng, *, clip_x0=True, device="cpu", x_T=None,
                 prediction="eps") -> SampleResult:
        return walk(denoiser, process, chain, shape, rng, self._update, stochastic=True, clip_x0=clip_x0,
                    device=device, x_T=x_T, prediction=prediction)
