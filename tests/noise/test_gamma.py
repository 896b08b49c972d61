"""Statistical tests of DDGM's Gamma noise (arXiv 2110.05948) against its closed forms, in float64.

With θ_t = √ᾱ_t θ0 and k̄_t = (1 − ᾱ_t)/(ᾱ_t θ0²), x_t = √ᾱ_t x0 + θ_t (G − k̄_t) with G ~ Γ(k̄_t, 1), and the
standardised noise is ε_t = (G − k̄_t)/√k̄_t. The regimes covered run from k̄ ≈ 4e-4 (θ0 = 0.5, t = 1: almost
all the mass sits on the left end of the support) to k̄ ≈ 2.5e10 (θ0 = 0.001, t = T).
"""

import numpy as np
import pytest
import torch
from scipy import special, stats

from diffsteps.noise.schedule import Schedule, make_betas
from diffsteps.noise.gamma import GammaNoise
from diffsteps.rng import BatchRNG
from diffsteps.spacing import SPACINGS

EPS64 = np.finfo(np.float64).eps


@pytest.fixture(scope="module")
def schedule():
    return Schedule(make_betas("linear", 1000))


def ks_pvalue(x, cdf, delta=0.0):
    """One-sample two-sided KS p-value of float64 data ``x`` against a continuous ``cdf``, where each value may
    stand for any true value within ±``delta`` (its floating-point rounding error).

    With delta = 0 this is the usual KS test. It is needed where k̄ is small: ε = (G − k̄)/√k̄ cannot resolve
    G below ~k̄·1e-16, so most draws share the float64 value nearest −√k̄ (at k̄ = 4e-4 about 96% of them)
    while the continuous CDF climbs from 0 to ~1 within one ulp of it; evaluating the CDF at the rounded value
    would then reject a correct sampler. The slack is a few ulps, so the test keeps its power elsewhere.
    """
    order = np.argsort(x)
    x, d = x[order], np.broadcast_to(delta, x.shape)[order]
    n = len(x)
    i = np.arange(1, n + 1)
    D = max((i / n - cdf(x + d)).max(), (cdf(x - d) - (i - 1) / n).max())
    return float(stats.kstwo.sf(D, n))


def eps_cdf(k):
    """CDF of ε = (G − k)/√k, G ~ Γ(k, 1) (i.e. scipy.stats.gamma(a=k, loc=−√k, scale=1/√k))."""
    return lambda e: special.gammainc(k, np.maximum(k + np.sqrt(k) * e, 0.0))


def eps_draws(process, t, n, seed):
    return process.sample_noise((n, 1), torch.full((n,), t), BatchRNG(seed), dtype=torch.float64).flatten().numpy()


def test_k_bar_and_theta_closed_forms(schedule):
    """k̄_t is the cumulative sum of k_s = β_s/(ᾱ_s θ0²) (with ᾱ_s, not α_s, so that Var = 1 − ᾱ_t), k̄_0 = 0,
    θ_t = √ᾱ_t θ0, and the regimes the other tests rely on: k̄_1 = 0.01 at θ0 = 0.1, k̄_T ≈ 2.5e10 at θ0 = 0.001."""
    theta0 = 0.1
    p = GammaNoise(schedule, theta0=theta0, loss="l1")
    ab = p.alpha_bar.numpy()
    k = schedule.betas / (ab[1:] * theta0**2)
    np.testing.assert_allclose(p.k_bar[1:], np.cumsum(k), rtol=1e-9)
    assert p.k_bar[0] == 0.0
    np.testing.assert_allclose(p.k_bar * p.theta**2, 1 - ab, rtol=1e-12)  # Var(θ_t G) = 1 − ᾱ_t
    np.testing.assert_allclose(p.theta, np.sqrt(ab) * theta0, rtol=1e-15)
    assert p.k_bar[1] == pytest.approx(0.01, rel=1e-3)
    assert GammaNoise(schedule, theta0=0.001, loss="l1").k_bar[1000] == pytest.approx(2.5e10, rel=0.02)
    assert GammaNoise(schedule, theta0=0.5, loss="l1").k_bar[1] == pytest.approx(4e-4, rel=1e-3)


