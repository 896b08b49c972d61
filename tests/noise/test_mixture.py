"""Statistical tests of the two-Gaussian mixture noise (arXiv 2106.07582) against its closed forms.

ε = b·N(m1, φ_t²) + (1 − b)·N(m2, φ_t²), b ~ Bernoulli(p), m1 = √((1 − φ²)(1 − p)/p), m2 = −p·m1/(1 − p),
φ_t linear from φ_1 to φ_T. The expected laws below are recomputed from these formulas, not read from the
process's attributes.
"""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from diffsteps.families.mixture import PhiSchedule
from diffsteps.noise.schedule import Schedule, make_betas
from diffsteps.noise.mixture import MixtureNoise
from diffsteps.methods import method_class
from diffsteps.spacing import SPACINGS
from diffsteps.rng import BatchRNG, StackedRNG

T = 1000


@pytest.fixture(scope="module")
def schedule():
    return Schedule(make_betas("linear", T))


def phi_at(phi, t):
    """φ_t of a constant or a (start, end) schedule, linear over t = 1..T."""
    start, end = (phi, phi) if isinstance(phi, float) else (phi.start, phi.end)
    return start + (end - start) * (np.asarray(t, dtype=np.float64) - 1) / (T - 1)


def means(p, phi):
    m1 = np.sqrt((1 - phi**2) * (1 - p) / p)
    return m1, -p * m1 / (1 - p)


def mixture_cdf(p, phi):
    """CDF p·Φ((x − m1)/φ) + (1 − p)·Φ((x − m2)/φ); phi may be an array aligned with x."""
    m1, m2 = means(p, phi)
    return lambda x: p * stats.norm.cdf((x - m1) / phi) + (1 - p) * stats.norm.cdf((x - m2) / phi)


def excess_kurtosis(p, phi):
    """E[ε⁴] − 3 from E[(m + φz)⁴] = m⁴ + 6m²φ² + 3φ⁴."""
    m1, m2 = means(p, phi)
    m4 = lambda m: m**4 + 6 * m**2 * phi**2 + 3 * phi**4  # noqa: E731
    return p * m4(m1) + (1 - p) * m4(m2) - 3


def eps_draws(process, t, n, seed, dtype=torch.float64):
    return process.sample_noise((n, 1), torch.full((n,), t), BatchRNG(seed), dtype=dtype).flatten().numpy()


def test_attributes_follow_the_closed_forms(schedule):
    """φ_t is linear from φ_1 = start to φ_T = end (index 0 unused), and m1, m2 give zero mean and unit variance."""
    p, phi = 0.3, PhiSchedule(0.2, 0.8)
    proc = MixtureNoise(schedule, p=p, phi=phi)
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(proc.phi[1:], phi_at(phi, t), rtol=1e-12)
    m1, m2 = means(p, phi_at(phi, t))
    np.testing.assert_allclose(proc.m1[1:], m1, rtol=1e-12)
    np.testing.assert_allclose(proc.m2[1:], m2, rtol=1e-12)
    np.testing.assert_allclose(p * m1 + (1 - p) * m2, 0, atol=1e-12)
    np.testing.assert_allclose(p * m1**2 + (1 - p) * m2**2 + phi_at(phi, t) ** 2, 1, rtol=1e-12)
    for bad in (dict(p=0.0), dict(p=1.0), dict(phi=1.0), dict(phi=PhiSchedule(0.5, 0.0))):
        with pytest.raises(ValueError):
            MixtureNoise(schedule, **{"p": 0.5, "phi": 0.5, **bad})


@pytest.mark.parametrize("p,phi,t", [(0.5, 0.5, 1), (0.5, 0.5, 1000), (0.3, PhiSchedule(0.2, 0.8), 1),
                                     (0.3, PhiSchedule(0.2, 0.8), 500), (0.3, PhiSchedule(0.2, 0.8), 1000),
                                     (0.8, 0.3, 250)])
def test_eps_ks_against_mixture_cdf(schedule, p, phi, t):
    """ε_t (float64) follows the mixture CDF with φ_t from the schedule; under a schedule, the law at φ_1 is
    rejected at t = T (the schedule really acts), and where the components are apart the law with p = 0.5 is
    rejected, which shows the test's power."""
    proc = MixtureNoise(schedule, p=p, phi=phi)
    e = eps_draws(proc, t, 20000, seed=t)
    assert stats.kstest(e, mixture_cdf(p, phi_at(phi, t))).pvalue > 1e-3
    if not isinstance(phi, float) and t == T:
        assert stats.kstest(e, mixture_cdf(p, phi_at(phi, 1))).pvalue < 1e-6
    if p != 0.5 and phi_at(phi, t) < 0.5:  # where the components are apart, p = 0.5 is rejected
        assert stats.kstest(e, mixture_cdf(0.5, phi_at(phi, t))).pvalue < 1e-6


