"""Flow matching's interpolant (STUDY.md §6) against closed forms: the forward marginal's moments, the (x̂_0, ε̂)
conversion of a velocity, the schedule's log-SNR, and, with the exact velocity of Gaussian data, Euler (DDIM η = 0)
converging at order 1 to the closed-form flow, and every ODE sampler and spacing converging to it."""

import math

import numpy as np
import pytest
import torch

from diffsteps.noise.flow import (TIME_SCALE, FlowObjective, FlowSchedule, VelocityDenoiser, flow_gamma, interpolate,
                                  training_times)
from diffsteps.noise.logsnr import ContinuousGaussian
from diffsteps.noise.reverse import predict_x0
from diffsteps.rng import BatchRNG
from diffsteps.sampler_registry import SamplerSpec
from diffsteps.samplers import sampler_for
from diffsteps.solver_error import fitted_order, rms_distance
from diffsteps.spacing import SPACINGS

MU, S = 0.3, 0.5  # the Gaussian data: x_0 ~ N(MU, S²) in every pixel


def m(t):
    """The interpolant's marginal standard deviation for N(MU, S²) data: √((1 − t)² S² + t²)."""
    return np.sqrt((1 - t) ** 2 * S**2 + t**2)


class GaussianVelocity(torch.nn.Module):
    """The exact velocity E[ε − x_0 | x_t] of N(MU, S²) data, as a network of (x_t, TIME_SCALE·t)."""

    def forward(self, x, s):
        t = (s / TIME_SCALE).to(torch.float64).reshape(-1, *([1] * (x.dim() - 1)))
        r = (x.double() - (1 - t) * MU) / ((1 - t) ** 2 * S**2 + t**2)
        return (t * r - (MU + (1 - t) * S**2 * r)).to(x.dtype)


def flow_endpoint(x, t_from, t_to):
    """The closed-form flow of N(MU, S²) data: x_t = (1 − t) MU + m(t)·ξ, with ξ fixed along a trajectory."""
    return (1 - t_to) * MU + m(t_to) / m(t_from) * (x - (1 - t_from) * MU)


def test_the_forward_marginal_has_the_interpolants_moments():
    n, x0 = 200_000, torch.full((200_000, 1), 0.7, dtype=torch.float64)
    for t in (0.1, 0.5, 0.9):
        x_t, v = interpolate(x0, torch.full((n,), t, dtype=torch.float64), BatchRNG(1))
        assert float(x_t.mean()) == pytest.approx((1 - t) * 0.7, abs=5 * t / n**0.5)
        assert float(x_t.var()) == pytest.approx(t**2, rel=0.02)
        # the velocity is ε − x_0: x_t − t·v is x_0 again, for every draw
        assert torch.allclose(x_t - t * v, x0, atol=1e-12)


def test_training_times_follow_their_laws():
    u = training_times(100_000, "uniform", BatchRNG(0), "cpu").double()
    assert 0 <= float(u.min()) and float(u.max()) <= 1 and float(u.mean()) == pytest.approx(0.5, abs=0.01)
    ln = training_times(100_000, "logit_normal", BatchRNG(0), "cpu").double()
    logit = torch.log(ln) - torch.log1p(-ln)
    assert float(logit.mean()) == pytest.approx(0, abs=0.02) and float(logit.std()) == pytest.approx(1, abs=0.02)
    with pytest.raises(ValueError, match="time_sampling"):
        FlowObjective("beta")


