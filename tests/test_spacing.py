"""Every registered spacing: length, endpoints, strict monotonicity, distinct integers for discrete models,
and agreement with the published formula (computed here, independently of the module)."""

import math

import numpy as np
import pytest
import torch

from diffsteps.noise.logsnr import ContinuousGaussian, build_schedule, grid_times
from diffsteps.noise.schedule import Schedule, make_betas
from diffsteps.spacing import SPACINGS, continuous_times, discrete_times, invert_increasing

T = 1000
ALPHA_BAR = Schedule(make_betas("linear", T)).alpha_bar.numpy()
COSINE = Schedule(make_betas("cosine", T)).alpha_bar.numpy()


def lam(ab):
    return 0.5 * np.log(ab / (1 - ab))


def sigma_tilde(ab):
    return np.sqrt((1 - ab) / ab)


@pytest.mark.parametrize("name", list(SPACINGS))
@pytest.mark.parametrize("K", [2, 3, 5, 10, 20, 50, 100, 999, 1000])
@pytest.mark.parametrize("alpha_bar", [ALPHA_BAR, COSINE], ids=["linear", "cosine"])
def test_discrete_times_are_K_distinct_increasing_integers_ending_at_T(name, K, alpha_bar):
    tau = discrete_times(alpha_bar, K, name)
    assert tau.dtype == np.int64 and len(tau) == K
    assert tau[-1] == T and np.all(np.diff(tau) > 0) and tau[0] >= 1
    # every spacing but trailing starts at the decoder step t = 1; trailing at T/K
    assert tau[0] == (round(T / K) if name == "trailing" else 1)


@pytest.mark.parametrize("K", [10, 50])
def test_trailing_is_diffusers_trailing(K):
    # diffusers DDIMScheduler.set_timesteps, timestep_spacing="trailing" (0-based, descending)
    step_ratio = T / K
    diffusers = np.round(np.arange(T, 0, -step_ratio)).astype(np.int64) - 1
    assert np.array_equal(discrete_times(ALPHA_BAR, K, "trailing"), np.sort(diffusers) + 1)
    assert discrete_times(ALPHA_BAR, K, "trailing")[0] == T // K


def test_uniform_and_quad_formulas():
    u = np.linspace(0, 1, 10)
    assert np.array_equal(discrete_times(ALPHA_BAR, 10, "uniform"), np.rint(1 + 999 * u).astype(int))
    assert np.array_equal(discrete_times(ALPHA_BAR, 10, "quad"), np.rint(1 + 999 * u**2).astype(int))
    un, q = discrete_times(ALPHA_BAR, 20, "uniform"), discrete_times(ALPHA_BAR, 20, "quad")
    assert q[1] - q[0] < un[1] - un[0] and q[-1] - q[-2] > un[-1] - un[-2]


@pytest.mark.parametrize("K", [5, 10, 20])
def test_logsnr_is_uniform_in_lambda_up_to_integer_rounding(K):
    tau = discrete_times(ALPHA_BAR, K, "logsnr")
    target = np.linspace(lam(ALPHA_BAR[1]), lam(ALPHA_BAR[T]), K)  # in increasing t: λ decreases
    got = lam(ALPHA_BAR[tau])
    # each chosen integer is the one nearest the target λ (one step of the table either side is farther)
    for t, want in zip(tau[1:-1], target[1:-1]):
        here = abs(lam(ALPHA_BAR[t]) - want)
        assert here <= abs(lam(ALPHA_BAR[t - 1]) - want) + 1e-12 or here <= abs(lam(ALPHA_BAR[t + 1]) - want) + 1e-12
    assert got[0] == pytest.approx(target[0]) and got[-1] == pytest.approx(target[-1])
    # the λ steps are equal to within the local step of the integer table
    steps = -np.diff(got)
    assert steps.std() / steps.mean() < 0.2


