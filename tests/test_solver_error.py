"""The solver error's reference solve and fitted order, with exact denoisers on Gaussian data (closed form)."""

import math

import pytest
import torch

from diffsteps.noise.gaussian import GaussianNoise
from diffsteps.noise.schedule import Schedule, make_betas
from diffsteps.noise.logsnr import ContinuousGaussian, build_schedule
from diffsteps.rng import StackedRNG
from diffsteps.sampler_registry import SamplerSpec
from diffsteps.samplers import sample
from diffsteps.spacing import SPACINGS
from diffsteps.solver_error import (CONTINUOUS_START_K, CONVERGED_SHARE, cell_errors, fitted_order, reference_solve,
                                    rms_distance)

MU, S = 0.2, 0.4
SHAPE = (64, 1, 2, 2)


def eps_exact(alpha_bar_of):
    def den(x, t):
        ab = alpha_bar_of(t).double().reshape(-1, 1, 1, 1)
        return ((1 - ab).sqrt() * (x.double() - ab.sqrt() * MU) / (ab * S**2 + 1 - ab)).float()
    return den


def solver(process, chain_of, den):
    def solve(name, K, spacing):
        return sample(den, process, chain_of(K, SPACINGS[spacing]), SamplerSpec.parse(name), SHAPE, StackedRNG(3, range(64)),
                      clip_x0=False).x0
    return solve


def nfe_of(name, K):
    return SamplerSpec.parse(name).nfe(K)


CONTINUOUS = ContinuousGaussian(build_schedule("fixed_linear"))
CONT_SOLVE = solver(CONTINUOUS, CONTINUOUS.chain,
                    eps_exact(lambda t: torch.sigmoid(-CONTINUOUS.schedule(t.float()).double())))
DISCRETE = GaussianNoise(Schedule(make_betas("linear", 1000)))
DISC_SOLVE = solver(DISCRETE, DISCRETE.schedule.chain, eps_exact(lambda t: DISCRETE.schedule.alpha_bar[t.long()]))


def smallest_of(endpoints):
    def smallest(ref):
        return min(float(e.mean()) for e in cell_errors(endpoints, ref).values())
    return smallest


def test_continuous_reference_is_converged_in_the_study_sense():
    """Refined until halving its step moves it by < 1% of the smallest reported error (STUDY.md)."""
    endpoints = {(n, "uniform", K): CONT_SOLVE(n, K, "uniform") for n in ("ddim-eta0", "heun") for K in (5, 10, 20)}
    ref = reference_solve(CONT_SOLVE, nfe_of, smallest_of(endpoints), continuous=True, T=None)
    assert ref.converged and ref.sampler == "heun" and ref.K > CONTINUOUS_START_K
    smallest = smallest_of(endpoints)(ref.x)
    half = CONT_SOLVE("heun", ref.K // 2, "logsnr")
    assert float(rms_distance(half, ref.x).mean()) == pytest.approx(ref.shift)
    assert ref.shift < CONVERGED_SHARE * smallest
    assert ref.nfe == 2 * ref.K - 1


def test_continuous_reference_reaches_the_exact_flow():
    """For Gaussian data the endpoint of the flow is affine in x_T: x_0 = μ + (z_1/α_1 − μ)·s/√(s² + σ̃_1²)
    (then times α_0 on the z_0 side); the converged reference matches it far below every reported error."""
    x_T = CONTINUOUS.prior_sample(SHAPE, StackedRNG(3, range(64)))
    g0, g1 = (float(v) for v in CONTINUOUS.schedule.endpoints())
    a1, st1 = math.sqrt(1 / (1 + math.exp(g1))), math.exp(g1 / 2)
    a0, st0 = math.sqrt(1 / (1 + math.exp(g0))), math.exp(g0 / 2)
    exact = a0 * (MU + (x_T.double() / a1 - MU) * math.sqrt((S**2 + st0**2) / (S**2 + st1**2)))
    endpoints = {("ddim-eta0", "uniform", 10): CONT_SOLVE("ddim-eta0", 10, "uniform")}
    ref = reference_solve(CONT_SOLVE, nfe_of, smallest_of(endpoints), continuous=True, T=None)
    assert float(rms_distance(ref.x, exact).mean()) < CONVERGED_SHARE * smallest_of(endpoints)(ref.x)


def test_discrete_reference_is_ddim_at_T():
    endpoints = {("heun", "uniform", 10): DISC_SOLVE("heun", 10, "uniform")}
    ref = reference_solve(DISC_SOLVE, nfe_of, smallest_of(endpoints), continuous=False, T=1000)
    assert (ref.sampler, ref.K, ref.nfe) == ("ddim-eta0", 1000, 1000)
    assert torch.equal(ref.x, DISC_SOLVE("ddim-eta0", 1000, "uniform"))
    assert ref.shift > 0


def test_errors_fall_with_nfe_at_the_solvers_order():
    endpoints = {(n, "uniform", K): CONT_SOLVE(n, K, "uniform") for n in ("ddim-eta0", "dpmpp-2m")
                 for K in (16, 32, 64)}
    ref = reference_solve(CONT_SOLVE, nfe_of, smallest_of(endpoints), continuous=True, T=None)
    errs = cell_errors(endpoints, ref.x)
    for name, order in (("ddim-eta0", 1), ("dpmpp-2m", 2)):
        ks = (16, 32, 64)
        fitted = fitted_order([nfe_of(name, K) for K in ks], [float(errs[(name, "uniform", K)].mean()) for K in ks])
        assert fitted == pytest.approx(order, abs=0.3)


def test_fitted_order_of_a_power_law_and_degenerate_inputs():
    assert fitted_order([10, 20, 40], [3e-2 * n**-2.0 for n in (10, 20, 40)]) == pytest.approx(2.0)
    assert fitted_order([10], [0.1]) is None
    assert fitted_order([10, 10], [0.1, 0.2]) is None
    assert fitted_order([10, 20], [0.1, 0.0]) is None
