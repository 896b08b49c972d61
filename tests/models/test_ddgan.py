"""DDGAN's players and losses: the forward pair's law, R1 against finite differences, a generator that
depends on its latent, a time-dependent discriminator, the adversarial objective's terms."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from diffsteps.models.ddgan import DDGANGenerator, Discriminator, DiscriminatorSpec, minibatch_stddev
from diffsteps.models.unet import UNet, UNetSpec
from diffsteps.noise.gaussian import GaussianNoise
from diffsteps.noise.schedule import Schedule, vp_sde_betas
from diffsteps.objectives import AdversarialObjective, forward_pair, r1_penalty
from diffsteps.rng import BatchRNG

SPEC = UNetSpec(image_size=4, in_channels=1, out_channels=1, channels=8, channel_mult=(1, 2), num_res_blocks=1,
                attn_resolutions=(), dropout=0.0, num_heads=1, latent_dim=4)
D_SPEC = DiscriminatorSpec(image_size=4, in_channels=1, channels=8, channel_mult=(1, 2))


def process(T=4):
    return GaussianNoise(Schedule(vp_sde_betas(T)))


@pytest.mark.parametrize("t", [1, 3])
def test_forward_pair_has_the_chain_law(t):
    """x_{t−1} ~ N(√ᾱ_{t−1} x_0, 1 − ᾱ_{t−1}) (x_0 itself at t = 1) and x_t − √α_t x_{t−1} ~ N(0, β_t), independent."""
    n, x0 = 20000, 0.6
    p = process()
    prev, cur = forward_pair(p, torch.full((n, 1), x0, dtype=torch.float64), torch.full((n,), t), BatchRNG(t))
    ab, beta = float(p.alpha_bar[t - 1]), float(p.schedule.betas[t - 1])
    prev, cur = prev.flatten().numpy(), cur.flatten().numpy()
    if t == 1:
        assert np.all(prev == x0)
    else:
        assert stats.kstest((prev - math.sqrt(ab) * x0) / math.sqrt(1 - ab), "norm").pvalue > 1e-3
    step = cur - math.sqrt(1 - beta) * prev
    assert stats.kstest(step / math.sqrt(beta), "norm").pvalue > 1e-3
    if t > 1:
        assert abs(np.corrcoef(step, prev)[0, 1]) < 4 / math.sqrt(n)


def test_r1_penalty_matches_finite_differences():
    torch.manual_seed(0)
    D = Discriminator(D_SPEC).double()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    x_t, t = torch.randn(3, 1, 4, 4, dtype=torch.float64), torch.tensor([1.0, 2.0, 3.0])
    r1 = r1_penalty(D(x, x_t, t), x)
    h, grad = 1e-6, torch.zeros_like(x)
    with torch.no_grad():
        for idx in np.ndindex(*x.shape):
            up, down = x.detach().clone(), x.detach().clone()
            up[idx] += h
            down[idx] -= h
            grad[idx] = (D(up, x_t, t).sum() - D(down, x_t, t).sum()) / (2 * h)
    torch.testing.assert_close(r1.detach(), grad.pow(2).flatten(1).sum(1), rtol=1e-5, atol=1e-9)
    r1.sum().backward()  # the penalty trains D: it is differentiable with respect to D's weights
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())


def _wake(net):
    """Give the zero-initialised layers (each ResBlock's last conv, the head) weights, as training does:
    at initialisation every residual branch, and with it the AdaGN path of z, is switched off."""
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1 and not p.any():
                p.normal_(0, 0.1)


def test_generator_output_depends_on_the_latent():
    torch.manual_seed(0)
    G = DDGANGenerator(SPEC)
    x_t, t = torch.randn(1, 1, 4, 4).repeat(2, 1, 1, 1), torch.full((2,), 3.0)
    z = torch.randn(2, SPEC.latent_dim)
    assert torch.all(G(x_t, t, z) == 0)  # untrained: the zero-initialised head gives tanh(0)
    _wake(G)
    out = G(x_t, t, z)
    assert (out[0] - out[1]).abs().mean() > 1e-3  # same x_t and t, different z: different x̂_0
    torch.testing.assert_close(G(x_t, t, z[:1].repeat(2, 1))[0], G(x_t, t, z[:1].repeat(2, 1))[1])
    assert torch.all(out.abs() < 1)


def test_latent_is_required_exactly_when_the_unet_has_one():
    with pytest.raises(ValueError, match="latent z must be given"):
        UNet(SPEC)(torch.zeros(1, 1, 4, 4), torch.ones(1))
    plain = UNetSpec(**{**SPEC.__dict__, "latent_dim": 0})
    with pytest.raises(ValueError, match="latent z must be given"):
        UNet(plain)(torch.zeros(1, 1, 4, 4), torch.ones(1), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="needs a latent"):
        DDGANGenerator(plain)


def test_discriminator_reads_the_pair_and_the_time():
    torch.manual_seed(0)
    D = Discriminator(D_SPEC)
    x, x_t = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    out = D(x, x_t, torch.full((4,), 1.0))
    assert out.shape == (4,)
    assert not torch.allclose(out, D(x, x_t, torch.full((4,), 4.0)))
    assert not torch.allclose(out, D(x, torch.randn(4, 1, 4, 4), torch.full((4,), 1.0)))


@pytest.mark.parametrize("B", [1, 3, 6, 8])
def test_minibatch_stddev_sees_a_collapsed_batch(B):
    same = torch.randn(1, 2, 3, 3).repeat(B, 1, 1, 1)
    assert minibatch_stddev(same).shape == (B, 3, 3, 3) and torch.all(minibatch_stddev(same)[:, -1] < 1e-3)
    if B > 1:
        assert torch.all(minibatch_stddev(torch.randn(B, 2, 3, 3))[:, -1] > 0.1)


def test_adversarial_objective_terms():
    torch.manual_seed(0)
    G, D = DDGANGenerator(SPEC), Discriminator(D_SPEC)
    _wake(G)
    x0 = torch.rand(6, 1, 4, 4) * 2 - 1
    objective = AdversarialObjective(process(2), SPEC.latent_dim, r1_gamma=0.5, lazy_reg=3)
    reg = objective.discriminator_loss(D, G, x0, BatchRNG(0), regularise=True)
    plain = objective.discriminator_loss(D, G, x0, BatchRNG(0), regularise=False)
    for terms in (reg, plain):
        assert all(v.shape == (6,) and torch.isfinite(v).all() for v in (terms.real, terms.fake, terms.r1, terms.accuracy))
        assert torch.all(terms.real > 0) and torch.all(terms.fake > 0)
        assert set(terms.accuracy.tolist()) <= {0.0, 0.5, 1.0}
    assert torch.all(reg.r1 > 0) and torch.all(plain.r1 == 0)
    torch.testing.assert_close(reg.real, plain.real)  # the same draws: only the penalty differs
    assert not any(p.grad is not None for p in G.parameters())  # D's step leaves G untouched
    D.requires_grad_(False)
    objective.generator_loss(D, G, x0, BatchRNG(1)).mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    assert all(p.grad is None for p in D.parameters())
