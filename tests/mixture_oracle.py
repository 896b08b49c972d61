"""An exact test oracle with non-Gaussian data: a 2-D Gaussian mixture under a variance-preserving process.

Data x_0 ~ Σ_k w_k N(μ_k, s_k² I) and x_t = α x_0 + σ ε (α² = ᾱ, σ² = 1 − ᾱ) give a mixture marginal
Σ_k w_k N(α μ_k, (α² s_k² + σ²) I), so the denoiser is closed form:

    E[x_0 | x_t] = Σ_k r_k(x_t) (μ_k + α s_k² / (α² s_k² + σ²) · (x_t − α μ_k)),

with r_k the posterior weight of component k. It depends on t only through σ̃ = σ/α, so the probability-flow ODE
dx̃/dσ̃ = (x̃ − E[x_0 | x_t])/σ̃ in x̃ = x/α is smooth in σ̃ on any grid. Its reference is an independent
high-accuracy solve (scipy's DOP853, tolerance 1e-12), not a sampler of the project.

Two schedules: ``continuous`` (γ = log σ̃² linear in t ∈ [0, 1] from −13.3 to 5, VDM's fixed schedule, in float64,
so every spacing is exact) and ``discrete`` (the study's linear β, T = 1000, on integer times; its ODE runs to t = 1
and ends with the final denoising x̂_0 at t = 1, as every solver of the study does). Tensors are float64, shape
(N, 2, 1, 1).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy.integrate import solve_ivp

from diffsteps.noise.gaussian import GaussianNoise
from diffsteps.noise.schedule import Chain, Schedule, make_betas
from diffsteps.rng import BatchRNG
from diffsteps.sampler_registry import SamplerSpec
from diffsteps.samplers import sample
from diffsteps.spacing import SPACINGS

WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
MEANS = torch.tensor([[0.6, 0.4], [-0.5, 0.2], [0.0, -0.7]], dtype=torch.float64)  # (components, 2)
STDS = torch.tensor([0.15, 0.25, 0.1], dtype=torch.float64)
GAMMA_0, GAMMA_1 = -13.3, 5.0
DISCRETE = Schedule(make_betas("linear", 1000))
#: what the samplers read of a process: nothing here, x_T is given and the solvers are deterministic
PROCESS = GaussianNoise(DISCRETE)


def posterior_mean(x: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """E[x_0 | x_t] for x (N, 2) and ᾱ (N, 1) float64."""
    a, s2 = alpha_bar.sqrt()[..., None], (1 - alpha_bar)[..., None]  # (N, 1, 1)
    var = a**2 * STDS**2 + s2  # (N, 1, components)
    diff = x[:, :, None] - a * MEANS.T[None]  # (N, 2, components)
    log_r = torch.log(WEIGHTS) - (diff**2).sum(1) / (2 * var[:, 0]) - torch.log(var[:, 0])  # 2-D: log det = 2 log √var
    r = (log_r - log_r.logsumexp(-1, keepdim=True)).exp()
    return ((MEANS.T[None] + a * STDS**2 / var * diff) * r[:, None]).sum(-1)


def continuous_alpha_bar(t: torch.Tensor | np.ndarray) -> torch.Tensor:
    """ᾱ(t) = sigmoid(−γ(t)), γ(t) = γ_0 + (γ_1 − γ_0) t, float64."""
    return torch.sigmoid(-(GAMMA_0 + (GAMMA_1 - GAMMA_0) * torch.as_tensor(t, dtype=torch.float64)))


def continuous_chain(K: int, spacing) -> Chain:
    """The K-step chain of a spacing (:mod:`diffsteps.spacing`) on the continuous schedule, exact in float64."""
    t = torch.from_numpy(spacing.continuous(K, lambda u: GAMMA_0 + (GAMMA_1 - GAMMA_0) * u))
    return Chain.from_alpha_bar(t, continuous_alpha_bar(t))


def discrete_chain(K: int, spacing) -> Chain:
    return DISCRETE.chain(K, spacing)


def eps_denoiser(continuous: bool):
    """ε̂(x_t, t) = (x_t − α E[x_0 | x_t])/σ: the chain's time t is t ∈ [0, 1] or a (real) time of 1..T."""
    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = (continuous_alpha_bar(t) if continuous else torch.from_numpy(DISCRETE.alpha_bar_at(t.double().numpy())))
        ab = ab.reshape(-1, 1)
        flat = x.reshape(len(x), 2).double()
        return ((flat - ab.sqrt() * posterior_mean(flat, ab)) / (1 - ab).sqrt()).reshape(x.shape)
    return eps


def x_T(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Starting points x_T ~ N(0, I), (n, 2, 1, 1) float64."""
    return torch.randn((n, 2, 1, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def exact_from_seed(n: int, seed: int, continuous: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_T, its exact endpoint) for :func:`x_T` (n, seed), solved once per process."""
    start = x_T(n, seed)
    return start, exact_endpoint(start, continuous)


def exact_endpoint(start: torch.Tensor, continuous: bool) -> torch.Tensor:
    """The ODE's endpoint from x_T = ``start`` by DOP853 in σ̃: to t = 0 (output α_0 x̃_0, what a continuous chain's
    solvers return), or to t = 1 followed by the final denoising x̂_0 (a discrete chain's)."""
    ab_hi, ab_lo = ((float(continuous_alpha_bar(1.0)), float(continuous_alpha_bar(0.0))) if continuous
                    else (float(DISCRETE.alpha_bar[-1]), float(DISCRETE.alpha_bar[1])))
    sig_hi, sig_lo = math.sqrt((1 - ab_hi) / ab_hi), math.sqrt((1 - ab_lo) / ab_lo)
    n = len(start)

    def velocity(sig: float, y: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(y.reshape(n, 2))
        ab = torch.full((n, 1), 1.0 / (1.0 + sig**2), dtype=torch.float64)
        return ((xt - posterior_mean(xt * ab.sqrt(), ab)) / sig).numpy().ravel()

    y0 = (start.reshape(n, 2) / math.sqrt(ab_hi)).numpy().ravel()
    sol = solve_ivp(velocity, (sig_hi, sig_lo), y0, method="DOP853", rtol=1e-12, atol=1e-12)
    xt = torch.from_numpy(sol.y[:, -1].reshape(n, 2))
    if continuous:
        return (math.sqrt(ab_lo) * xt).reshape(start.shape)
    ab = torch.full((n, 1), ab_lo, dtype=torch.float64)
    return posterior_mean(xt * math.sqrt(ab_lo), ab).reshape(start.shape)


def solve(name: str, K: int, spacing: str, start: torch.Tensor, continuous: bool) -> torch.Tensor:
    """The endpoint of sampler ``name`` at K steps of ``spacing`` from x_T = ``start``, with the exact denoiser."""
    chain = (continuous_chain if continuous else discrete_chain)(K, SPACINGS[spacing])
    return sample(eps_denoiser(continuous), PROCESS, chain, SamplerSpec.parse(name), start.shape, BatchRNG(0),
                  clip_x0=False, x_T=start).x0


def rms_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean over points of the RMS distance, as the study's solver error."""
    return float((x.double() - ref).pow(2).flatten(1).mean(1).sqrt().mean())
