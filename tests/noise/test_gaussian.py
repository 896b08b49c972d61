import pytest
import torch
from scipy import stats

from diffsteps.noise.gaussian import GaussianNoise
from diffsteps.noise.schedule import Schedule, make_betas
from diffsteps.rng import BatchRNG


@pytest.fixture(scope="module")
def process():
    return GaussianNoise(Schedule(make_betas("linear", 1000)))


@pytest.mark.parametrize("t", [1, 10, 500, 1000])
def test_forward_marginal_ks(process, t):
    """x_t | x0 ~ N(√ᾱ_t x0, 1 − ᾱ_t): KS test in float64, plus mean and variance."""
    n, x0 = 20000, 0.7
    fs = process.q_sample(torch.full((n, 1, 1, 1), x0, dtype=torch.float64), torch.full((n,), t), BatchRNG(t))
    ab = float(process.alpha_bar[t])
    x = fs.x_t.flatten().numpy()
    assert stats.kstest(x, "norm", args=(ab**0.5 * x0, (1 - ab) ** 0.5)).pvalue > 1e-3
    assert x.mean() == pytest.approx(ab**0.5 * x0, abs=5 * ((1 - ab) / n) ** 0.5)
    assert x.var() == pytest.approx(1 - ab, rel=0.05)


def test_markov_chain_reaches_the_marginal(process):
    """Chaining q(x_t | x_{t−1}) from x0 gives the closed-form marginal at t (KS test)."""
    n, t, x0 = 20000, 60, -0.3
    x = torch.full((n, 1, 1, 1), x0, dtype=torch.float64)
    rng = BatchRNG(3)
    for s in range(1, t + 1):
        x = process.forward_step(x, torch.full((n,), s), rng)
    ab = float(process.alpha_bar[t])
    assert stats.kstest(x.flatten().numpy(), "norm", args=(ab**0.5 * x0, (1 - ab) ** 0.5)).pvalue > 1e-3


def test_loss_is_per_sample_squared_error(process):
    eps, pred = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    pred[1] = 3.0
    assert torch.allclose(process.loss(pred, eps), torch.tensor([1.0, 9.0, 1.0]))
