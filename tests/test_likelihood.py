import math

import numpy as np
import pytest
import torch
from scipy import stats

from diffsteps.likelihood import (bits_per_dim, discretized_gaussian_log_likelihood, gaussian_kl, ancestral_vlb,
                                   reverse_variance)
from diffsteps.noise.schedule import Schedule, make_betas
from diffsteps.rng import StackedRNG
from diffsteps.spacing import SPACINGS


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2, lv1, lv2 = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(4))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()),
                                            torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    assert torch.allclose(gaussian_kl(m1, lv1, m2, lv2), ref, rtol=1e-10)


@pytest.mark.parametrize("mean,log_scale", [(0.0, math.log(0.1)), (0.93, math.log(0.003)), (-1.2, 0.0)])
def test_discretized_gaussian_is_a_distribution_over_256_levels(mean, log_scale):
    grid = torch.linspace(-1, 1, 256, dtype=torch.float64)
    p = discretized_gaussian_log_likelihood(grid, torch.full_like(grid, mean), torch.full_like(grid, log_scale)).exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-9)
    # an interior bin against the normal CDF directly
    k = int(torch.argmin((grid - mean).abs()).clamp(1, 254))  # an interior bin where the mass is
    direct = stats.norm.cdf(float(grid[k]) + 1 / 255, mean, math.exp(log_scale)) - stats.norm.cdf(
        float(grid[k]) - 1 / 255, mean, math.exp(log_scale))
    assert float(p[k]) == pytest.approx(direct, rel=1e-6, abs=1e-300)


def test_bits_per_dim_conversion():
    assert float(bits_per_dim(torch.tensor(64 * math.log(2.0)), 64)) == pytest.approx(1.0)


def _optimal_denoiser(m, s2, ab_of_t):
    """E[ε | x_t] for x0 ~ N(m, s2): ε̂ = √(1−ᾱ)(x − √ᾱ m)/(ᾱ s2 + 1 − ᾱ)."""
    def denoise(x, t):
        ab = ab_of_t[t.long()].to(x.dtype).reshape(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * m) / (ab * s2 + 1 - ab)
    return denoise


@pytest.mark.parametrize("variance", ["betatilde", "beta"])
def test_vlb_of_gaussian_data_with_exact_optimal_denoiser(variance):
    """Prior and diffusion terms against their closed forms for x0 ~ N(m, s²), exact E[ε|x_t].

    With x̂0 = E[x0|x_i], μ̃ − μ_θ = c0 (x0 − E[x0|x_i]), so
    E[L_i] = ½(log(σ²/β̃') + β̃'/σ² − 1 + c0² Var(x0|x_i)/σ²),  Var(x0|x_i) = s²(1−ᾱ)/(ᾱ s² + 1 − ᾱ),
    E[L_prior] = ½(1 − ᾱ_K + ᾱ_K(m² + s²) − 1 − log(1 − ᾱ_K)).
    """
    m, s2, D, n = 0.1, 0.09, 4, 4000
    sched = Schedule(make_betas("linear", 1000))
    chain = sched.chain(8, SPACINGS["uniform"])
    g = torch.Generator().manual_seed(0)
    x0 = (m + s2**0.5 * torch.randn(n, 1, 2, 2, generator=g, dtype=torch.float64))
    terms = ancestral_vlb(_optimal_denoiser(m, s2, sched.alpha_bar), chain, x0, variance, StackedRNG(1, range(n)),
                          clip_x0=False)
    ab = chain.alpha_bar
    c0, _ = chain.posterior_coefs()
    var = reverse_variance(chain, variance)
    expected_diff = 0.0
    for i in range(2, chain.K + 1):
        bt, sig2 = float(chain.beta_tilde[i]), float(var[i])
        post = s2 * (1 - float(ab[i])) / (float(ab[i]) * s2 + 1 - float(ab[i]))
        expected_diff += 0.5 * (math.log(sig2 / bt) + bt / sig2 - 1 + float(c0[i]) ** 2 * post / sig2)
    abK = float(ab[-1])
    expected_prior = 0.5 * (1 - abK + abK * (m**2 + s2) - 1 - math.log(1 - abK))
    diff = terms.diffusion.numpy() / D
    se = diff.std(ddof=1) / math.sqrt(n)
    assert abs(diff.mean() - expected_diff) < 4 * se + 1e-9
    prior = terms.prior.numpy() / D
    assert abs(prior.mean() - expected_prior) < 4 * prior.std(ddof=1) / math.sqrt(n) + 1e-12
    assert np.all(np.isfinite(terms.recon.numpy()))


def test_vlb_decoder_term_against_direct_computation():
    """With a denoiser that returns x̂0 exactly at the first step, the decoder term is the discretised
    Gaussian centred on x0 with the stated variance."""
    sched = Schedule(make_betas("linear", 1000))
    chain = sched.chain(4, SPACINGS["uniform"])
    x0 = torch.tensor([-1.0, -1 + 2 * 100 / 255, 1.0], dtype=torch.float64).reshape(3, 1, 1, 1)
    ab = sched.alpha_bar

    def oracle(x, t):  # ε̂ that reproduces the true ε given x0 (the test knows x0)
        a = ab[t.long()].to(x.dtype).reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    terms = ancestral_vlb(oracle, chain, x0, "beta", StackedRNG(0, range(3)))
    sigma = float(chain.beta[1]) ** 0.5
    expected = -discretized_gaussian_log_likelihood(x0, x0, torch.full_like(x0, math.log(sigma)))
    assert torch.allclose(terms.recon, expected.flatten(), rtol=1e-3), (terms.recon - expected.flatten())  # float32 x_t
