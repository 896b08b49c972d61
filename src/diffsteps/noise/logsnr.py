"""Continuous-time Gaussian diffusion on a monotone log-SNR schedule (VDM, arXiv 2107.00630).

    z_t = α_t x + σ_t ε,   σ_t² = sigmoid(γ(t)),   α_t² = sigmoid(−γ(t)),   t ∈ [0, 1],

so SNR(t) = α_t²/σ_t² = exp(−γ(t)) falls as γ rises. Every schedule here is written as

    γ(t) = γ_0 + (γ_1 − γ_0)·ĝ(t),   ĝ(0) = 0, ĝ(1) = 1, ĝ strictly increasing,

which separates the two things VDM learns in different ways:

- the endpoints γ_0 < γ_1 (γ_1 = γ_0 + softplus(·), so γ is increasing for every parameter value).
  The continuous-time bound depends on the schedule only through them (VDM eq. 15), so they are
  learned through the bound;
- the interior shape ĝ (``monotone_net``: positive weights only). The bound does not see it: its
  gradient is zero in expectation and pure noise per batch. It is learned by minimising the
  variance of the diffusion-loss estimator (VDM appendix I.2), with :class:`VarianceGradient`.

:class:`ContinuousGaussian` is the forward process over such a schedule: it draws its own noise and
builds the discrete chains (:class:`~.schedule.Chain`) that the shared samplers run on, at any step
count K, from one trained model.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..rng import RNG
from .schedule import Chain, TimeGrid

#: VDM's initial endpoints: SNR from e^{13.3} ≈ 6e5 (σ_0 ≈ 1.3e-3) down to e^{−5} ≈ 6.7e-3
GAMMA_MIN, GAMMA_MAX = -13.3, 5.0


def _softplus_inverse(y: float) -> float:
    """x with softplus(x) = y > 0."""
    return y + math.log(-math.expm1(-y))


@dataclass(frozen=True)
class GammaAt:
    """γ(t) and γ'(t) = dγ/dt at a batch of times, each (B,) float32."""

    gamma: torch.Tensor
    slope: torch.Tensor | None


class VarianceGradient:
    """Turns the gradient that the schedule's interior receives from the loss into the gradient of
    the variance of the diffusion-loss estimator (VDM appendix I.2).

    The continuous bound E[L] does not depend on the interior η, so ∇_η Var[L] = ∇_η E[L²] =
    E[2L·∇_η L]. Every tensor through which the per-sample loss L_b depends on η (ĝ(t_b) and
    ĝ'(t_b), shape (B,)) is passed through :meth:`route`; in the backward pass of mean_b(L_total,b)
    their gradient (1/B)·∂L_b/∂ĝ_b is multiplied by 2·L_b, which yields ∇_η mean_b(L_b²), while the
    network and the endpoints, which do not sit behind these tensors, keep the gradient of the bound.
    One backward pass serves both objectives. :meth:`set_loss` must be called (with L, shape (B,))
    between the forward and the backward pass.
    """

    def __init__(self) -> None:
        self._weight: torch.Tensor | None = None

    def route(self, value: torch.Tensor) -> torch.Tensor:
        """An alias of ``value`` (B,) whose incoming gradient is rescaled (a view, so that gradients
        taken w.r.t. ``value`` itself, e.g. γ' by autograd, are not affected)."""
        out = value.view_as(value)
        if out.requires_grad:
            out.register_hook(self._rescale)
        return out

    def set_loss(self, loss: torch.Tensor) -> None:
        self._weight = 2.0 * loss.detach()

    def _rescale(self, grad: torch.Tensor) -> torch.Tensor:
        if self._weight is None:
            raise RuntimeError("VarianceGradient: backward ran before set_loss(); the per-sample diffusion loss "
                               "must be set between the forward and the backward pass")
        return grad * self._weight.to(grad.dtype)