@pytest.mark.parametrize("theta0,t", [(0.5, 1), (0.5, 3), (0.1, 1), (0.1, 10), (0.1, 100), (0.5, 200),
                                      (0.001, 1), (0.001, 500), (0.001, 1000)])
def test_eps_ks_against_standardised_gamma(schedule, theta0, t):
    """ε_t (float64) follows (Γ(k̄_t, 1) − k̄_t)/√k̄_t: KS from the point-mass-like regime (θ0 = 0.5, t = 1,
    k̄ = 4e-4) to k̄ ≈ 2.5e10 (θ0 = 0.001, t = T). A 10% error in k̄ is rejected wherever it changes the law
    visibly (k̄ < 1), which checks the test's power."""
    p = GammaNoise(schedule, theta0=theta0, loss="l1")
    k, n = float(p.k_bar[t]), 20000
    e = eps_draws(p, t, n, seed=t)
    slack = 8 * EPS64 * (np.sqrt(k) + np.abs(e))
    assert ks_pvalue(e, eps_cdf(k), slack) > 1e-3
    if k < 1:
        assert ks_pvalue(e, eps_cdf(1.1 * k), slack) < 1e-6


@pytest.mark.parametrize("theta0,t", [(0.1, 1), (0.1, 30), (0.5, 300), (0.001, 1000)])
def test_q_sample_x_t_ks_against_shifted_gamma(schedule, theta0, t):
    """x_t from q_sample with float64 x0 is √ᾱ_t x0 + θ_t(G − k̄_t): scipy.stats.gamma(a=k̄_t,
    loc=√ᾱ_t x0 − k̄_t θ_t, scale=θ_t); the noise comes back in float64 and x_t = √ᾱ x0 + √(1 − ᾱ) ε."""
    p = GammaNoise(schedule, theta0=theta0, loss="l1")
    n, x0 = 20000, 0.7
    fs = p.q_sample(torch.full((n, 1, 1, 1), x0, dtype=torch.float64), torch.full((n,), t), BatchRNG(100 + t))
    assert fs.x_t.dtype == torch.float64 and fs.eps.dtype == torch.float64
    k, th, ab = float(p.k_bar[t]), float(p.theta[t]), float(p.alpha_bar[t])
    x = fs.x_t.flatten().numpy()
    dist = stats.gamma(a=k, loc=np.sqrt(ab) * x0 - k * th, scale=th)
    slack = 16 * EPS64 * (np.abs(x) + abs(x0) + np.sqrt(1 - ab) * (np.sqrt(k) + np.abs(fs.eps.flatten().numpy())))
    assert ks_pvalue(x, dist.cdf, slack) > 1e-3
    np.testing.assert_allclose(x, np.sqrt(ab) * x0 + np.sqrt(1 - ab) * fs.eps.flatten().numpy(), rtol=0, atol=1e-12)


def test_distinct_values_at_t_T_theta0_0001(schedule):
    """At θ0 = 0.001, t = T (k̄ ≈ 2.5e10) 200k float64 draws are all distinct (up to a handful of chance
    coincidences on the ~1e-10 grid that float64 Gamma draws of size 2.5e10 resolve), and even cast to float32 almost
    all are: a float32 Gamma sampler (ulp 2048 at 2.5e10) yields only a few hundred distinct values. The
    contrast is checked with torch's float32 Gamma sampler so the threshold is known to discriminate."""
    p = GammaNoise(schedule, theta0=0.001, loss="l1")
    n, T = 200_000, schedule.T
    assert p.k_bar[T] > 1e10
    e64 = p.sample_noise((n,), torch.full((n,), T), BatchRNG(0), dtype=torch.float64)
    assert len(torch.unique(e64)) >= n - 10
    e32 = p.sample_noise((n,), torch.full((n,), T), BatchRNG(1))
    assert e32.dtype == torch.float32 and len(torch.unique(e32)) > 0.99 * n
    with torch.random.fork_rng():
        torch.manual_seed(0)
        g32 = torch.distributions.Gamma(torch.tensor(float(p.k_bar[T])), torch.tensor(1.0)).sample((n,))
    assert len(torch.unique(g32)) < 5000


