"""The noise-process interface.

A noise process is the forward corruption q(x_t | x_0) of a discrete diffusion, kept apart from
the network and from the sampling loop (as in diffusers' schedulers), with one difference: it
*draws its own noise* (:meth:`NoiseProcess.sample_noise`), because non-Gaussian families (Gamma)
have noise whose law depends on t, which an ``add_noise(x0, noise, t)`` signature cannot express.

Every family in this project writes its forward marginal as

    x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε_t,     E[ε_t] = 0, Var[ε_t] = 1,

so the network always predicts the standardised noise ε_t and the DDPM/DDIM mean updates are
shared; families differ in the law of ε_t, in the noise they inject while sampling, and in their loss.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
import torch
from torch.utils.weak import WeakIdKeyDictionary

from ..rng import RNG
from .schedule import Chain, Schedule


def expand_like(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector (B,) to broadcast against x (B, ...)."""
    return v.reshape(-1, *([1] * (x.dim() - 1))).to(dtype=x.dtype, device=x.device)


#: the copies :func:`on_device` made, per table (dropped with the table)
_RESIDENT: WeakIdKeyDictionary = WeakIdKeyDictionary()


def on_device(table: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A constant table (a schedule's ᾱ, β, ...) as a tensor on ``device``, copied there once per table and
    device. Indexing it with times already on the device reads nothing back and copies nothing from host
    memory: a copy from pageable host memory in every training step makes the host wait for the device."""
    device = torch.device(device)
    if isinstance(table, torch.Tensor) and table.device == device:
        return table  # (a cached copy would be the table itself, keeping its own weak key alive)
    copies = _RESIDENT.setdefault(table, {})
    if device not in copies:
        copies[device] = torch.as_tensor(table).to(device)
    return copies[device]


LOSSES = ("l1", "l2")


def noise_loss(eps_pred: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample mean over pixels of |ε − ε_θ| (``l1``) or (ε − ε_θ)² (``l2``): (B, ...) → (B,)."""
    if norm not in LOSSES:
        raise ValueError(f"loss = {norm!r} is invalid: must be one of {list(LOSSES)}")
    diff = eps_pred - eps
    return (diff.abs() if norm == "l1" else diff.pow(2)).flatten(1).mean(1)


@dataclass(frozen=True)
class ForwardSample:
    """A draw from q(x_t | x_0): the noisy input and the standardised noise the network must predict."""

    x_t: torch.Tensor  # (B, C, H, W)
    eps: torch.Tensor  # (B, C, H, W), zero mean, unit variance


class NoiseProcess(ABC):
    """Forward process over t = 1..T of a :class:`Schedule`.

    Class attributes:
        name: registry key.
        markov_forward: True when chaining :meth:`forward_step` from x_0 reproduces the marginal
            :meth:`q_sample` in distribution (the contract test checks this for every process that
            declares it).
        nll_undefined_reason: None when a variational bound is defined for this family, else the
            reason the report prints instead of a number.
    """

    name: ClassVar[str]
    markov_forward: ClassVar[bool]
    nll_undefined_reason: ClassVar[str | None]

    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self.alpha_bar = schedule.alpha_bar  # (T+1,) float64

    @property
    def T(self) -> int:
        return self.schedule.T

    @abstractmethod
    def sample_noise(self, shape: Sequence[int], t: torch.Tensor, rng: RNG, *, device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standardised noise ε_t of the forward marginal at integer times t (B,), shape ``shape``."""

    def _check_t(self, t: torch.Tensor) -> torch.Tensor:
        """Integer times (B,) as int64 on their device, checked to lie in 1..T (ε_0 does not exist).

        On the CPU a time out of range raises ValueError naming it. On an accelerator the check is an assertion
        the device itself raises, so that a training step never waits to read its times back."""
        t = t.detach().long()
        if not t.numel():
            return t
        if t.device.type == "cpu":
            low, high = int(t.min()), int(t.max())
            if low < 1 or high > self.T:
                raise ValueError(f"{type(self).__name__}: time t = {low}..{high} is invalid: must lie in 1..T = {self.T}")
        else:
            torch._assert_async(((t >= 1) & (t <= self.T)).all(), f"{type(self).__name__}: a time t lies outside 1..T")
        return t

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, rng: RNG) -> ForwardSample:
        """x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε_t for x0 (B, C, H, W) and integer t (B,) in 1..T."""
        eps = self.sample_noise(x0.shape, t, rng, device=x0.device, dtype=x0.dtype)
        ab = on_device(self.alpha_bar, t.device)[t]  # float64: 1 − ᾱ_t near t = 1 loses digits in float32
        return ForwardSample(x_t=expand_like(ab.sqrt(), x0) * x0 + expand_like((1 - ab).sqrt(), x0) * eps, eps=eps)

    def forward_step(self, x_prev: torch.Tensor, t: torch.Tensor, rng: RNG) -> torch.Tensor:
        """One forward transition x_{t−1} → x_t of the family's one-step kernel. Chained from x_0 it
        reproduces :meth:`q_sample` in distribution exactly when ``markov_forward`` is True.

        Default: x_t = √α_t x_{t−1} + √β_t ε with ε drawn from the family's own noise law at t (exact
        for Gaussian noise; for the mixture a chain that drifts to Gaussian). A family whose one-step
        kernel has another form (Gamma) overrides it.
        """
        t = self._check_t(t)
        beta = on_device(self.schedule.betas, t.device)[t - 1]
        eps = self.sample_noise(x_prev.shape, t, rng, device=x_prev.device, dtype=x_prev.dtype)
        return expand_like((1 - beta).sqrt(), x_prev) * x_prev + expand_like(beta.sqrt(), x_prev) * eps

    def loss(self, eps_pred: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Unreduced training loss per sample, shape (B,) (mean over pixels): ‖ε − ε_θ‖² by default
        (DDPM's simple loss); Gamma noise overrides it with its L1/L2 option."""
        return noise_loss(eps_pred, eps, "l2")

    @abstractmethod
    def skewness(self, t: np.ndarray) -> np.ndarray:
        """Closed-form skewness E[ε_t³] of the standardised noise at times t (any shape, float64)."""

    def prior_sample(self, shape: Sequence[int], rng: RNG, *, device: torch.device | str = "cpu") -> torch.Tensor:
        """The sampler's start x_T (B, C, H, W): the standardised noise ε_T (DDPM's x_T ~ N(0, I))."""
        return self.sample_noise(shape, torch.full((shape[0],), self.T), rng, device=device)

    def reverse_noise(self, shape: Sequence[int], chain: Chain, i: int, rng: RNG, *,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        """Standardised noise z injected by the reverse step i → i−1 of ``chain`` (i ≥ 2): the forward
        marginal's noise at the step's target time τ_{i−1}, as in DDGM's sampler (for Gamma noise
        z = (Γ(k̄_{τ_{i−1}}, θ_{τ_{i−1}}) − k̄θ)/√(1 − ᾱ_{τ_{i−1}})). On a respaced chain the law
        follows the respaced ᾱ', which equals ᾱ at τ, so the same marginal applies."""
        return self.sample_noise(shape, torch.full((shape[0],), int(chain.tau[i - 1])), rng, device=device)

    def state_scale(self, chain: Chain) -> np.ndarray:
        """s_i = 1: the chain's states are the family's own coordinates (it is variance-preserving)."""
        return np.ones(chain.K + 1)
