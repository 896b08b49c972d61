"""The solver error's reference solve (RK4 refined by its Richardson estimate), what it resolves, and the fitted
order, against the exact mixture oracle (tests/mixture_oracle.py) and closed-form power laws."""

import pytest
import torch

from diffsteps.rng import BatchRNG
from diffsteps.sampler_registry import SamplerSpec
from diffsteps.samplers import rk4
from diffsteps.solver_error import (RESOLUTION, cell_errors, excess_length, fitted_order, reference_solve, resolves, richardson,
                                    rms_distance)
from diffsteps.spacing import EXACT_LOGSNR

from . import mixture_oracle

def oracle(continuous: bool):
    """(x_T, exact endpoint, solve(name, K, spacing), reference solve(M)) on the mixture oracle."""
    start, exact = mixture_oracle.exact_from_seed(64, 0, continuous)
    den = mixture_oracle.eps_denoiser(continuous)
    chain_of = mixture_oracle.continuous_chain if continuous else mixture_oracle.discrete_chain

    def solve(name, K, spacing):
        return mixture_oracle.solve(name, K, spacing, start, continuous)

    def solve_reference(M):
        chain = chain_of(2 * M + (0 if continuous else 1), EXACT_LOGSNR)
        return rk4(den, mixture_oracle.PROCESS, chain, start.shape, BatchRNG(0), clip_x0=False, x_T=start).x0

    return start, exact, solve, solve_reference


def smallest_of(endpoints):
    def smallest(ref):
        return min(float(e.mean()) for e in cell_errors(endpoints, ref).values())
    return smallest


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_reference_is_refined_until_it_resolves_the_smallest_error(continuous):
    """Refined until its Richardson estimate is ≤ 10% of the smallest reported error, and that estimate is honest:
    the true distance to the independent DOP853 solve is within a factor 3 of it."""
    _, exact, solve, solve_reference = oracle(continuous)
    endpoints = {(n, "karras", K): solve(n, K, "karras") for n in ("ddim-eta0", "heun") for K in (5, 10, 20)}
    ref = reference_solve(solve_reference, lambda M: 4 * M, smallest_of(endpoints), max_steps=1024)
    true = float(rms_distance(ref.x, exact).mean())
    assert ref.converged and ref.estimate <= RESOLUTION * smallest_of(endpoints)(ref.x)
    assert ref.estimate / 3 <= true <= 3 * ref.estimate
    assert ref.order == pytest.approx(4.0, abs=0.6)  # RK4
    assert true <= RESOLUTION * smallest_of(endpoints)(exact)


def test_a_reference_capped_by_max_K_is_not_converged():
    _, _, solve, solve_reference = oracle(False)
    endpoints = {("heun", "karras", 200): solve("heun", 200, "karras")}
    ref = reference_solve(solve_reference, lambda M: 4 * M + 1, smallest_of(endpoints), max_steps=32)
    assert not ref.converged and ref.steps == 32 and ref.nfe == 129
    assert not resolves(ref.estimate, smallest_of(endpoints)(ref.x))


def test_richardson_estimate_of_a_power_law_is_exact():
    """x_M = x* + c·M^−p: the estimate from M, 2M, 4M is the true error of x_4M and the order is p."""
    exact, c = torch.zeros(4, 1, 2, 2), torch.full((4, 1, 2, 2), 0.3)
    x = {M: exact + c * M**-3.0 for M in (8, 16, 32)}
    estimate, order = richardson(x[8], x[16], x[32])
    assert order == pytest.approx(3.0)
    assert estimate == pytest.approx(float(rms_distance(x[32], exact).mean()), rel=1e-9)


def test_resolves_is_the_ten_percent_rule():
    assert resolves(1e-4, 1e-3) and not resolves(1.1e-4, 1e-3)


def test_errors_fall_with_nfe_at_the_solvers_order_against_the_reference():
    """Measured against the converged reference (not against DDIM at K = T), first- and second-order solvers show
    their orders on the exact continuous grid."""
    _, _, solve, solve_reference = oracle(True)
    Ks = (16, 32, 64)
    endpoints = {(n, "logsnr", K): solve(n, K, "logsnr") for n in ("ddim-eta0", "dpmpp-2m", "heun") for K in Ks}
    ref = reference_solve(solve_reference, lambda M: 4 * M, smallest_of(endpoints), max_steps=1024)
    errs = cell_errors(endpoints, ref.x)
    for name, order in (("ddim-eta0", 1), ("dpmpp-2m", 2), ("heun", 2)):
        spec = SamplerSpec.parse(name)
        fitted = fitted_order([spec.nfe(K) for K in Ks], [float(errs[(name, "logsnr", K)].mean()) for K in Ks])
        assert fitted == pytest.approx(order, abs=0.3)