def test_raw_gamma_does_not_underflow_at_k_bar_0_01(schedule):
    """At k̄ = 0.01 (θ0 = 0.1, t = 1) the raw float64 draws keep their left tail: P(G < 1.18e-38) ≈ 0.42 is
    matched, essentially none are 0 (theory: P(G < 5e-324) ≈ 6e-4) and none are clamped to float32's smallest
    normal, the value a float32 sampler returns for ~40% of its draws here."""
    k = float(GammaNoise(schedule, theta0=0.1, loss="l1").k_bar[1])
    n = 200_000
    g = BatchRNG(5).standard_gamma(np.full(n, k), (n,)).numpy()
    assert g.dtype == np.float64
    tiny32 = float(np.finfo(np.float32).tiny)
    assert (g == tiny32).sum() == 0
    assert (g == 0).mean() < 2e-3
    p_below = special.gammainc(k, tiny32)
    assert 0.35 < p_below < 0.5
    assert (g < tiny32).mean() == pytest.approx(p_below, abs=5 * (p_below * (1 - p_below) / n) ** 0.5)
    assert len(np.unique(g)) > 0.99 * n


@pytest.mark.parametrize("theta0,ts", [(0.001, (1, 10, 100, 1000)), (0.1, (30, 100, 1000)), (0.5, (300,))])
def test_mean_zero_and_variance_one_minus_alpha_bar(schedule, theta0, ts):
    """x_t − √ᾱ_t x0 has mean 0 and variance 1 − ᾱ_t (ε has mean 0 and variance 1), to within five standard
    errors computed from the Gamma's own excess kurtosis 6/k̄_t."""
    p = GammaNoise(schedule, theta0=theta0, loss="l1")
    n, x0 = 100_000, -0.4
    for t in ts:
        fs = p.q_sample(torch.full((n, 1), x0, dtype=torch.float64), torch.full((n,), t), BatchRNG(t))
        ab, k = float(p.alpha_bar[t]), float(p.k_bar[t])
        d = (fs.x_t - ab**0.5 * x0).flatten().numpy()
        assert abs(d.mean()) < 5 * ((1 - ab) / n) ** 0.5
        assert d.var() == pytest.approx(1 - ab, rel=5 * ((6 / k + 2) / n) ** 0.5)


@pytest.mark.parametrize("theta0,t", [(0.001, 1), (0.1, 100), (0.1, 40), (0.1, 10)])
def test_skewness_matches_two_over_sqrt_k_bar(schedule, theta0, t):
    """The sample skewness of ε_t matches the declared 2/√k̄_t where it is measurable (≈ 0.2 to ≈ 5), and
    differs from the skewness at α_t-based k̄ or of Gaussian noise."""
    p = GammaNoise(schedule, theta0=theta0, loss="l1")
    expected = float(p.skewness(np.array([t]))[0])
    assert expected == pytest.approx(2 / np.sqrt(p.k_bar[t]))
    assert 0.15 < expected < 5
    e = eps_draws(p, t, 200_000, seed=11 * t)
    assert stats.skew(e) == pytest.approx(expected, abs=0.03 + 0.08 * expected)