@pytest.mark.parametrize("K", [5, 10, 20])
def test_karras_follows_edm_rho_7(K):
    tau = discrete_times(ALPHA_BAR, K, "karras")
    smax, smin = sigma_tilde(ALPHA_BAR[T]), sigma_tilde(ALPHA_BAR[1])
    i = np.arange(K)
    edm = (smax ** (1 / 7) + i / (K - 1) * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7  # EDM eq. 5, descending
    got = sigma_tilde(ALPHA_BAR[tau])[::-1]
    np.testing.assert_allclose(got[[0, -1]], edm[[0, -1]], rtol=1e-12)
    # interior: the nearest integer time, so σ̃ within the table's local ratio of the formula's value
    ratio = np.abs(np.log(got[1:-1] / edm[1:-1]))
    local = np.log(sigma_tilde(ALPHA_BAR[tau[::-1][1:-1] + 1]) / sigma_tilde(ALPHA_BAR[tau[::-1][1:-1] - 1]))
    assert np.all(ratio <= local)


def test_spacings_differ_where_they_should():
    grids = {name: tuple(discrete_times(ALPHA_BAR, 10, name)) for name in SPACINGS}
    assert len(set(grids.values())) == len(SPACINGS)


def test_bad_names_and_budgets_are_rejected_listing_the_options():
    with pytest.raises(ValueError, match="uniform.*quad.*trailing.*logsnr.*karras"):
        discrete_times(ALPHA_BAR, 10, "cubic")
    with pytest.raises(ValueError, match="2 ≤ K ≤ T"):
        discrete_times(ALPHA_BAR, 1001, "uniform")
    with pytest.raises(ValueError, match="needs the model's schedule"):
        continuous_times(10, "logsnr")


def test_chain_uses_the_spacing():
    s = Schedule(make_betas("linear", T))
    chain = s.chain(10, SPACINGS["karras"])
    assert np.array_equal(chain.tau[1:].numpy(), discrete_times(ALPHA_BAR, 10, "karras")) and chain.tau[0] == 0


# --- continuous time ----------------------------------------------------------------------------------------------


def linear_gamma(t):
    return -13.3 + 18.3 * t


@pytest.mark.parametrize("name", list(SPACINGS))
@pytest.mark.parametrize("K", [1, 2, 10, 64])
def test_continuous_times_run_from_0_to_1_strictly(name, K):
    t = continuous_times(K, name, linear_gamma)
    assert t.dtype == np.float64 and len(t) == K + 1 and t[0] == 0.0 and t[-1] == 1.0
    assert np.all(np.diff(t) > 0)


def test_continuous_formulas_on_a_linear_gamma():
    K = 8
    u = np.arange(K + 1) / K
    np.testing.assert_array_equal(continuous_times(K, "uniform", linear_gamma), u)
    np.testing.assert_array_equal(continuous_times(K, "trailing", linear_gamma), u)
    np.testing.assert_array_equal(continuous_times(K, "quad", linear_gamma), u**2)
    # γ linear in t: uniform in λ = −γ/2 is uniform in t
    np.testing.assert_allclose(continuous_times(K, "logsnr", linear_gamma), u, atol=1e-12)
    # karras: σ̃ = exp(γ/2), ρ = 7 from σ̃(1) down to σ̃(0)
    smax, smin = math.exp(5.0 / 2), math.exp(-13.3 / 2)
    edm = (smax ** (1 / 7) + u * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7
    t = continuous_times(K, "karras", linear_gamma)
    np.testing.assert_allclose(np.exp(linear_gamma(t) / 2)[::-1], edm, rtol=1e-9)


def test_inversion_of_an_increasing_function():
    y = np.linspace(-13.0, 4.9, 7)
    x = invert_increasing(lambda t: -13.3 + 18.3 * t**3, y)
    np.testing.assert_allclose(-13.3 + 18.3 * x**3, y, atol=1e-12)


def test_vdm_chain_on_logsnr_grid_is_uniform_in_its_learned_lambda():
    torch.manual_seed(0)
    sched = build_schedule("monotone_net")
    with torch.no_grad():
        for p in sched.parameters():
            p.add_(0.3 * torch.randn_like(p))
    chain = ContinuousGaussian(sched).chain(12, SPACINGS["logsnr"])
    assert np.array_equal(chain.tau.numpy(), grid_times(sched, 12, SPACINGS["logsnr"]))
    lam_chain = lam(chain.alpha_bar.numpy())
    steps = np.diff(lam_chain)
    # float32 network evaluation of γ: uniform to ~1e-4 of the step
    np.testing.assert_allclose(steps, steps.mean(), rtol=1e-3)