def test_fitted_order_of_a_power_law_and_degenerate_inputs():
    assert fitted_order([10, 20, 40], [3e-2 * n**-2.0 for n in (10, 20, 40)]) == pytest.approx(2.0)
    assert fitted_order([10], [0.1]) is None
    assert fitted_order([10, 10], [0.1, 0.2]) is None
    assert fitted_order([10, 20], [0.1, 0.0]) is None


def _point_trajectories(process, chain, c, x_T):
    """The reference solve with the exact denoiser of single-point data c (x̂_0 = c for every x_t): its traced
    path lengths and displacements."""
    res = rk4(lambda x, t: c.expand_as(x), process, chain, x_T.shape, BatchRNG(0), clip_x0=False, x_T=x_T,
              prediction="x0")
    return res.path_length, res.displacement


def test_flow_trajectories_of_single_point_data_are_straight_lines():
    """Flow matching's ODE with the exact denoiser of one point moves every sample on the line from x_T to c, so its
    excess length is 0 to the solver's error: below 1e-4 at 64 RK4 steps and falling at RK4's order (×1/8 or
    better per doubling)."""
    from diffsteps.noise.flow import FlowGaussian, FlowSchedule

    process = FlowGaussian(FlowSchedule())
    c = torch.full((1, 1, 4, 4), 0.3, dtype=torch.float64)
    x_T = torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    e32, e64 = (float(excess_length(*_point_trajectories(process, process.chain(2 * M, EXACT_LOGSNR), c, x_T))
                      .abs().max()) for M in (32, 64))
    assert e64 < 1e-4 and e64 < e32 / 8, (e32, e64)


def test_ddpm_trajectories_of_single_point_data_are_the_closed_form_arcs():
    """DDPM's ODE with the exact denoiser of one point c follows x = α_t·c + σ_t·ε (ε fixed by x_T): with α = sin θ,
    σ = cos θ, the arc from θ_T = arcsin(α_T) to π/2 has length ∫ ‖cos θ·c − sin θ·ε‖ dθ (scipy, independently of
    the solver); the traced excess length matches it to 1e-4."""
    import numpy as np
    from scipy import integrate

    from diffsteps.noise.gaussian import GaussianNoise
    from diffsteps.noise.schedule import Schedule, make_betas

    schedule = Schedule(make_betas("linear", 1000))
    process = GaussianNoise(schedule)
    chain = schedule.chain(513, EXACT_LOGSNR)  # 256 RK4 steps and the final denoising
    gen = torch.Generator().manual_seed(1)
    c = torch.rand((1, 1, 4, 4), generator=gen, dtype=torch.float64) * 2 - 1
    eps = torch.randn(6, 1, 4, 4, generator=gen, dtype=torch.float64)
    a_T = float(schedule.alpha_bar[-1]) ** 0.5
    x_T = a_T * c + (1 - a_T**2) ** 0.5 * eps
    path, disp = _point_trajectories(process, chain, c, x_T)
    cv, ev = c.flatten().numpy(), eps.flatten(1).numpy()
    for j in range(len(ev)):
        length = integrate.quad(lambda th: np.linalg.norm(np.cos(th) * cv - np.sin(th) * ev[j]), np.arcsin(a_T),
                                np.pi / 2, epsabs=1e-12, limit=200)[0]
        expected = length / np.linalg.norm(cv - (a_T * cv + (1 - a_T**2) ** 0.5 * ev[j])) - 1
        # to 1e-4: the polygon through the RK4 nodes is shorter than the arc by its chords' error (O(h²): 3e-4 at
        # 64 steps, under 2e-5 at 256)
        assert float(excess_length(path, disp)[j]) == pytest.approx(expected, abs=1e-4)
        assert expected > 0.01  # an arc, not a line: the test can tell them apart
