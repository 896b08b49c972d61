"""DDGAN's chain: the VP-SDE discretised at T steps, its Gaussian posterior, per-sample ancestral steps."""

import math

import numpy as np
import pytest
import torch

from diffsteps.noise.gaussian import GaussianNoise
from diffsteps.noise.schedule import Schedule, vp_sde_betas
from diffsteps.noise.schedule import VP_T_EPS
from diffsteps.rng import BatchRNG
from diffsteps.noise.reverse import ancestral_step

B_MIN, B_MAX = 0.1, 20.0


def sde_alpha_bar(s):
    return np.exp(-0.5 * s**2 * (B_MAX - B_MIN) - s * B_MIN)


@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_cumulative_product_is_the_sde_marginal(T):
    s = VP_T_EPS + (1 - VP_T_EPS) * np.arange(T + 1) / T
    ab = Schedule(vp_sde_betas(T, B_MIN, B_MAX)).alpha_bar.numpy()
    np.testing.assert_allclose(ab, sde_alpha_bar(s) / sde_alpha_bar(s[0]), rtol=1e-12)
    assert ab[-1] == pytest.approx(sde_alpha_bar(1.0) / sde_alpha_bar(VP_T_EPS), rel=1e-12)  # same end for every T


def test_betas_lie_in_the_unit_interval_and_grow():
    betas = vp_sde_betas(8)
    assert np.all((betas > 0) & (betas < 1)) and np.all(np.diff(betas) > 0)


@pytest.mark.parametrize("kwargs, needle", [({"T": 0}, "T = 0"), ({"T": 4, "beta_min": 2.0, "beta_max": 1.0}, "beta_min = 2.0")])
def test_bad_schedule_arguments_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        vp_sde_betas(**kwargs)


@pytest.mark.parametrize("T", [2, 4])
def test_posterior_coefficients_match_the_closed_forms(T):
    chain = Schedule(vp_sde_betas(T)).chain()
    ab, beta = chain.alpha_bar.numpy(), chain.beta.numpy()
    c0, ct = (c.numpy() for c in chain.posterior_coefs())
    i = np.arange(1, T + 1)
    np.testing.assert_allclose(c0[i], np.sqrt(ab[i - 1]) * beta[i] / (1 - ab[i]), rtol=1e-12)
    np.testing.assert_allclose(ct[i], np.sqrt(1 - beta[i]) * (1 - ab[i - 1]) / (1 - ab[i]), rtol=1e-12)
    np.testing.assert_allclose(chain.beta_tilde.numpy()[i], (1 - ab[i - 1]) * beta[i] / (1 - ab[i]), rtol=1e-12)
    assert c0[1] == pytest.approx(1.0) and ct[1] == pytest.approx(0.0, abs=1e-15)  # x_0 is x̂_0 at the last step


def test_posterior_is_the_conditional_of_the_forward_chain():
    """Regress x_{t−1} on x_t over forward draws from a fixed x_0: slope/intercept/residual variance are the
    posterior's ct, c0·x_0 and β̃ (Gaussian chain: the conditional is exactly linear-Gaussian)."""
    T, t, x0, n = 4, 3, 0.7, 200_000
    process = GaussianNoise(Schedule(vp_sde_betas(T)))
    chain = process.schedule.chain()
    rng = BatchRNG(0)
    prev = process.q_sample(torch.full((n, 1), x0, dtype=torch.float64), torch.full((n,), t - 1), rng).x_t
    cur = process.forward_step(prev, torch.full((n,), t), rng)
    y, x = prev.flatten().numpy(), cur.flatten().numpy()
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    c0, ct = (float(c[t]) for c in chain.posterior_coefs())
    se = 4 / math.sqrt(n)
    assert slope == pytest.approx(ct, abs=se) and intercept == pytest.approx(c0 * x0, abs=se)
    assert resid.var() == pytest.approx(float(chain.beta_tilde[t]), rel=4 * math.sqrt(2 / n))


def test_per_sample_ancestral_step_equals_the_scalar_one_and_adds_no_noise_at_one():
    chain = Schedule(vp_sde_betas(4)).chain()
    g = torch.Generator().manual_seed(0)
    x_t, x0, z = (torch.randn(4, 1, 2, 2, generator=g) for _ in range(3))
    idx = torch.tensor([1, 2, 3, 4])
    batched = ancestral_step(x_t, x0, chain, idx, "betatilde", z)
    for b, i in enumerate(idx.tolist()):
        one = ancestral_step(x_t[b:b + 1], x0[b:b + 1], chain, i, "betatilde", z[b:b + 1] if i > 1 else None)
        torch.testing.assert_close(batched[b:b + 1], one, rtol=0, atol=0)
    torch.testing.assert_close(batched[0], x0[0], rtol=0, atol=1e-7)  # c0_1 = 1, ct_1 = 0, no noise
    with pytest.raises(ValueError, match="noise z is required"):
        ancestral_step(x_t, x0, chain, idx, "betatilde", None)
