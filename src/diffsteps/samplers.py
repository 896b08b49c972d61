"""Stateless samplers over (denoiser, noise process, chain): one function per sampler, as in k-diffusion.

The step budget lives in the :class:`~.noise.schedule.Chain` argument, and a multistep solver's history lives
inside its function; no sampler keeps state between calls. Each starts from x_T drawn from the process prior
(unless given), so every sampler of a cell starts from the same noise. What each sampler *is* (its name
grammar, NFE, determinism, families) is declared in :mod:`diffsteps.sampler_registry`; this module runs them.

Notation on chain index i (i = K is the noise end, i = 0 the data end): α_i = √ᾱ'_i, σ_i = √(1 − ᾱ'_i),
λ_i = log(α_i/σ_i), and EDM's x̃ = x/α, σ̃ = σ/α, in which the probability-flow ODE is dx̃/dσ̃ = ε̂(x, t),
with x̂_0 = (x − σ ε̂)/α and ε̂ = (x̃ − x̂_0)/σ̃.

- ``ddim-eta<η>``: x_{i−1} = α_{i−1} x̂_0 + √(1 − ᾱ'_{i−1} − s_i²) ε̂ + s_i z, s_i = η √((1 − ᾱ'_{i−1})/(1 − ᾱ'_i))
  √(1 − ᾱ'_i/ᾱ'_{i−1}) (DDIM eq. 12, 16). η = 0 is the Euler step x̃_{i−1} = x̃_i + (σ̃_{i−1} − σ̃_i) ε̂: order 1.
- ``ancestral-<variance>``: the posterior chain (:class:`~.noise.reverse.Ancestral`).
- ``dpmpp-2m``: x_{i−1} = (σ_{i−1}/σ_i) x_i − α_{i−1}(e^{−h} − 1) D, h = λ_{i−1} − λ_i, with D = x̂_0 on the
  first and last steps and D = (1 + 1/(2r)) x̂_0 − (1/(2r)) x̂_0^{prev}, r = h_prev/h, in between.
- ``heun``: x̃' = x̃_i + (σ̃_{i−1} − σ̃_i) d_i, then x̃_{i−1} = x̃_i + (σ̃_{i−1} − σ̃_i)(d_i + d')/2 with d' at
  (x̃', i−1); the last step is Euler. NFE = 2K − 1.
- ``ipndm``: x̃_{i−1} = x̃_i + Σ_j w_j d_{i+j}, variable-step Adams–Bashforth of order min(steps so far, 4): w_j
  integrates the Lagrange polynomial through the last σ̃ nodes over [σ̃_i, σ̃_{i−1}] (on an even grid the fixed
  (1), (3, −1)/2, (23, −16, 5)/12, (55, −59, 37, −9)/24). The data end of a discrete chain is the final denoising
  x̂_0, as for every solver. NFE = K.
- ``unipc``: UniPC (arXiv 2302.04867) with B(h) = e^h − 1 (bh2) on x̂_0: the UniP predictor of order p and the
  UniC corrector, which reuses the next step's network evaluation (none after the last step), so NFE = K. The order
  p = min(3, steps so far + 1, steps left) rises through the warm-up and falls on the final steps, as the reference
  implementation does (``lower_order_final``); the last step is first order, x_0 = x̂_0 at a discrete data end.
- ``deis``: DEIS-AB3 (arXiv 2204.13902) on x̃ = x/α: x̃_{i−1} = x̃_i + Σ_j c_j ε̂_j, with ε̂ a Lagrange polynomial in
  log σ̃ (= −λ, the exponential integrator's time) through the last p evaluations, integrated exactly over σ̃ from
  σ̃_i to σ̃_{i−1}; p = min(3, steps so far + 1, steps left), so that it ends at the data with a first-order step and
  its error falls with K (diffusers' ``DEISMultistepScheduler`` stops at t = 1 and keeps full order at K ≥ 15).
  NFE = K.
- ``rk4``: the solver error's reference (:mod:`diffsteps.solver_error`), not a sampler of the study.

Every solver forms (x̂_0, ε̂) with :func:`~.noise.reverse.predict_x0`, so clipping x̂_0 gives one consistent pair.
Tensors: x (B, C, H, W); the chain's arrays are float64 on the CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .noise.reverse import Ancestral, Denoiser, NoiseSource, Sampler, SampleResult, denoise, elapsed, start, walk
from .noise.schedule import Chain
from .rng import RNG
from .sampler_registry import SamplerSpec


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


def _alpha_sigma(chain: Chain, i: int) -> tuple[float, float]:
    ab = float(chain.alpha_bar[i])
    return math.sqrt(ab), math.sqrt(1.0 - ab)


def _sigma_tilde(chain: Chain, i: int) -> float:
    """σ̃_i = σ_i/α_i = √((1 − ᾱ'_i)/ᾱ'_i); 0 at the data end of a discrete chain."""
    a, s = _alpha_sigma(chain, i)
    return s / a


def dpmpp_2m(denoiser: Denoiser, process: NoiseSource, chain: Chain, shape: Sequence[int], rng: RNG, *,
             clip_x0: bool = True, device: torch.device | str = "cpu", x_T: torch.Tensor | None = None,
             prediction: str = "eps") -> SampleResult:
    """DPM-Solver++(2M) (arXiv 2211.01095, Algorithm 2) over ``chain``; NFE = K. The last step, and the first
    (no history yet), are first order; the data end of a discrete chain (σ = 0, λ = ∞) gives x_0 = x̂_0."""
    t0, x, nfe = time.perf_counter(), start(process, shape, rng, device, x_T), 0
    x0_prev, h_prev = None, None
    for i in range(chain.K, 0, -1):
        x0, _ = denoise(denoiser, x, chain, i, clip_x0, prediction)
        nfe += 1
        a_i, s_i = _alpha_sigma(chain, i)
        a_j, s_j = _alpha_sigma(chain, i - 1)
        if s_j == 0.0:  # the data end: e^{−h} = 0, so x_0 = α_0 D with D the first-order x̂_0
            x = a_j * x0
            break
        h = math.log(a_j / s_j) - math.log(a_i / s_i)
        D = x0
        if x0_prev is not None and i > 1:
            r = h_prev / h
            D = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        x = (s_j / s_i) * x - a_j * math.expm1(-h) * D
        x0_prev, h_prev = x0, h
    return SampleResult(x0=x, nfe=nfe, seconds=elapsed(t0, device))


def heun(denoiser: Denoiser, process: NoiseSource, chain: Chain, shape: Sequence[int], rng: RNG, *,
         clip_x0: bool = True, device: torch.device | str = "cpu", x_T: torch.Tensor | None = None,
         prediction: str = "eps") -> SampleResult:
    """EDM's Heun sampler (arXiv 2206.00364, Algorithm 1 with S_churn = 0) on x̃ = x/α with d = ε̂;
    the last step is Euler. NFE = 2K − 1. Returns x_0 = α_0 x̃_0 (z_0 of a continuous chain)."""
    t0, x, nfe = time.perf_counter(), start(process, shape, rng, device, x_T), 0
    xt = x / _alpha_sigma(chain, chain.K)[0]
    for i in range(chain.K, 0, -1):
        a_i, a_j = _alpha_sigma(chain, i)[0], _alpha_sigma(chain, i - 1)[0]
        dsig = _sigma_tilde(chain, i - 1) - _sigma_tilde(chain, i)
        _, d = denoise(denoiser, a_i * xt, chain, i, clip_x0, prediction)
        nfe += 1
        euler = xt + dsig * d
        if i == 1:
            xt = euler
            break
        _, d2 = denoise(denoiser, a_j * euler, chain, i - 1, clip_x0, prediction)
        nfe += 1
        xt = xt + dsig * 0.5 * (d + d2)
    return SampleResult(x0=_alpha_sigma(chain, 0)[0] * xt, nfe=nfe, seconds=elapsed(t0, device))


def lagrange_basis(nodes: Sequence[float]) -> list[np.polynomial.Polynomial]:
    """L_j(u) = Π_{k≠j} (u − u_k)/(u_j − u_k), the Lagrange basis of ``nodes`` (float64)."""
    basis = []
    for j, uj in enumerate(nodes):
        L = np.polynomial.Polynomial([1.0])
        for k, uk in enumerate(nodes):
            if k != j:
                L *= np.polynomial.Polynomial([-uk, 1.0]) / (uj - uk)
        basis.append(L)
    return basis


def adams_bashforth_weights(nodes: Sequence[float], a: float, b: float) -> list[float]:
    """Weights w_j with ∫_a^b p(s) ds = Σ_j w_j p(nodes_j) for every polynomial p of degree < len(nodes): the
    integrals of the Lagrange basis of ``nodes`` over [a, b] (variable-step Adams–Bashforth when the nodes are the
    past grid points). Computed in float64 on s' = (s − a)/(b − a), where the nodes lie O(1) apart."""
    h = b - a
    weights = []
    for L in lagrange_basis([(n - a) / h for n in nodes]):
        antiderivative = L.integ()
        weights.append(h * float(antiderivative(1.0) - antiderivative(0.0)))
    return weights


#: the most past derivatives iPNDM combines (order 4)
IPNDM_MAX_ORDER = 4


def ipndm(denoiser: Denoiser, process: NoiseSource, chain: Chain, shape: Sequence[int], rng: RNG, *,
          clip_x0: bool = True, device: torch.device | str = "cpu", x_T: torch.Tensor | None = None,
          prediction: str = "eps") -> SampleResult:
    """Improved PNDM (arXiv 2204.13902, as in DEIS's iPNDM) on x̃ with d = ε̂: Adams–Bashforth whose order
    grows 1, 2, 3, 4 as the history fills, with variable-step weights on the chain's own σ̃ grid
    (:func:`adams_bashforth_weights`). On an even grid they are the fixed (1), (3, −1)/2, (23, −16, 5)/12,
    (55, −59, 37, −9)/24; on the study's uneven grids the fixed ones are not consistent. NFE = K."""
    t0, x, nfe = time.perf_counter(), start(process, shape, rng, device, x_T), 0
    xt = x / _alpha_sigma(chain, chain.K)[0]
    history: list[tuple[float, torch.Tensor]] = []  # (σ̃, d), newest first
    for i in range(chain.K, 0, -1):
        _, d = denoise(denoiser, _alpha_sigma(chain, i)[0] * xt, chain, i, clip_x0, prediction)
        nfe += 1
        sig, sig_next = _sigma_tilde(chain, i), _sigma_tilde(chain, i - 1)
        if sig_next == 0.0:  # the data end of a discrete chain: the final denoising x̂_0, as every solver ends
            xt = xt - sig * d
            break
        history = [(sig, d), *history][:IPNDM_MAX_ORDER]
        w = adams_bashforth_weights([s for s, _ in history], sig, sig_next)
        xt = xt + sum(wj * dj for wj, (_, dj) in zip(w, history))
    return SampleResult(x0=_alpha_sigma(chain, 0)[0] * xt, nfe=nfe, seconds=elapsed(t0, device))


#: the highest order of the multistep solvers UniPC and DEIS (their predictor's, and UniC's)
MULTISTEP_ORDER = 3


def _multistep_order(step: int, K: int) -> int:
    """The order of step ``step`` = 0..K−1 of a K-step multistep solver: min(3, step + 1, K − step) (warm-up, and
    lower order on the final steps)."""
    return min(MULTISTEP_ORDER, step + 1, K - step)


def _lam(chain: Chain, i: int) -> float:
    """λ_i = log(α_i/σ_i) (finite: not at a discrete data end)."""
    a, s = _alpha_sigma(chain, i)
    return math.log(a / s)


def _unipc_step(x: torch.Tensor, history: Sequence[tuple[int, torch.Tensor]], chain: Chain, target: int,
                order: int, new: torch.Tensor | None = None) -> torch.Tensor:
    """One UniP (``new`` None) or UniC step from the state x at the newest history node to chain index ``target``:

        x_t = (σ_t/σ_0) x − α_t B(h) (D_0 + Σ_k ρ_k (D_k − D_0)/r_k),   h = λ_t − λ_0,  B(h) = e^{−h} − 1,

    with history [(i_0, D_0), (i_1, D_1), ...] (chain indices and x̂_0 predictions, newest first), r_k = (λ_{i_k} −
    λ_{i_0})/h, and ρ solving Σ_k ρ_k r_k^{m−1} = b_m (m = 1..order) over the order − 1 older nodes (UniP), or over
    those and the evaluation ``new`` at the target as the node r = 1 (UniC). b_m = m!·φ_m(−h)/B(h), φ_1(z) = (e^z −
    1)/z − 1 and φ_{m+1}(z) = φ_m(z)/z − 1/(m + 1)!; B(h) = e^{−h} − 1 is the bh2 variant."""
    i0, D0 = history[0]
    a_t, s_t = _alpha_sigma(chain, target)
    if s_t == 0.0:  # the data end, reached by a first-order step (e^{−h} = 0): x_0 = α_0 x̂_0
        return a_t * D0
    lam0 = _lam(chain, i0)
    h = math.log(a_t / s_t) - lam0
    B = math.expm1(-h)
    nodes = [(_lam(chain, ik) - lam0) / h for ik, _ in history[1:order]] + [1.0]
    phi, factorial, b = B / -h - 1.0, 1.0, []
    for m in range(1, order + 1):
        b.append(phi * factorial / B)
        factorial *= m + 1
        phi = phi / -h - 1.0 / factorial
    R = np.array([[r ** (m - 1) for r in nodes] for m in range(1, order + 1)])
    diffs = [(Dk - D0) / r for (_, Dk), r in zip(history[1:order], nodes)]
    if new is None:  # UniP over the older nodes (order 2: ρ = 1/2, as the reference implementation has it)
        rho = [0.5] if order == 2 else list(np.linalg.solve(R[:-1, :-1], b[:-1])) if order > 2 else []
        res = sum((r * d for r, d in zip(rho, diffs)), torch.zeros_like(D0))
    else:  # UniC: the new evaluation is the node r = 1 (order 1: ρ = 1/2)
        rho = [0.5] if order == 1 else list(np.linalg.solve(R, b))
        res = sum((r * d for r, d in zip(rho[:-1], diffs)), torch.zeros_like(D0)) + rho[-1] * (new - D0)
    return (s_t / _alpha_sigma(chain, i0)[1]) * x - a_t * B * (D0 + res)


def unipc(denoiser: Denoiser, process: NoiseSource, chain: Chain, shape: Sequence[int], rng: RNG, *,
          clip_x0: bool = True, device: torch.device | str = "cpu", x_T: torch.Tensor | None = None,
          prediction: str = "eps") -> SampleResult:
    """UniPC-bh2 with data prediction (arXiv 2302.04867; module docstring): UniP of order ≤ 3 and the UniC corrector
    on the next step's evaluation. NFE = K."""
    t0, x, nfe = time.perf_counter(), start(process, shape, rng, device, x_T), 0
    history: list[tuple[int, torch.Tensor]] = []  # (chain index, x̂_0), newest first
    last = None  # the last predictor's start: (x, history, order), which UniC corrects
    for step, i in enumerate(range(chain.K, 0, -1)):
        x0, _ = denoise(denoiser, x, chain, i, clip_x0, prediction)
        nfe += 1
        if last is not None:  # UniC: correct the state at i with the evaluation there (the next step reuses it)
            x = _unipc_step(last[0], last[1], chain, i, last[2], new=x0)
        history = [(i, x0), *history][:MULTISTEP_ORDER]
        order = _multistep_order(step, chain.K)  # ≤ step + 1: never more than the history holds
        last = (x, history, order)
        x = _unipc_step(x, history, chain, i - 1, order)
    return SampleResult(x0=x, nfe=nfe, seconds=elapsed(t0, device))


def _log_lagrange_weights(rho: Sequence[float], a: float, b: float) -> list[float]:
    """w_j = ∫_a^b L_j(log ρ) dρ for the Lagrange basis L_j of the nodes log ρ_j (a, b ≥ 0; b = 0 is the data end):
    with u = log ρ, ∫ p(u) e^u du = e^u (p − p' + p'' − …), exact for the polynomial p of degree < len(rho)."""
    weights = []
    for L in lagrange_basis([math.log(r) for r in rho]):
        terms, sign, d = L, -1.0, L.deriv()
        while any(d.coef):
            terms = terms + sign * d
            sign, d = -sign, d.deriv()

        def F(end: float) -> float:  # e^u (p − p' + …) at u = log(end); 0 at end = 0 (u = −∞)
            return 0.0 if end == 0.0 else end * float(terms(math.log(end)))

        weights.append(F(b) - F(a))
    return weights


def deis(denoiser: Denoiser, process: NoiseSource, chain: Chain, shape: Sequence[int], rng: RNG, *,
         clip_x0: bool = True, device: torch.device | str = "cpu", x_T: torch.Tensor | None = None,
         prediction: str = "eps") -> SampleResult:
    """DEIS-AB3 on x̃ with ε̂ a Lagrange polynomial in log σ̃ (module docstring); NFE = K. Returns α_0 x̃_0."""
    t0, x, nfe = time.perf_counter(), start(process, shape, rng, device, x_T), 0
    xt = x / _alpha_sigma(chain, chain.K)[0]
    history: list[tuple[float, torch.Tensor]] = []  # (σ̃, ε̂), newest first
    for step, i in enumerate(range(chain.K, 0, -1)):
        _, eps = denoise(denoiser, _alpha_sigma(chain, i)[0] * xt, chain, i, clip_x0, prediction)
        nfe += 1
        history = [(_sigma_tilde(chain, i), eps), *history][:MULTISTEP_ORDER]
        used = history[:_multistep_order(step, chain.K)]
        w = _log_lagrange_weights([r for r, _ in used], used[0][0], _sigma_tilde(chain, i - 1))
        xt = xt + sum(wj * ej for wj, (_, ej) in zip(w, used))
    return SampleResult(x0=_alpha_sigma(chain, 0)[0] * xt, nfe=nfe, seconds=elapsed(t0, device))


def rk4(denoiser: Denoiser, process: NoiseSource, chain: Chain, shape: Sequence[int], rng: RNG, *,
        clip_x0: bool = True, device: torch.device | str = "cpu", x_T: torch.Tensor | None = None,
        prediction: str = "eps") -> SampleResult:
    """The solver error's reference (not a sampler of the study): classical fourth-order Runge–Kutta on

        dx̃/ds = x̃ − x̂_0(α x̃, t(s)),   s = log σ̃,

    stepping two chain indices at a time, i → i−2 with index i−1 as the midpoint in s (a grid uniform in λ =
    −s, :data:`~.spacing.EXACT_LOGSNR`). The data end of a discrete chain (σ̃ = 0, where s = −∞) is the final
    denoising x_0 = x̂_0 at τ_1, as every solver of the study ends. The state is float64; the denoiser is called
    in x_T's precision. NFE = 4 per step (+1 for the final denoising).

    It traces its trajectory: per sample, the length of the polygon through its nodes and the distance between its
    ends, in the family's own coordinates (s_i·α_i·x̃, :meth:`~.noise.reverse.NoiseSource.state_scale`): their
    ratio minus 1 is the trajectory's excess length, 0 for a straight line."""
    t0, nfe = time.perf_counter(), 0
    x = start(process, shape, rng, device, x_T)
    dtype = x.dtype
    xt = x.double() / _alpha_sigma(chain, chain.K)[0]
    scale = process.state_scale(chain)

    def f(state: torch.Tensor, i: int) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        x0, _ = denoise(denoiser, (_alpha_sigma(chain, i)[0] * state).to(dtype), chain, i, clip_x0, prediction)
        return state - x0.double()

    def node(i: int) -> torch.Tensor:  # the state at chain index i in the family's coordinates, (B, D)
        return (float(scale[i]) * _alpha_sigma(chain, i)[0] * xt).flatten(1)

    first = last = node(chain.K)
    length = torch.zeros(first.shape[0], dtype=torch.float64, device=first.device)
    i = chain.K
    while i > 0:
        if float(chain.alpha_bar[i - 1]) == 1.0:  # the data end: x_0 = x̂_0(x_1)
            xt = xt - f(xt, i)
            i -= 1
        else:
            if i < 2:
                raise ValueError(f"rk4: a chain of K = {chain.K} steps does not pair into midpoint steps")
            s0, sm, s1 = (math.log(_sigma_tilde(chain, j)) for j in (i, i - 1, i - 2))
            if abs(sm - 0.5 * (s0 + s1)) > 1e-3 * abs(s1 - s0):  # float32 schedules (VDM's γ) move it by ~1e-5·h
                raise ValueError(f"rk4: chain index {i - 1} is not the midpoint in log σ̃ of {i} and {i - 2}")
            h = s1 - s0
            k1 = f(xt, i)
            k2 = f(xt + 0.5 * h * k1, i - 1)
            k3 = f(xt + 0.5 * h * k2, i - 1)
            k4 = f(xt + h * k3, i - 2)
            xt = xt + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            i -= 2
        here = node(i)
        length += (here - last).norm(dim=1)
        last = here
    return SampleResult(x0=_alpha_sigma(chain, 0)[0] * xt, nfe=nfe, seconds=elapsed(t0, device),
                        path_length=length.cpu(), displacement=(last - first).norm(dim=1).cpu())


@dataclass(frozen=True)
class Solver:
    """A sampler function with its identifier: the :class:`~.noise.reverse.Sampler` a stage is handed."""

    name: str
    fn: Callable[..., SampleResult]

    def __call__(self, denoiser, process, chain, shape, rng, **kwargs) -> SampleResult:
        return self.fn(denoiser, process, chain, shape, rng, **kwargs)


#: declaration kind (:data:`~.sampler_registry.SAMPLERS`) → the sampler a parsed identifier runs
SAMPLER_FUNCTIONS: dict[str, Callable[[SamplerSpec], Sampler]] = {
    "ddim": lambda spec: DDIM(spec.eta, spec.name),
    "ancestral": lambda spec: Ancestral(spec.variance),
    "dpmpp-2m": lambda spec: Solver(spec.name, dpmpp_2m),
    "heun": lambda spec: Solver(spec.name, heun),
    "ipndm": lambda spec: Solver(spec.name, ipndm),
    "unipc": lambda spec: Solver(spec.name, unipc),
    "deis": lambda spec: Solver(spec.name, deis),
}


def sampler_for(spec: SamplerSpec) -> Sampler:
    """The sampler a parsed identifier names."""
    return SAMPLER_FUNCTIONS[spec.kind](spec)


def sample(denoiser: Denoiser, process: NoiseSource, chain: Chain, spec: SamplerSpec, shape: Sequence[int],
           rng: RNG, *, clip_x0: bool = True, device: torch.device | str = "cpu",
           x_T: torch.Tensor | None = None, prediction: str = "eps") -> SampleResult:
    """Run ``spec`` over ``chain`` from x_T (drawn from the process prior unless given). The denoiser
    predicts ε̂ (``prediction="eps"``) or x̂_0 directly (``"x0"``); the other one of the pair follows from
    x_i = √ᾱ'_i x̂_0 + √(1 − ᾱ'_i) ε̂."""
    return sampler_for(spec)(denoiser, process, chain, shape, rng, clip_x0=clip_x0, device=device, x_T=x_T,
                             prediction=prediction)
