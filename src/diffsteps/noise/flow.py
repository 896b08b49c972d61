"""Flow matching on the linear interpolant (rectified flow; Lipman et al. 2023, Liu et al. 2023; STUDY.md §6).

    x_t = (1 − t)·x_0 + t·ε,   t ∈ [0, 1],   ε ~ N(0, I),

a Gaussian process with α_t = 1 − t and σ_t = t, so λ = log(α_t/σ_t) = log((1 − t)/t) and γ = −2λ. The network
predicts the velocity v = dx_t/dt = ε − x_0; from v̂ at (x_t, t) both predictions the study's samplers read follow:

    x̂_0 = x_t − t·v̂,   ε̂ = x_t + (1 − t)·v̂.

The samplers run on variance-preserving chains (:class:`~.schedule.Chain`: x_i = √ᾱ'_i x_0 + √(1 − ᾱ'_i) ε). The
interpolant is one after dividing by c_t = √((1 − t)² + t²): z = x_t/c_t has ᾱ' = (1 − t)²/c_t² and the same ε, so
:class:`VelocityDenoiser` maps z back to x_t, asks the network and returns ε̂, and every sampler and spacing of a
Gaussian family applies unchanged (Euler in t is DDIM η = 0 on this schedule).

Chains sit on t ∈ [t_min, t_max] (:class:`FlowSchedule`): λ is infinite at t = 0 and t = 1, and the log-SNR
spacings and solvers need it finite at both ends. Sampling starts from N(0, I) at t_max, whose true marginal
differs from it by (1 − t_max)·x_0, and the last step lands on x_{t_min} = (1 − t_min)·x_0 + t_min·ε, read as
x_{t_min}/(1 − t_min): both are far below the 2/255 spacing of the image levels at the defaults 1e-3.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..rng import RNG
from .base import expand_like, noise_loss
from .logsnr import ContinuousGaussian, LogSNRSchedule, grid_times
from .schedule import Chain, TimeGrid

#: the network's time input is TIME_SCALE·t: the shared sinusoidal embedding sees the discrete methods' 0..1000 range
TIME_SCALE = 1000.0
#: the default ends of the sampling chains: λ = ±log(999) ≈ ±6.9
T_MIN, T_MAX = 1e-3, 1.0 - 1e-3
#: the training times' laws: uniform on [0, 1], or SD3's logit-normal (the logit of t standard normal)
TIME_SAMPLINGS = ("uniform", "logit_normal")


def flow_gamma(t: torch.Tensor | float) -> torch.Tensor | float:
    """γ(t) = log(σ_t²/α_t²) = 2·log(t/(1 − t)) of the interpolant, for t in (0, 1)."""
    if isinstance(t, torch.Tensor):
        return 2.0 * (torch.log(t) - torch.log1p(-t))
    return 2.0 * (math.log(t) - math.log1p(-t))


def vp_scale(t: torch.Tensor) -> torch.Tensor:
    """c_t = √((1 − t)² + t²): the interpolant x_t is c_t times a variance-preserving state z, whose ᾱ' is
    ((1 − t)/c_t)²."""
    return torch.sqrt((1 - t) ** 2 + t**2)


class FlowSchedule(LogSNRSchedule):
    """The interpolant's log-SNR as a fixed :class:`~.logsnr.LogSNRSchedule` of the chain position u ∈ [0, 1]:
    t(u) = t_min + (t_max − t_min)·u and γ(u) = flow_gamma(t(u)), nothing learned. ``uniform`` chains are uniform
    in t (rectified flow's Euler grid); ``logsnr`` and ``karras`` invert γ like VDM's."""

    kind = "rectified_flow"
    has_interior = False

    def __init__(self, t_min: float = T_MIN, t_max: float = T_MAX):
        if not 0.0 < t_min < t_max < 1.0:
            raise ValueError(f"flow chain ends t_min = {t_min}, t_max = {t_max} are invalid: need 0 < t_min < t_max < 1 "
                             "(λ is infinite at t = 0 and t = 1)")
        super().__init__(flow_gamma(t_min), flow_gamma(t_max), learn_endpoints=False)
        self.t_min, self.t_max = t_min, t_max
        self._g_min, self._g_max = flow_gamma(t_min), flow_gamma(t_max)  # exact, where the buffers hold float32

    def time(self, u: torch.Tensor) -> torch.Tensor:
        """t(u) = t_min + (t_max − t_min)·u, elementwise."""
        return self.t_min + (self.t_max - self.t_min) * u

    def shape(self, u):
        """ĝ(u) = (γ(t(u)) − γ(t_min))/(γ(t_max) − γ(t_min)): 0 at u = 0, 1 at u = 1, increasing."""
        return (flow_gamma(self.time(u.double())) - self._g_min).float() / (self._g_max - self._g_min)


class FlowGaussian(ContinuousGaussian):
    """The interpolant's process over a :class:`FlowSchedule`: the VP chains of :class:`~.logsnr.ContinuousGaussian`,
    whose state z is x_t/c_t, so that its own coordinates are x_t = c_t·z (where its trajectories are straight
    lines for single-point data)."""

    schedule: FlowSchedule

    @torch.no_grad()
    def chain(self, K: int, spacing: TimeGrid | None = None) -> Chain:
        """The K-step chain at positions u_i of the ``spacing`` grid (τ_i = u_i, the denoiser's input), with
        ᾱ'_i = (1 − t_i)²/((1 − t_i)² + t_i²) in float64 at t_i = t(u_i): exact, where the VP process reads ᾱ'
        through its float32 γ, so that the states map to the interpolant without a rounding kink."""
        u = torch.from_numpy(grid_times(self.schedule, K, spacing))
        t = self.schedule.time(u)
        return Chain.from_alpha_bar(u, ((1 - t) / vp_scale(t)) ** 2)

    def state_scale(self, chain: Chain) -> np.ndarray:
        """c_t = √((1 − t)² + t²) at each chain time t = t(τ_i)."""
        return vp_scale(self.schedule.time(chain.tau.double())).numpy()


def interpolate(x0: torch.Tensor, t: torch.Tensor, rng: RNG) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, v): x_t = (1 − t)·x_0 + t·ε and the velocity v = ε − x_0, for x0 (B, C, H, W) and t (B,) in [0, 1];
    ε ~ N(0, I) drawn from ``rng`` on x0's device."""
    eps = rng.randn(x0.shape, dtype=x0.dtype, device=x0.device)
    tb = expand_like(t, x0)
    return (1 - tb) * x0 + tb * eps, eps - x0


def training_times(n: int, law: str, rng: RNG, device: torch.device | str) -> torch.Tensor:
    """n training times (n,) float32 on ``device``: U(0, 1), or sigmoid of N(0, 1) (``logit_normal``)."""
    if law == "uniform":
        return rng.rand((n,), device=device)
    if law == "logit_normal":
        return torch.sigmoid(rng.randn((n,), device=device))
    raise ValueError(f"time_sampling = {law!r} is invalid: must be one of {list(TIME_SAMPLINGS)}")


class VelocityDenoiser(nn.Module):
    """The samplers' ε-denoiser of a velocity network: for z (B, C, H, W) on the VP chain at positions u (B,),

        t = t(u),   x_t = c_t·z,   ε̂ = x_t + (1 − t)·v̂(x_t, t),   c_t = √((1 − t)² + t²).

    ``velocity(x_t, s)`` takes the time input s = TIME_SCALE·t (the trained network, or an exact velocity in tests)."""

    def __init__(self, velocity: nn.Module, schedule: FlowSchedule):
        super().__init__()
        self.velocity, self.schedule = velocity, schedule

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        t = self.schedule.time(u.double())
        x = z * expand_like(vp_scale(t), z)
        v = self.velocity(x, (TIME_SCALE * t).to(z.dtype)).to(z.dtype)
        return x + expand_like(1 - t, z) * v


class FlowObjective:
    """Flow matching's loss (an :class:`~diffsteps.objectives.Objective`; STUDY.md §6): t from ``time_sampling``,
    x_t = (1 − t)·x_0 + t·ε and the per-sample mean over pixels of (v − v_θ(x_t, TIME_SCALE·t))², v = ε − x_0.
    It lives here rather than in :mod:`diffsteps.objectives`, so that only the jobs of flow runs depend on it."""

    def __init__(self, time_sampling: str = "uniform"):
        if time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling = {time_sampling!r} is invalid: must be one of {list(TIME_SAMPLINGS)}")
        self.time_sampling = time_sampling

    def __call__(self, model: nn.Module, x0: torch.Tensor, rng: RNG) -> torch.Tensor:
        t = training_times(x0.shape[0], self.time_sampling, rng, x0.device)
        x_t, v = interpolate(x0, t, rng)
        return noise_loss(model(x_t, TIME_SCALE * t).float(), v.float(), "l2")
