"""Time discretisations of a K-step chain (``sampling.spacings``), one registered function each.

A spacing says where the K steps of a sampler sit. Every one is defined on a *position* u ∈ [0, 1]
(u = 0 at the data end, u = 1 at the noise end) and maps it to a time through the schedule:

- ``uniform``: τ linear in u between 1 and T (DDIM §4.2);
- ``quad``: τ linear in u² (denser near the data, DDIM's CIFAR-10 choice);
- ``trailing``: τ_i = i·T/K, i = 1..K, which holds T but not 1: the last step goes from T/K straight to
  the data (Lin et al. 2023, arXiv 2305.08891; diffusers' ``timestep_spacing="trailing"``);
- ``logsnr``: uniform in λ = log(α/σ) = ½ log(ᾱ/(1 − ᾱ)) between λ(T) and λ(1);
- ``karras``: EDM's (arXiv 2206.00364, eq. 5) σ̃_i = (σ̃_max^{1/ρ} + u_i (σ̃_min^{1/ρ} − σ̃_max^{1/ρ}))^ρ with
  ρ = 7 and σ̃ = σ/α = √((1 − ᾱ)/ᾱ), between σ̃(T) and σ̃(1);
- ``dmn``: the data-free optimised steps of arXiv 2402.17376 (scxue/DM-NonUniform): the interior λ between λ(T)
  and λ(1) minimise a bound on the accumulated error of a multistep exponential integrator of order ≤ 3 (its
  local-error coefficients on the λ grid, weighted by σ²/α), from uniform λ (:mod:`.dmn`). It reads the schedule only.

A discrete model is queried only at integer t (:func:`discrete_times`): each time is rounded to an integer
of 1..T and ties are pushed apart, so the K times are distinct. A continuous model (VDM) takes the exact
values (:func:`continuous_times`) on t ∈ [0, 1], with t_0 = 0 (z_0, which the decoder reads) and t_K = 1;
there the chain already ends at the data, so ``uniform`` and ``trailing`` are the same grid i/K.

:data:`EXACT_LOGSNR` is not a spacing of the study: it is the grid of the solver error's reference solve, uniform
in λ at *real* times of a discrete schedule too (no rounding), where the ODE is the one with log ᾱ piecewise
linear in t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

#: EDM's ρ for the ``karras`` spacing
KARRAS_RHO = 7.0


@dataclass(frozen=True)
class Spacing:
    """A named discretisation. ``kind`` says in which coordinate the positions u are uniform: ``time``
    (``warp`` maps u to a fraction of the time range), ``logsnr`` (λ) or ``karras`` (σ̃^{1/ρ}); ``dmn`` places
    them by optimisation in λ.

    A method is handed its spacing as this object (:meth:`discrete`, :meth:`continuous`), as it is handed its
    sampler: the noise processes and training never import this module."""

    name: str
    kind: str
    warp: Callable[[np.ndarray], np.ndarray] | None = None
    trailing: bool = False
    #: its grids at K and 2K belong to one smooth family (a formula in u), so a solver's order of convergence can be
    #: read off them; an optimised grid (``dmn``) is a separate optimum at each K
    smooth_in_K: bool = True

    def discrete(self, alpha_bar: np.ndarray, K: int) -> np.ndarray:
        """:func:`discrete_times` of this spacing."""
        return discrete_times(alpha_bar, K, self.name)

    def continuous(self, K: int, gamma: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """:func:`continuous_times` of this spacing."""
        return continuous_times(K, self.name, gamma)


def _identity(u: np.ndarray) -> np.ndarray:
    return u


def _square(u: np.ndarray) -> np.ndarray:
    return u**2


#: spacing name → definition; the schema's enum, the CLI choices and the wildcard constraint come from here
SPACINGS: dict[str, Spacing] = {s.name: s for s in (
    Spacing("uniform", "time", _identity),
    Spacing("quad", "time", _square),
    Spacing("trailing", "time", _identity, trailing=True),
    Spacing("logsnr", "logsnr"),
    Spacing("karras", "karras"),
    Spacing("dmn", "dmn", smooth_in_K=False),
)}


def spacing(name: str) -> Spacing:
    """The registered spacing ``name``; an unknown name is a ValueError listing the registered ones."""
    if name not in SPACINGS:
        raise ValueError(f"spacing = {name!r} is invalid: must be one of {list(SPACINGS)}")
    return SPACINGS[name]


def log_snr(alpha_bar: np.ndarray) -> np.ndarray:
    """λ = log(α/σ) = ½ log(ᾱ/(1 − ᾱ)), elementwise."""
    return 0.5 * (np.log(alpha_bar) - np.log1p(-alpha_bar))


def karras_sigmas(sigma_max: float, sigma_min: float, n: int, rho: float = KARRAS_RHO) -> np.ndarray:
    """EDM eq. 5: n values from σ̃_max down to σ̃_min, (σ̃_max^{1/ρ} + i/(n−1)(σ̃_min^{1/ρ} − σ̃_max^{1/ρ}))^ρ."""
    u = np.linspace(0.0, 1.0, n)
    return (sigma_max ** (1 / rho) + u * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def _targets(s: Spacing, u_desc: np.ndarray, lam_hi: float, lam_lo: float) -> np.ndarray:
    """For positions u (1 → 0: noise end first), the target log-SNR λ of each point (logsnr/karras/dmn)."""
    if s.kind == "dmn":  # imported here: scipy's optimiser is loaded only where the spacing is used
        from .dmn import optimised_log_snr

        return optimised_log_snr(lam_lo, lam_hi, len(u_desc) - 1)
    if s.kind == "logsnr":
        return lam_lo + (1 - u_desc) * (lam_hi - lam_lo)
    # σ̃ = exp(−λ): EDM's ρ-spacing between σ̃(noise end) and σ̃(data end)
    sig = karras_sigmas(float(np.exp(-lam_lo)), float(np.exp(-lam_hi)), len(u_desc))
    return -np.log(sig)


def _distinct_integers(raw: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Round increasing fractional times to integers in [lo, hi] and push neighbours apart where the
    spacing is below one step (forward pass for duplicates, backward pass for the ceiling), so that the
    result is strictly increasing with its first and last values kept where they were rounded to."""
    tau = np.rint(raw).astype(np.int64)
    first, last = max(int(tau[0]), lo), min(int(tau[-1]), hi)
    tau[0], tau[-1] = first, last
    for i in range(1, len(tau)):
        tau[i] = max(tau[i], tau[i - 1] + 1)
    tau[-1] = last
    for i in range(len(tau) - 2, -1, -1):
        tau[i] = min(tau[i], tau[i + 1] - 1)
    return tau