def test_prior_sample_has_variance_one_minus_alpha_bar_T(schedule):
    """DDGM's start x_T = ḡ_T − k̄_T θ_T = √(1 − ᾱ_T)·ε_T has mean 0 and variance 1 − ᾱ_T (not 1)."""
    p = GammaNoise(schedule, theta0=0.5, loss="l1")
    n, T = 100_000, schedule.T
    x = p.prior_sample((n, 1, 1, 1), BatchRNG(3)).double().flatten().numpy()
    ab = float(p.alpha_bar[T])
    assert abs(x.mean()) < 5 * ((1 - ab) / n) ** 0.5
    assert x.var() == pytest.approx(1 - ab, rel=0.02)
    assert p.k_bar[T] == pytest.approx((1 - ab) / (ab * 0.25))


@pytest.mark.parametrize("t", [60, 144])
def test_skewed_forward_chain_reaches_the_marginal(schedule, t):
    """forward_step chained from a fixed x0 over t steps with θ0 = 0.5 (k̄_60 ≈ 0.1, k̄_144 ≈ 1: skewness
    ≈ 6 and ≈ 2) has the closed-form marginal: KS against the shifted Gamma and two-sample KS against
    q_sample. Using α_t in place of ᾱ_t in k_t, or any scale mismatch between steps, fails this."""
    p = GammaNoise(schedule, theta0=0.5, loss="l1")
    n, x0 = 20000, 0.5
    x = torch.full((n, 1), x0, dtype=torch.float64)
    rng = BatchRNG(21)
    for s in range(1, t + 1):
        x = p.forward_step(x, torch.full((n,), s), rng)
    assert x.dtype == torch.float64
    x = x.flatten().numpy()
    k, th, ab = float(p.k_bar[t]), float(p.theta[t]), float(p.alpha_bar[t])
    assert 2 / np.sqrt(k) > 1.5  # genuinely non-Gaussian
    dist = stats.gamma(a=k, loc=np.sqrt(ab) * x0 - k * th, scale=th)
    slack = 1e3 * EPS64 * (np.abs(x) + 1)  # t steps of rounding in the chain
    assert ks_pvalue(x, dist.cdf, slack) > 1e-3
    marginal = p.q_sample(torch.full((n, 1), x0, dtype=torch.float64), torch.full((n,), t), BatchRNG(22)).x_t
    assert stats.ks_2samp(x, marginal.flatten().numpy()).pvalue > 1e-3
    assert stats.skew(x) == pytest.approx(2 / np.sqrt(k), rel=0.2)


def test_loss_norms():
    """L1 (the paper's) and L2 losses are per-sample means over pixels; an unknown norm is rejected."""
    sch = Schedule(make_betas("linear", 10))
    eps, pred = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    pred[1] = -3.0
    assert torch.allclose(GammaNoise(sch, 0.1, "l1").loss(pred, eps), torch.tensor([1.0, 3.0, 1.0]))
    assert torch.allclose(GammaNoise(sch, 0.1, "l2").loss(pred, eps), torch.tensor([1.0, 9.0, 1.0]))
    with pytest.raises(ValueError, match="loss"):
        GammaNoise(sch, 0.1, "huber")
    with pytest.raises(ValueError, match="theta0"):
        GammaNoise(sch, 0.0, "l1")


@pytest.mark.parametrize("K,spacing", [(10, "uniform"), (7, "quad"), (50, "quad")])
def test_respaced_chain_k_bar_equals_k_bar_at_tau(schedule, K, spacing):
    """On a respaced chain k'_i = β'_i/(ᾱ'_i θ0²) summed over the chain is k̄ at τ_i exactly (the sum telescopes
    to (1/ᾱ'_i − 1)/θ0²), so the sampler's noise law at τ is the training law there."""
    p = GammaNoise(schedule, theta0=0.5, loss="l1")
    chain = schedule.chain(K, SPACINGS[spacing])
    k_prime = np.cumsum(chain.beta[1:].numpy() / (chain.alpha_bar[1:].numpy() * 0.5**2))
    np.testing.assert_allclose(k_prime, p.k_bar[chain.tau[1:].numpy()], rtol=1e-9)