@pytest.mark.parametrize("t", [1, 300, 1000])
def test_q_sample_x_t_ks(schedule, t):
    """x_t from q_sample with float64 x0 follows √ᾱ_t x0 + √(1 − ᾱ_t)·mixture (a location-scale mixture CDF)."""
    p, phi = 0.3, PhiSchedule(0.4, 0.6)
    proc = MixtureNoise(schedule, p=p, phi=phi)
    n, x0 = 20000, 0.7
    fs = proc.q_sample(torch.full((n, 1, 1, 1), x0, dtype=torch.float64), torch.full((n,), t), BatchRNG(50 + t))
    assert fs.x_t.dtype == torch.float64
    ab = float(proc.alpha_bar[t])
    z = (fs.x_t.flatten().numpy() - ab**0.5 * x0) / (1 - ab) ** 0.5
    assert stats.kstest(z, mixture_cdf(p, phi_at(phi, t))).pvalue > 1e-3


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_mean_zero_and_variance_one_minus_alpha_bar(schedule, p):
    """x_t − √ᾱ_t x0 has mean 0 and variance 1 − ᾱ_t for several p and t (five standard errors, from the
    mixture's own fourth moment)."""
    phi = PhiSchedule(0.3, 0.7)
    proc = MixtureNoise(schedule, p=p, phi=phi)
    n, x0 = 50_000, 0.25
    for t in (1, 100, 1000):
        fs = proc.q_sample(torch.full((n, 1), x0, dtype=torch.float64), torch.full((n,), t), BatchRNG(t))
        ab = float(proc.alpha_bar[t])
        d = (fs.x_t - ab**0.5 * x0).flatten().numpy()
        assert abs(d.mean()) < 5 * ((1 - ab) / n) ** 0.5
        assert d.var() == pytest.approx(1 - ab, rel=5 * ((excess_kurtosis(p, phi_at(phi, t)) + 2) / n) ** 0.5)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_p_sets_the_component_weights(schedule, p):
    """With well-separated components (φ = 0.05) the fraction of draws above (m1 + m2)/2 is p, so p ≠ 0.5
    really moves weight between the modes; the sample skewness matches p·m1³ + (1 − p)·m2³ (positive for
    p < 0.5, zero at 0.5, negative above)."""
    phi, n, t = 0.05, 50_000, 200
    proc = MixtureNoise(schedule, p=p, phi=phi)
    e = eps_draws(proc, t, n, seed=int(100 * p))
    m1, m2 = means(p, phi)
    assert (m1 - m2) / 2 > 8 * phi  # the midpoint lies far in both tails
    assert (e > (m1 + m2) / 2).mean() == pytest.approx(p, abs=5 * (p * (1 - p) / n) ** 0.5)
    skew = p * m1**3 + (1 - p) * m2**3
    assert float(proc.skewness(np.array([t]))[0]) == pytest.approx(skew, abs=1e-12)
    assert stats.skew(e) == pytest.approx(skew, abs=0.05 + 0.05 * abs(skew))
    assert np.sign(skew) == np.sign(round(0.5 - p, 6))


