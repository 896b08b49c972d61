import numpy as np
import pytest
import torch

from diffsteps.noise.schedule import Schedule, make_betas
from diffsteps.spacing import SPACINGS


@pytest.mark.parametrize("K", [2, 10, 100])
def test_respaced_chain_closed_form(K):
    s = Schedule(make_betas("linear", 1000))
    chain = s.chain(K, SPACINGS["uniform"])
    ab = s.alpha_bar
    # ᾱ'_i = ᾱ_{τ_i}, and β' telescopes back to ᾱ': ∏_{j≤i}(1 − β'_j) = ᾱ'_i
    assert torch.allclose(chain.alpha_bar[1:], ab[chain.tau[1:]])
    assert torch.allclose(torch.cumprod(1 - chain.beta[1:], 0), chain.alpha_bar[1:], rtol=1e-12)
    assert chain.beta[1] == pytest.approx(s.betas[0])  # τ_1 = 1: the decoder step is the original β_1


def test_full_chain_is_the_training_chain():
    s = Schedule(make_betas("linear", 1000))
    chain = s.chain(None)
    assert torch.allclose(chain.beta[1:], torch.from_numpy(s.betas), rtol=1e-9)


def test_linear_schedule_endpoints_and_cosine_range():
    b = make_betas("linear", 1000)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    c = make_betas("cosine", 1000)
    assert np.all((c > 0) & (c <= 0.999))
    with pytest.raises(ValueError, match="linear"):
        make_betas("sigmoid", 10)


def test_posterior_matches_gaussian_conditioning():
    """q(x_{i−1} | x_i, x_0) from the joint Gaussian of (x_{i−1}, x_i) given x_0 (scalar case)."""
    s = Schedule(make_betas("linear", 1000))
    chain = s.chain(10, SPACINGS["quad"])
    c0, ct = chain.posterior_coefs()
    for i in range(2, chain.K + 1):
        ab_p, ab = chain.alpha_bar[i - 1], chain.alpha_bar[i]
        a = ab / ab_p  # α'_i
        # x_{i−1} = √ᾱ_p x0 + √(1−ᾱ_p) e1; x_i = √a x_{i−1} + √(1−a) e2
        var_p, cov, var_i = 1 - ab_p, a.sqrt() * (1 - ab_p), 1 - ab
        gain = cov / var_i
        # mean = √ᾱ_p x0 + gain (x_i − √ᾱ x0) → coefficients of x0 and x_i
        assert float(ct[i]) == pytest.approx(float(gain), rel=1e-10)
        assert float(c0[i]) == pytest.approx(float(ab_p.sqrt() - gain * ab.sqrt()), rel=1e-8, abs=1e-12)
        assert float(chain.beta_tilde[i]) == pytest.approx(float(var_p - gain * cov), rel=1e-8)