def discrete_times(alpha_bar: np.ndarray, K: int, name: str) -> np.ndarray:
    """τ_1 < … < τ_K, distinct integers of 1..T (int64, (K,)) for a discrete schedule with ᾱ_0..ᾱ_T
    (``alpha_bar``, (T+1,), ᾱ_0 = 1). τ_K = T always; τ_1 = 1 except for ``trailing`` (τ_1 = T/K rounded)."""
    s = spacing(name)
    T = len(alpha_bar) - 1
    if not 2 <= K <= T:
        raise ValueError(f"step budget K = {K} is invalid: must satisfy 2 ≤ K ≤ T = {T}")
    if s.trailing:
        # diffusers: np.round(np.arange(T, 0, −T/K)) − 1 in its 0-based indices, i.e. T − j·(T/K), j = 0..K−1
        raw = np.round(T - np.arange(K - 1, -1, -1) * (T / K))
        return _distinct_integers(raw, 1, T)
    if s.kind == "time":
        return _distinct_integers(1 + (T - 1) * s.warp(np.linspace(0.0, 1.0, K)), 1, T)
    lam = log_snr(np.asarray(alpha_bar[1:], dtype=np.float64))  # λ_1..λ_T, decreasing in t
    target = _targets(s, np.linspace(1.0, 0.0, K), float(lam[0]), float(lam[-1]))  # noise end first
    # t as a function of λ (λ decreases with t): interpolate on −λ, which increases
    raw = np.interp(-target, -lam, np.arange(1, T + 1, dtype=np.float64))[::-1]
    return _distinct_integers(raw, 1, T)