def test_markov_chain_drifts_to_gaussian_so_markov_forward_is_false(schedule):
    """Why markov_forward is False: chaining one-step mixture noise for 300 steps (float64) gives the right
    variance 1 − ᾱ_t but an excess kurtosis near 0 (the predicted Σw⁴·κ/(Σw²)² ≈ −0.004), while the marginal's
    stays at its closed form m⁴ + 6m²φ² + 3φ⁴ − 3 = −1.125 (p = φ = 0.5), matched by its samples; the two laws
    differ by a two-sample KS test."""
    p, phi = 0.5, 0.5
    proc = MixtureNoise(schedule, p=p, phi=phi)
    assert proc.markov_forward is False
    n, t, x0 = 20000, 300, 0.3
    x = torch.full((n, 1), x0, dtype=torch.float64)
    rng = BatchRNG(4)
    for s in range(1, t + 1):
        x = proc.forward_step(x, torch.full((n,), s), rng)
    ab = proc.alpha_bar.numpy()
    chain = (x.flatten().numpy() - ab[t] ** 0.5 * x0)
    marginal = eps_draws(proc, t, n, seed=5) * (1 - ab[t]) ** 0.5

    kappa = excess_kurtosis(p, phi)
    assert kappa == pytest.approx(-1.125)
    # x_t − √ᾱ_t x0 = Σ_s w_s ε_s with w_s = √β_s √(ᾱ_t/ᾱ_s): cumulants add, κ4 scales as w⁴
    w2 = schedule.betas[:t] * ab[t] / ab[1 : t + 1]
    chain_kappa = kappa * (w2**2).sum() / w2.sum() ** 2
    assert abs(chain_kappa) < 0.01
    se = (24 / n) ** 0.5  # standard error of the sample excess kurtosis near a Gaussian
    assert stats.kurtosis(chain) == pytest.approx(chain_kappa, abs=5 * se)
    assert stats.kurtosis(marginal) == pytest.approx(kappa, abs=0.05)
    assert chain.var() == pytest.approx(1 - ab[t], rel=0.05)
    assert stats.ks_2samp(chain, marginal).pvalue < 1e-6
    assert stats.kstest(chain / (1 - ab[t]) ** 0.5, "norm").pvalue > 1e-3


def test_config_p_and_phi_are_used_in_training_and_sampling(smoke_cfg):
    """The method built from the smoke config (mixture: p = 0.3, φ 0.4 → 0.6) draws the training noise (through
    its objective) and the sampling noise (reverse_noise at τ_{i−1} and the prior at T) from one mixture with
    the configured p and φ_t: KS / probability-integral-transform tests against the configured law, and a
    rejection of the default p = φ = 0.5 to show the tests can fail."""
    opts = smoke_cfg.method_config["mixture"]
    p, phi = opts.p, opts.phi
    assert (p, phi.start, phi.end) == (0.3, 0.4, 0.6)
    cfg = dataclasses.replace(smoke_cfg, model=dataclasses.replace(smoke_cfg.model, channels=8))
    method = method_class(cfg, "mixture")(cfg, "mixture", (1, 8, 8))
    proc = method.process
    assert proc.p == p and proc.phi[1] == phi.start and proc.phi[T] == pytest.approx(phi.end)

    # sampling: the noise injected at every stochastic step and the start x_T
    n = 400
    chain = proc.schedule.chain(max(cfg.sampling.budgets), SPACINGS["uniform"])
    for i in range(2, chain.K + 1):
        tau = int(chain.tau[i - 1])
        z = proc.reverse_noise((n, 1, 8, 8), chain, i, StackedRNG(i, range(n))).double().flatten().numpy()
        assert stats.kstest(z, mixture_cdf(p, phi_at(phi, tau))).pvalue > 1e-3, f"step {i} (τ = {tau})"
    x_T = proc.prior_sample((n, 1, 8, 8), StackedRNG(0, range(n))).double().flatten().numpy()
    assert stats.kstest(x_T, mixture_cdf(p, phi_at(phi, T))).pvalue > 1e-3
    assert stats.kstest(x_T, mixture_cdf(0.5, 0.5)).pvalue < 1e-6

    # training: a model that records its input recovers ε_t = x_t/√(1 − ᾱ_t) from x0 = 0
    seen = {}

    def model(x_t, t):
        seen["x_t"], seen["t"] = x_t.double(), t.long()
        return torch.zeros_like(x_t)

    objective = method.objective()
    assert objective.process is proc  # one process object serves both
    loss = objective(model, torch.zeros(2000, 1, 8, 8), BatchRNG(9))
    t = seen["t"]
    ab = proc.alpha_bar[t].reshape(-1, 1, 1, 1)
    eps = seen["x_t"] / (1 - ab).sqrt()
    # ‖ε − 0‖² per sample (ε is recovered to ~1e-4: q_sample forms 1 − ᾱ_t in float32 for float32 x0)
    assert torch.allclose(loss.double(), eps.pow(2).flatten(1).mean(1), rtol=5e-3)
    assert t.min() >= 1 and t.max() <= T and len(torch.unique(t)) > 500
    t_pix = t.reshape(-1, 1).expand(-1, 64).flatten().numpy()
    e = eps.flatten().numpy()
    pit = mixture_cdf(p, phi_at(phi, t_pix))(e)  # uniform exactly when each ε follows the mixture at its own t
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    assert stats.kstest(mixture_cdf(0.5, 0.5)(e), "uniform").pvalue < 1e-6
