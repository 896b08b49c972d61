"""Discrete β schedules and respaced chains (DDPM §2, DDIM §4.2).

Time indices follow the papers: t = 1..T, with the convention ᾱ_0 = 1 stored at index 0, so that
``alpha_bar[t]`` is ᾱ_t for every t in 0..T.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch


class TimeGrid(Protocol):
    """Where the K steps of a chain sit (a spacing of :mod:`diffsteps.spacing`, handed in by the caller, so that a
    noise process and training never depend on the spacings): distinct integer times of a discrete schedule, or
    times in [0, 1] of a continuous one."""

    name: str

    def discrete(self, alpha_bar: np.ndarray, K: int) -> np.ndarray: ...

    def continuous(self, K: int, gamma: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray: ...


def make_betas(schedule: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """β_1..β_T as float64, shape (T,).

    linear: β_t linear from ``beta_start`` to ``beta_end`` (DDPM).
    cosine: ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008, β clipped at 0.999
    (Nichol & Dhariwal 2021).
    """
    if schedule == "linear":
        return np.linspace(beta_start, beta_end, T, dtype=np.float64)
    if schedule == "cosine":
        s = 0.008
        t = np.arange(T + 1, dtype=np.float64) / T
        f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return np.clip(1.0 - alpha_bar[1:] / alpha_bar[:-1], 0.0, 0.999)
    raise ValueError(f"noise.schedule = {schedule!r} is invalid: must be one of ['linear', 'cosine']")


#: DDGAN's offset of the first time from 0 (its ``eps_small``): s_0 = ε keeps β'_1 away from 0
VP_T_EPS = 1e-3


def vp_sde_betas(T: int, beta_min: float = 0.1, beta_max: float = 20.0, t_eps: float = VP_T_EPS) -> np.ndarray:
    """β_1..β_T (float64, (T,)) of the variance-preserving SDE dx = −½β(s)x ds + √β(s) dw,
    β(s) = β_min + s(β_max − β_min), discretised at T times (Denoising Diffusion GAN, §3 and its code).

    The SDE's marginal has ᾱ(s) = exp(−½ s² (β_max − β_min) − s β_min). With s_i = ε + (1 − ε) i/T,
    i = 0..T, the chain's steps are β_i = 1 − ᾱ(s_i)/ᾱ(s_{i−1}), so its cumulative product is
    ᾱ_i = ᾱ(s_i)/ᾱ(s_ε): the data x_0 sits at s_0 = ε and x_T at s = 1 (ᾱ_T ≈ 4.3e-5 for the defaults,
    whatever T). T = 1 is a single step from data to (almost) pure noise: a GAN.
    """
    if T < 1:
        raise ValueError(f"T = {T} is invalid: the VP-SDE chain needs at least 1 step")
    if not 0 < beta_min < beta_max:
        raise ValueError(f"beta_min = {beta_min}, beta_max = {beta_max} are invalid: need 0 < beta_min < beta_max")
    s = t_eps + (1.0 - t_eps) * np.arange(T + 1, dtype=np.float64) / T
    log_alpha_bar = -0.5 * s**2 * (beta_max - beta_min) - s * beta_min
    return -np.expm1(np.diff(log_alpha_bar))  # 1 − ᾱ(s_i)/ᾱ(s_{i−1}), exact near 0


@dataclass(frozen=True)
class Chain:
    """A (possibly respaced) discrete chain over which samplers and bounds run.

    Attributes (tensors on CPU, index i = 0..K with i = 0 the data end):
        tau:        (K+1,) the time of each chain step as the denoiser reads it, tau[0] = 0: the original
                    index 1..T of a discrete chain (int64), or t ∈ [0, 1] of a continuous-time one (float64).
        alpha_bar:  (K+1,) float64, ᾱ'_i = ᾱ_{τ_i}; ᾱ'_0 = 1 for a discrete chain, α²(0) < 1 for a
                    continuous one (the decoder reads z_0).
        beta:       (K+1,) float64, β'_i = 1 − ᾱ'_i/ᾱ'_{i−1}; beta[0] = 0 is unused.
    """

    tau: torch.Tensor
    alpha_bar: torch.Tensor
    beta: torch.Tensor

    @classmethod
    def from_alpha_bar(cls, tau: torch.Tensor, alpha_bar: torch.Tensor) -> "Chain":
        """The chain through ᾱ'_0..ᾱ'_K (float64, (K+1,)) at times ``tau``; β' follows from ᾱ'."""
        beta = torch.zeros_like(alpha_bar)
        beta[1:] = 1 - alpha_bar[1:] / alpha_bar[:-1]
        return cls(tau=tau, alpha_bar=alpha_bar, beta=beta)

    @property
    def K(self) -> int:
        return len(self.tau) - 1

    @functools.cached_property  # one table per chain (written to the instance dict: frozen allows it)
    def beta_tilde(self) -> torch.Tensor:
        """Posterior variance β̃'_i = (1 − ᾱ'_{i−1})/(1 − ᾱ'_i)·β'_i, shape (K+1,); β̃'_1 = 0 on a discrete
        chain (ᾱ'_0 = 1), small but positive on a continuous one."""
        out = torch.zeros_like(self.beta)
        out[1:] = (1 - self.alpha_bar[:-1]) / (1 - self.alpha_bar[1:]) * self.beta[1:]
        return out

    def posterior_coefs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients of the posterior mean μ̃'_i(x_0, x_i) = c0_i·x_0 + ct_i·x_i, each shape (K+1,).

        q(x_{i−1} | x_i, x_0) = N(μ̃'_i, β̃'_i) with
        c0_i = √ᾱ'_{i−1}·β'_i/(1 − ᾱ'_i),   ct_i = √(1 − β'_i)·(1 − ᾱ'_{i−1})/(1 − ᾱ'_i)   (DDPM eq. 7).
        Index 0 is unused (zeros).
        """
        return self._posterior

    @functools.cached_property
    def _posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        ab, beta = self.alpha_bar, self.beta
        c0, ct = torch.zeros_like(ab), torch.zeros_like(ab)
        c0[1:] = ab[:-1].sqrt() * beta[1:] / (1 - ab[1:])
        ct[1:] = (1 - beta[1:]).sqrt() * (1 - ab[:-1]) / (1 - ab[1:])
        return c0, ct


@dataclass(frozen=True)
class Schedule:
    """The training schedule β_1..β_T and its cumulative products."""

    betas: np.ndarray  # (T,) float64

    @classmethod
    def from_config(cls, noise_cfg) -> "Schedule":
        return cls(make_betas(noise_cfg.schedule, noise_cfg.T, noise_cfg.beta_start, noise_cfg.beta_end))

    @property
    def T(self) -> int:
        return len(self.betas)

    @property
    def alpha_bar(self) -> torch.Tensor:
        """ᾱ_t for t = 0..T, shape (T+1,), float64, ᾱ_0 = 1."""
        return torch.from_numpy(np.concatenate([[1.0], np.cumprod(1.0 - self.betas)]))

    def alpha_bar_at(self, t: np.ndarray) -> np.ndarray:
        """ᾱ(t) at real t ∈ [0, T] with log ᾱ piecewise linear between the integers (DPM-Solver's discrete-time
        wrapper), float64: exact at integer t, so a chain on integer times and one on real times discretise one
        ODE."""
        return np.exp(np.interp(t, np.arange(self.T + 1, dtype=np.float64), np.log(self.alpha_bar.numpy())))

    def chain(self, K: int | None = None, spacing: TimeGrid | None = None) -> Chain:
        """The K-step respaced chain on the ``spacing`` grid (:meth:`TimeGrid.discrete`), the full T-step chain
        when K is None (or K = T without a spacing). A grid of integer times indexes ᾱ; one of real times (the
        solver error's reference) reads :meth:`alpha_bar_at`."""
        T = self.T
        if K is None or (K == T and spacing is None):
            tau = np.arange(1, T + 1)
        elif spacing is None:
            raise ValueError(f"a {K}-step chain of a {T}-step schedule needs a spacing")
        else:
            tau = spacing.discrete(self.alpha_bar.numpy(), K)
        tau = torch.from_numpy(np.concatenate([[0], tau]).astype(np.asarray(tau).dtype))
        if tau.dtype.is_floating_point:
            return Chain.from_alpha_bar(tau, torch.from_numpy(self.alpha_bar_at(tau.numpy())))
        return Chain.from_alpha_bar(tau, self.alpha_bar[tau])