def invert_increasing(f: Callable[[np.ndarray], np.ndarray], y: np.ndarray, lo: float = 0.0, hi: float = 1.0,
                      iters: int = 60) -> np.ndarray:
    """x ∈ [lo, hi] with f(x) = y for an increasing f, by vectorised bisection (float64, to ~2^−60)."""
    a, b = np.full_like(y, lo, dtype=np.float64), np.full_like(y, hi, dtype=np.float64)
    for _ in range(iters):
        m = 0.5 * (a + b)
        below = f(m) < y
        a, b = np.where(below, m, a), np.where(below, b, m)
    return 0.5 * (a + b)


def continuous_times(K: int, name: str, gamma: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """t_0 = 0 < t_1 < … < t_K = 1 of a continuous-time chain, (K+1,) float64. ``gamma`` is the model's
    increasing γ(t) = −2λ(t) on float64 arrays; ``logsnr`` and ``karras`` need it (their grids are uniform in λ,
    or ρ-spaced in σ̃ = exp(γ/2), between t = 1 and t = 0, and mapped back through γ⁻¹)."""
    s = spacing(name)
    if K < 1:
        raise ValueError(f"step count K = {K} is invalid: must be ≥ 1")
    u = np.arange(K + 1, dtype=np.float64) / K
    if s.kind == "time":
        return s.warp(u)
    if gamma is None:
        raise ValueError(f"spacing {name!r} on a continuous-time chain needs the model's schedule γ(t)")
    g0, g1 = (float(v) for v in gamma(np.array([0.0, 1.0])))
    lam = _targets(s, u[::-1], -g0 / 2, -g1 / 2)[::-1]  # data end first
    t = invert_increasing(gamma, -2 * lam)
    t[0], t[-1] = 0.0, 1.0
    return t


@dataclass(frozen=True)
class ExactLogSNR:
    """Uniform in λ at real-valued times: the reference solve's grid (a :class:`~.noise.schedule.TimeGrid`, never
    in :data:`SPACINGS`). On a discrete schedule it spans t = 1..T of the ODE whose log ᾱ is piecewise linear in t
    (its times are not rounded, so the chain reads ᾱ between the integers); on a continuous one it is ``logsnr``."""

    name: str = "logsnr-exact"

    def discrete(self, alpha_bar: np.ndarray, K: int) -> np.ndarray:
        """t_1 = 1 < … < t_K = T, float64 (K,), with λ(t_i) uniform between λ(1) and λ(T)."""
        T = len(alpha_bar) - 1
        if K < 2:
            raise ValueError(f"step count K = {K} is invalid: must be ≥ 2")
        log_ab = np.log(np.asarray(alpha_bar, dtype=np.float64))
        lam = np.linspace(float(log_snr(alpha_bar[1:2])[0]), float(log_snr(alpha_bar[T:])[0]), K)
        # ᾱ = sigmoid(2λ): log ᾱ = −log(1 + e^{−2λ}); t(log ᾱ) is piecewise linear, like log ᾱ(t)
        t = np.interp(np.logaddexp(0.0, -2 * lam), -log_ab, np.arange(T + 1, dtype=np.float64))
        t[0], t[-1] = 1.0, float(T)
        return t

    def continuous(self, K: int, gamma: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        return continuous_times(K, "logsnr", gamma)


EXACT_LOGSNR = ExactLogSNR()