def test_the_velocity_converts_to_the_vp_chains_pair():
    """x̂_0 = x_t − t v and ε̂ = x_t + (1 − t) v: through VelocityDenoiser and the VP chain's predict_x0, the true
    velocity gives back x_0 and ε exactly, at every position of the chain."""
    sched = FlowSchedule(1e-3, 0.999)
    x0, eps = torch.randn(4, 1, 3, 3, dtype=torch.float64), torch.randn(4, 1, 3, 3, dtype=torch.float64)
    u = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    t = sched.time(u).reshape(-1, 1, 1, 1)
    x_t = (1 - t) * x0 + t * eps
    c = torch.sqrt((1 - t) ** 2 + t**2)

    def oracle(x, s):  # the true velocity of these draws, asked at the right (x_t, TIME_SCALE·t)
        assert torch.allclose(x, x_t, atol=1e-12) and torch.allclose(s, TIME_SCALE * t.flatten())
        return eps - x0

    eps_hat = VelocityDenoiser(oracle, sched)(x_t / c, u)
    assert torch.allclose(eps_hat, eps, atol=1e-12)
    alpha_bar = ((1 - t) / c) ** 2
    x0_hat, _ = predict_x0(x_t / c, eps_hat, alpha_bar, clip=False)
    assert torch.allclose(x0_hat, x0, atol=1e-9)


def test_the_schedule_is_the_interpolants_log_snr():
    sched = FlowSchedule(1e-3, 0.999)
    u = torch.linspace(0, 1, 11)
    t = sched.time(u.double())
    assert torch.allclose(sched(u).double(), flow_gamma(t), atol=1e-4)  # γ = 2 log(t/(1 − t)), in float32
    chain = ContinuousGaussian(sched).chain(10, SPACINGS["uniform"])
    tt = sched.time(chain.tau)
    assert torch.allclose(chain.alpha_bar, (1 - tt) ** 2 / ((1 - tt) ** 2 + tt**2), rtol=1e-5)
    assert float(flow_gamma(0.5)) == 0.0 and flow_gamma(0.999) == pytest.approx(2 * math.log(999))
    with pytest.raises(ValueError, match="t_min"):
        FlowSchedule(0.0, 0.999)


def _solve(name, spacing, K, x_T, sched):
    chain = ContinuousGaussian(sched).chain(K, SPACINGS[spacing])
    res = sampler_for(SamplerSpec.parse(name))(VelocityDenoiser(GaussianVelocity(), sched), ContinuousGaussian(sched),
                                               chain, x_T.shape, BatchRNG(0), clip_x0=False, x_T=x_T)
    return res.x0 / float(chain.alpha_bar[0]) ** 0.5 * (1 - sched.t_min)  # x at t_min


@pytest.fixture(scope="module")
def start():
    """The schedule, the samplers' start z_T = x_{t_max}/c (x_{t_max} drawn from its marginal) and the closed-form
    endpoint x_{t_min} of each trajectory."""
    sched = FlowSchedule(1e-3, 0.999)
    xi = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x_max = (1 - sched.t_max) * MU + m(sched.t_max) * xi
    z_T = x_max / math.sqrt(sched.t_max**2 + (1 - sched.t_max) ** 2)
    return sched, z_T, flow_endpoint(x_max, sched.t_max, sched.t_min)


def test_euler_converges_at_order_one_to_the_closed_form_flow(start):
    """With the exact velocity of Gaussian data, DDIM η = 0 on the flow's uniform grid is Euler in t: its error
    against the closed-form flow falls as 1/K (fitted order within 0.1 of 1)."""
    sched, z_T, exact = start
    Ks = [8, 16, 32, 64]
    errors = [float(rms_distance(_solve("ddim-eta0", "uniform", K, z_T, sched), exact).mean()) for K in Ks]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert fitted_order(Ks, errors) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("spacing", list(SPACINGS))
@pytest.mark.parametrize("sampler", ["ddim-eta0", "dpmpp-2m", "heun", "ipndm"])
def test_every_ode_sampler_and_spacing_reaches_the_closed_form_flow(sampler, spacing, start):
    """Nothing is special-cased: every deterministic sampler on every spacing solves the flow's ODE, its error
    against the closed form falling from K = 16 to 64 at least as fast as an order of 0.75 implies (every one of them
    is at least first order), to below 0.04."""
    sched, z_T, exact = start
    e16, e64 = (float(rms_distance(_solve(sampler, spacing, K, z_T, sched), exact).mean()) for K in (16, 64))
    assert e64 <= max(e16 / 4**0.75, 1e-9) and e64 < 0.04, (e16, e64)
