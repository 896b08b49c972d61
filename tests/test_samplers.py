import pytest
import torch

from diffsteps.config import SamplerSpec
from diffsteps.noise import GaussianNoise, Schedule, make_betas
from diffsteps.rng import StackedRNG
from diffsteps.samplers import ddim_sigma, sample


@pytest.fixture(scope="module")
def process():
    return GaussianNoise(Schedule(make_betas("linear", 1000)))


def toy_denoiser(x, t):
    """A fixed, smooth, time-dependent ε̂ (no training needed to exercise the update algebra)."""
    return torch.tanh(0.5 * x) * (t / 1000.0).reshape(-1, 1, 1, 1) + 0.1 * torch.sin(x)


SHAPE = (6, 1, 4, 4)


def run(process, name, K, spacing="uniform", seed=0, clip=True, x_T=None):
    chain = process.schedule.chain(K, spacing)
    return sample(toy_denoiser, process, chain, SamplerSpec.parse(name), SHAPE, StackedRNG(seed, range(SHAPE[0])),
                  clip_x0=clip, x_T=x_T)


@pytest.mark.parametrize("K,spacing", [(10, "uniform"), (7, "quad"), (1000, "uniform")])
def test_ddim_eta1_equals_ancestral_betatilde(process, K, spacing):
    a = run(process, "ddim-eta1", K, spacing)
    b = run(process, "ancestral-betatilde", K, spacing)
    assert torch.allclose(a.x0, b.x0, atol=1e-5)


def test_ddim_eta1_sigma_is_posterior_std(process):
    chain = process.schedule.chain(20, "uniform")
    for i in range(2, chain.K + 1):
        assert ddim_sigma(chain, i, 1.0) ** 2 == pytest.approx(float(chain.beta_tilde[i]), rel=1e-10)


def test_ddim_eta0_is_deterministic_given_x_T(process):
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    a = run(process, "ddim-eta0", 10, seed=0, x_T=x_T)
    b = run(process, "ddim-eta0", 10, seed=99, x_T=x_T)
    assert torch.equal(a.x0, b.x0)
    c = run(process, "ancestral-beta", 10, seed=99, x_T=x_T)
    assert not torch.allclose(a.x0, c.x0)


def test_nfe_equals_budget_and_same_start_across_budgets(process):
    for K in (2, 5, 17):
        assert run(process, "ancestral-beta", K).nfe == K
    # one seed per sample: x_T does not depend on the budget or on the batch composition
    from diffsteps.rng import StackedRNG as S

    a = process.prior_sample(SHAPE, S(0, range(6)))
    b = process.prior_sample((3, 1, 4, 4), S(0, range(3, 6)))
    assert torch.equal(a[3:], b)


def test_large_variance_never_uses_the_ddim_form(process):
    """σ² = β' exceeds 1 − ᾱ'_{i−1} on short chains, so the DDIM form would need √(negative)."""
    chain = process.schedule.chain(5, "uniform")
    assert any(float(chain.beta[i]) > 1 - float(chain.alpha_bar[i - 1]) for i in range(2, 6))
    out = run(process, "ancestral-beta", 5)
    assert torch.isfinite(out.x0).all()


def test_clipping_bounds_the_output(process):
    assert run(process, "ancestral-beta", 10, clip=True).x0.abs().max() <= 1 + 1e-6