class LogSNRSchedule(nn.Module, ABC):
    """γ(t) = γ_0 + (γ_1 − γ_0)·ĝ(t), increasing in t for every parameter value (module docstring).

    ``learn_endpoints`` makes γ_0 and γ_1 parameters (initialised at ``gamma_min``, ``gamma_max``);
    otherwise they are fixed buffers. Subclasses define the shape ĝ.
    """

    kind: ClassVar[str]
    #: True when ĝ has parameters (learned by the variance objective, not by the bound)
    has_interior: ClassVar[bool]

    def __init__(self, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX, learn_endpoints: bool = True):
        super().__init__()
        if not gamma_max > gamma_min:
            raise ValueError(f"log-SNR endpoints gamma_min = {gamma_min}, gamma_max = {gamma_max} are invalid: "
                             "expected gamma_min < gamma_max")
        g0 = torch.tensor(float(gamma_min))
        raw_range = torch.tensor(_softplus_inverse(gamma_max - gamma_min))
        if learn_endpoints:
            self.gamma_0, self.raw_range = nn.Parameter(g0), nn.Parameter(raw_range)
        else:
            self.register_buffer("gamma_0", g0)
            self.register_buffer("raw_range", raw_range)

    def endpoints(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(γ_0, γ_1), scalars, with γ_1 − γ_0 = softplus(·) > 0."""
        return self.gamma_0, self.gamma_0 + F.softplus(self.raw_range)

    @abstractmethod
    def shape(self, t: torch.Tensor) -> torch.Tensor:
        """ĝ(t) for t (B,) float32 in [0, 1]: ĝ(0) = 0, ĝ(1) = 1, strictly increasing. (B,)"""

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """γ(t), (B,) float32."""
        return self.evaluate(t, slope=False).gamma

    def evaluate(self, t: torch.Tensor, *, slope: bool = True, router: VarianceGradient | None = None) -> GammaAt:
        """γ(t) and, with ``slope``, γ'(t) by autograd (kept differentiable when grad mode is on).

        Computed in float32 outside any autocast region: γ spans [−13.3, 5] and bf16 would round it
        by up to 0.03. ``router`` (training only) reroutes the interior's gradient (:class:`VarianceGradient`).
        """
        grad_mode = torch.is_grad_enabled()
        with torch.autocast(device_type=t.device.type, enabled=False):
            t = t.detach().float()
            if slope:
                with torch.enable_grad():  # γ' needs the graph of ĝ even when evaluating under no_grad
                    t.requires_grad_(True)
                    g = self.shape(t)
                    gp = torch.autograd.grad(g.sum(), t, create_graph=grad_mode)[0]
                if not grad_mode:
                    g, gp = g.detach(), gp.detach()
            else:
                g, gp = self.shape(t), None
            if router is not None and self.has_interior:
                g = router.route(g)
                gp = router.route(gp) if gp is not None else None
            g0, g1 = self.endpoints()
            return GammaAt(gamma=g0 + (g1 - g0) * g, slope=(g1 - g0) * gp if gp is not None else None)


class LearnedLinear(LogSNRSchedule):
    """γ(t) = γ_0 + (γ_1 − γ_0)·t with learned endpoints (VDM's scalar-linear schedule)."""

    kind = "learned_linear"
    has_interior = False

    def shape(self, t):
        return t


class FixedLinear(LearnedLinear):
    """γ(t) = γ_min + (γ_max − γ_min)·t, nothing learned (VDM's fixed baseline)."""

    kind = "fixed_linear"

    def __init__(self, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX):
        super().__init__(gamma_min, gamma_max, learn_endpoints=False)


class MonotoneNet(LogSNRSchedule):
    """Learned endpoints and a learned interior: ĝ(t) = (f(t) − f(0))/(f(1) − f(0)) with

        f(t) = w·t + (1/H)·Σ_k a_k·sigmoid(b_k·(t − c_k)),   w, a_k, b_k = softplus(·) > 0,

    a one-hidden-layer network with positive weights, hence strictly increasing (w > 0). It starts
    close to linear (small a_k), so that early training sees VDM's linear schedule.
    """

    kind = "monotone_net"
    has_interior = True

    def __init__(self, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX, hidden: int = 64):
        super().__init__(gamma_min, gamma_max, learn_endpoints=True)
        gen = torch.Generator().manual_seed(0)  # a fixed start: the schedule is not part of the seed study
        self.raw_w = nn.Parameter(torch.tensor(_softplus_inverse(1.0)))
        self.raw_a = nn.Parameter(torch.full((hidden,), _softplus_inverse(0.05)))
        self.raw_b = nn.Parameter(torch.empty(hidden).uniform_(_softplus_inverse(2.0), _softplus_inverse(20.0),
                                                              generator=gen))
        self.c = nn.Parameter(torch.rand(hidden, generator=gen))

    def _f(self, t: torch.Tensor) -> torch.Tensor:
        a, b, w = F.softplus(self.raw_a), F.softplus(self.raw_b), F.softplus(self.raw_w)
        hidden = torch.sigmoid(b * (t[..., None] - self.c))  # (..., H)
        return w * t + (hidden * a).mean(-1)

    def shape(self, t):
        ends = self._f(torch.tensor([0.0, 1.0], device=t.device))
        return (self._f(t) - ends[0]) / (ends[1] - ends[0])


#: schedule kind → class (``method_config.<run>.schedule``)
SCHEDULES: dict[str, type[LogSNRSchedule]] = {c.kind: c for c in (FixedLinear, LearnedLinear, MonotoneNet)}


def build_schedule(kind: str, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX) -> LogSNRSchedule:
    if kind not in SCHEDULES:
        raise ValueError(f"log-SNR schedule {kind!r} is invalid: must be one of {sorted(SCHEDULES)}")
    return SCHEDULES[kind](gamma_min, gamma_max)


def alpha_sigma(gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α, σ) = (√sigmoid(−γ), √sigmoid(γ)), elementwise."""
    return torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()


@torch.no_grad()
def grid_times(schedule: LogSNRSchedule, K: int, spacing: TimeGrid | None = None) -> np.ndarray:
    """t_0 = 0 < … < t_K = 1 of the K-step ``spacing`` grid of a trained schedule, (K+1,) float64
    (:meth:`~.schedule.TimeGrid.continuous`: ``logsnr`` and ``karras`` invert this schedule's γ); without a
    spacing the uniform grid i/K (the discrete-T training loss's)."""
    if spacing is None:
        return np.arange(K + 1, dtype=np.float64) / K
    device = schedule.gamma_0.device

    def gamma(t: np.ndarray) -> np.ndarray:
        return schedule(torch.from_numpy(t).float().to(device)).double().cpu().numpy()

    return spacing.continuous(K, gamma)


class ContinuousGaussian:
    """The forward process q(z_t | x) = N(α_t x, σ_t² I) over a :class:`LogSNRSchedule`, t ∈ [0, 1].

    Sampling starts from the prior p(z_1) = N(0, I) and injects standard Gaussian noise; the
    interface matches what the shared samplers read from a noise process (``prior_sample``,
    ``reverse_noise``), and :meth:`chain` gives them the K-step chain of a trained schedule.
    """

    def __init__(self, schedule: LogSNRSchedule):
        self.schedule = schedule

    def prior_sample(self, shape: Sequence[int], rng: RNG, *, device: torch.device | str = "cpu") -> torch.Tensor:
        """z_1 ~ p(z_1) = N(0, I), shape ``shape``."""
        return rng.randn(tuple(shape), device=device)

    def reverse_noise(self, shape: Sequence[int], chain: Chain, i: int, rng: RNG, *,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        """Standard Gaussian noise of the reverse step i → i−1 (the same law at every t)."""
        return rng.randn(tuple(shape), device=device)

    def state_scale(self, chain: Chain) -> np.ndarray:
        """s_i = 1: the chain's states are the family's own coordinates (it is variance-preserving)."""
        return np.ones(chain.K + 1)

    @torch.no_grad()
    def chain(self, K: int, spacing: TimeGrid | None = None) -> Chain:
        """The K-step chain on :func:`grid_times`: ``tau`` holds the times t_i (the denoiser's input),
        ᾱ'_i = α²(t_i) = sigmoid(−γ(t_i)) in float64. Index 0 is t = 0, where ᾱ'_0 = α_0² < 1: the
        last reverse step lands on z_0, which the decoder reads."""
        t = torch.from_numpy(grid_times(self.schedule, K, spacing))
        device = self.schedule.gamma_0.device
        gamma = self.schedule(t.float().to(device)).double().cpu()
        return Chain.from_alpha_bar(t, torch.sigmoid(-gamma))
