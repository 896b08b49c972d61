"""VDM's continuous-time log-SNR schedules (arXiv 2107.00630): γ(t) = γ_0 + (γ_1 − γ_0)·ĝ(t).

Checked against closed forms: monotonicity and endpoints for arbitrary parameters, γ' against finite
differences, the variance-gradient routing against autograd of mean(L²), the effect of the variance
objective on a fixed denoiser (the interior moves, the bound does not, the estimator's variance falls),
and the discrete chains of a schedule against VDM's own ancestral update.
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from torch import nn

import diffsteps.likelihood as nll
from diffsteps.likelihood import bits_per_dim, vdm_bound
from diffsteps.models.unet import UNetSpec
from diffsteps.models.vdm import VDMNetwork
from diffsteps.noise.logsnr import (GAMMA_MAX, GAMMA_MIN, SCHEDULES, ContinuousGaussian, FixedLinear, LearnedLinear,
                                    MonotoneNet, VarianceGradient, alpha_sigma, build_schedule, grid_times)
from diffsteps.objectives import VDMObjective
from diffsteps.rng import BatchRNG
from diffsteps.noise.reverse import ancestral_step, predict_x0
from diffsteps.spacing import SPACINGS

from ..vdm_helpers import GaussianDenoiser

INTERIOR = ("raw_w", "raw_a", "raw_b", "c")
ENDPOINTS = ("gamma_0", "raw_range")


def perturbed(kind: str, seed: int, std: float = 3.0, endpoints: bool = True):
    """A schedule of ``kind`` with every parameter (or only the interior's) redrawn from N(0, std²)."""
    torch.manual_seed(seed)
    s = build_schedule(kind)
    with torch.no_grad():
        for name, p in s.named_parameters():
            if endpoints or name not in ENDPOINTS:
                nn.init.normal_(p, std=std)
    return s


def curved(seed: int) -> MonotoneNet:
    """A MonotoneNet with a strongly non-linear interior: a steep sigmoid bump around t ≈ 0.4 on a small linear
    part (w ≈ 0.05). Redrawing every parameter at random gives an almost linear ĝ instead (|ĝ(t) − t| ≲ 0.02:
    the mean over 64 hidden units averages the bumps out)."""
    s = MonotoneNet()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        s.raw_w.fill_(-3.0)
        s.raw_a.copy_(0.5 + 0.5 * torch.randn(64, generator=g))
        s.raw_b.copy_(15.0 + 3.0 * torch.randn(64, generator=g))
        s.c.copy_(0.4 + 0.15 * torch.randn(64, generator=g))
    return s


def small_vdm(schedule, seed: int = 0, std: float = 0.05) -> VDMNetwork:
    """A tiny VDMNetwork whose zero-initialised convolutions (output head, each ResBlock's second conv,
    the attention projection) are filled with small random weights, so that ε̂ is non-zero and depends on
    γ_t through the time embedding (with them at zero the network outputs ε̂ ≡ 0)."""
    torch.manual_seed(seed)
    spec = UNetSpec(image_size=8, in_channels=1, out_channels=1, channels=8, channel_mult=(1,), num_res_blocks=1,
                    attn_resolutions=(), dropout=0.0, num_heads=1)
    net = VDMNetwork(spec, schedule, fourier_min=6, fourier_max=7)
    with torch.no_grad():
        for p in net.unet.parameters():
            if not p.any():
                nn.init.normal_(p, std=std)
    return net.eval()


def grid_data(n: int, shape, seed: int) -> torch.Tensor:
    """n images on the 256-level grid of [−1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g).float() / 127.5 - 1.0


# --- γ(t): monotone, endpoints, slope ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
@pytest.mark.parametrize("seed", range(5))
def test_gamma_strictly_increasing_with_exact_endpoints_for_random_parameters(kind, seed):
    """For any parameter values (all redrawn from N(0, 3²)), γ is strictly increasing on a dense grid of [0, 1],
    γ(0) = γ_0 and γ(1) = γ_1 as given by ``endpoints()``, γ_1 > γ_0, and ĝ(0) = 0, ĝ(1) = 1."""
    s = perturbed(kind, seed)
    t = torch.linspace(0, 1, 2001)
    with torch.no_grad():
        g, shape = s(t), s.shape(t)
        g0, g1 = (float(v) for v in s.endpoints())
    assert g1 > g0
    assert bool((g.diff() > 0).all()), f"γ not strictly increasing: min step {float(g.diff().min())}"
    assert bool((shape.diff() > 0).all())
    assert float(g[0]) == pytest.approx(g0, abs=1e-5)
    assert float(g[-1]) == pytest.approx(g1, abs=1e-5 * max(1.0, abs(g1)))
    assert float(shape[0]) == pytest.approx(0.0, abs=1e-6) and float(shape[-1]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_curved_interior_is_monotone_and_far_from_linear(seed):
    """The strongly curved MonotoneNet used below: strictly increasing, exact endpoints, and |ĝ(t) − t| > 0.2
    somewhere (so the tests that use it see a genuinely non-linear schedule)."""
    s = curved(seed)
    t = torch.linspace(0, 1, 2001)
    with torch.no_grad():
        g, shape = s(t), s.shape(t)
        g0, g1 = (float(v) for v in s.endpoints())
    assert bool((g.diff() > 0).all()) and bool((shape.diff() > 0).all())
    assert float(g[0]) == pytest.approx(g0, abs=1e-5) and float(g[-1]) == pytest.approx(g1, abs=1e-5)
    assert float((shape - t).abs().max()) > 0.2


@pytest.mark.parametrize("kind", sorted(SCHEDULES) + ["curved"])
@pytest.mark.parametrize("seed", range(4))
def test_slope_matches_central_difference(kind, seed):
    """γ'(t) from ``evaluate`` (autograd) matches the central difference (γ(t+h) − γ(t−h))/2h, h = 1e-3, in
    float32, for random parameters and for the strongly curved interior; for the linear schedules it equals
    γ_1 − γ_0 exactly. Both with and without grad mode."""
    s = curved(seed) if kind == "curved" else perturbed(kind, seed, std=2.0)
    t = torch.linspace(0.01, 0.99, 197)
    h = 1e-3
    with torch.no_grad():
        fd = (s(t + h) - s(t - h)) / (2 * h)
        slope_nograd = s.evaluate(t).slope
    at = s.evaluate(t)
    assert at.slope.shape == t.shape and slope_nograd.shape == t.shape
    assert torch.allclose(at.slope.detach(), slope_nograd)
    assert torch.allclose(slope_nograd, fd, rtol=1e-2, atol=1e-4 * float(fd.abs().max()))
    assert bool((slope_nograd > 0).all())
    if kind in ("fixed_linear", "learned_linear"):
        g0, g1 = s.endpoints()
        assert torch.equal(slope_nograd, (g1 - g0).detach().expand_as(t))


def test_slope_fd_check_has_power():
    """Control: a slope off by 5% would be rejected by the finite-difference tolerance used above."""
    s = curved(0)
    t = torch.linspace(0.01, 0.99, 197)
    with torch.no_grad():
        fd = (s(t + 1e-3) - s(t - 1e-3)) / 2e-3
        slope = s.evaluate(t).slope
    assert not torch.allclose(1.05 * slope, fd, rtol=1e-2, atol=1e-4 * float(fd.abs().max()))


def test_parameters_and_initial_endpoints():
    """FixedLinear has no parameters; LearnedLinear's parameters are exactly the endpoints; MonotoneNet adds the
    interior; every schedule starts at γ_0 = −13.3, γ_1 = 5.0 (VDM's initial SNR range)."""
    assert (GAMMA_MIN, GAMMA_MAX) == (-13.3, 5.0)
    assert list(FixedLinear().parameters()) == []
    assert sorted(n for n, _ in LearnedLinear().named_parameters()) == sorted(ENDPOINTS)
    assert sorted(n for n, _ in MonotoneNet().named_parameters()) == sorted(ENDPOINTS + INTERIOR)
    for kind in SCHEDULES:
        g0, g1 = build_schedule(kind).endpoints()
        g0, g1 = float(g0.detach()), float(g1.detach())
        assert g0 == pytest.approx(-13.3, abs=1e-6) and g1 == pytest.approx(5.0, abs=1e-5)
    with pytest.raises(ValueError):
        build_schedule("cosine")
    with pytest.raises(ValueError):
        FixedLinear(1.0, -1.0)


def test_initial_monotone_net_is_close_to_linear_and_alpha_sigma_is_variance_preserving():
    """The monotone net starts near VDM's linear schedule (|ĝ(t) − t| small), and α² + σ² = 1 with
    σ² = sigmoid(γ), SNR = α²/σ² = e^{−γ}."""
    t = torch.linspace(0, 1, 101)
    with torch.no_grad():
        shape = MonotoneNet().shape(t)
    assert float((shape - t).abs().max()) < 0.05
    gamma = torch.linspace(-13.3, 5.0, 50, dtype=torch.float64)
    a, s = alpha_sigma(gamma)
    assert torch.allclose(a**2 + s**2, torch.ones_like(gamma), rtol=1e-14)
    assert torch.allclose(a**2 / s**2, torch.exp(-gamma), rtol=1e-10)


# --- the variance objective ---------------------------------------------------------------------------------------


def _grads(net, loss, names):
    net.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in net.named_parameters() if n in names}


def test_variance_gradient_routes_interior_to_grad_of_mean_squared_loss():
    """One backward of mean(L_total) with the router gives the interior parameters (raw_w, raw_a, raw_b, c) the
    gradient of mean(L_diff²) (L in bits/dim), and every other parameter (endpoints, UNet) the gradient of the
    plain bound, each compared with a separate autograd computation without the router."""
    net = small_vdm(curved(1), seed=1)
    B, D = 8, 64
    x = grid_data(B, (1, 8, 8), seed=2)
    g = torch.Generator().manual_seed(3)
    u = (torch.rand(1, generator=g) + torch.arange(B) / B) % 1.0
    eps = torch.randn(x.shape, generator=g)
    interior = {f"gamma.{n}" for n in INTERIOR}
    others = {f"gamma.{n}" for n in ENDPOINTS} | {"unet.head.2.weight", "unet.stem.weight", "unet.time_mlp.0.weight"}

    router = VarianceGradient()
    terms = vdm_bound(net, x, u, eps, router=router)
    router.set_loss(bits_per_dim(terms.diffusion, D))
    routed = _grads(net, bits_per_dim(terms.total, D).mean(), interior | others)

    plain_terms = vdm_bound(net, x, u, eps)
    assert torch.equal(plain_terms.total.detach(), terms.total.detach())  # the router changes gradients only
    var_grads = _grads(net, (bits_per_dim(plain_terms.diffusion, D) ** 2).mean(), interior)
    bound_grads = _grads(net, bits_per_dim(vdm_bound(net, x, u, eps).total, D).mean(), interior | others)

    # float32 noise: the scalar raw_w's gradient is a sum of per-sample terms of size ~0.1 that cancel to ~7e-3
    # and moves by ~6e-5 between float32 and float64 terms; so the tolerance is set by the largest interior gradient
    scale = max(float(g.abs().max()) for g in var_grads.values())
    for n in interior:
        ref = var_grads[n]
        assert float(ref.abs().max()) > 0
        assert torch.allclose(routed[n], ref, rtol=1e-3, atol=1e-4 * scale), n
        # not trivially equal: the bound's own gradient on the interior is far from it
        assert float((bound_grads[n] - ref).norm()) > 0.5 * float(ref.norm()), n
    for n in others:
        ref = bound_grads[n]
        assert float(ref.abs().max()) > 0, n
        assert torch.allclose(routed[n], ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max())), n


def test_variance_gradient_requires_set_loss():
    """Backward through routed tensors before set_loss() raises rather than silently using the bound."""
    s = MonotoneNet()
    r = VarianceGradient()
    at = s.evaluate(torch.tensor([0.2, 0.7]), router=r)
    with pytest.raises(RuntimeError, match="set_loss"):
        (at.gamma.sum() + at.slope.sum()).backward()


def test_router_leaves_schedules_without_interior_alone():
    """For linear schedules the router is a no-op: endpoint gradients equal the plain ones without set_loss()."""
    s = LearnedLinear()
    t = torch.tensor([0.1, 0.5, 0.9])
    at = s.evaluate(t, router=VarianceGradient())
    (at.gamma * at.slope).sum().backward()
    routed = [p.grad.clone() for p in s.parameters()]
    s.zero_grad()
    at = s.evaluate(t)
    (at.gamma * at.slope).sum().backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(routed, s.parameters()))


def test_variance_objective_moves_interior_keeps_bound_and_lowers_variance(monkeypatch):
    """Training only the interior of a MonotoneNet with VDMObjective (continuous time) against a fixed denoiser:
    ĝ changes materially, the Monte-Carlo continuous bound (N = 20000 draws, common random numbers before/after)
    matches its closed form (quadrature over γ) before and after and its paired change stays within 4 standard
    errors (the bound does not depend on ĝ), and the variance of the per-draw diffusion loss falls
    to well below its initial value (the variance objective works)."""
    torch.manual_seed(0)
    sched = MonotoneNet()
    for n in ENDPOINTS:
        getattr(sched, n).requires_grad_(False)
    mu, sd, D = 0.0, 0.5, 16
    net = GaussianDenoiser(sched, mu, sd**2)
    g = torch.Generator().manual_seed(0)

    def data(n):
        x = (mu + sd * torch.randn(n, 1, 4, 4, generator=g)).clamp(-1, 1)
        return torch.round((x + 1) * 127.5) / 127.5 - 1

    x_train = data(128)
    N = 20000
    x_ev, u_ev, e_ev = data(N).double(), torch.rand(N, generator=g), torch.randn(N, 1, 4, 4, generator=g).double()
    t_grid = torch.linspace(0, 1, 101)

    def evaluate():
        # only the diffusion term is read: skip the 256-level decoder (a (N, D, 256) softmax) inside vdm_bound
        with torch.no_grad(), monkeypatch.context() as m:
            m.setattr(nll, "discrete_decoder_nll", lambda x, z_0, gamma_0: torch.zeros(x.shape[0], dtype=x.dtype))
            return bits_per_dim(vdm_bound(net, x_ev, u_ev, e_ev).diffusion, D), sched.shape(t_grid).clone()

    before, shape_before = evaluate()
    opt = torch.optim.Adam([getattr(sched, n) for n in INTERIOR], lr=0.05)
    objective, rng = VDMObjective(), BatchRNG(1)
    for _ in range(100):
        opt.zero_grad(set_to_none=True)
        objective(net, x_train, rng).mean().backward()
        assert sched.gamma_0.grad is None and sched.raw_range.grad is None
        opt.step()
    after, shape_after = evaluate()

    assert float((shape_after - shape_before).abs().max()) > 0.1
    # the bound given these x: E over ε, t of ½γ'‖ε − ε̂‖² = ½∫ Σ_d E_ε(ε_d − ε̂_d)² dγ over [γ_0, γ_1], where
    # ε − ε̂ = (1 − kσ)ε − kα(x − μ), k = σ/(α²s² + σ²); it does not involve ĝ
    m2 = float(((x_ev - mu) ** 2).mean())

    def integrand(gam):
        a2 = 1 / (1 + math.exp(gam))
        k = math.sqrt(1 - a2) / (a2 * sd**2 + 1 - a2)
        return (1 - k * math.sqrt(1 - a2)) ** 2 + k * k * a2 * m2

    g0, g1 = (float(v) for v in sched.endpoints())
    bound = 0.5 * integrate.quad(integrand, g0, g1, epsabs=1e-12, limit=200)[0] / math.log(2)
    for L in (before, after):
        assert abs(float(L.mean()) - bound) < 4 * float(L.std()) / math.sqrt(N), (float(L.mean()), bound)
    d = (after - before).numpy()  # paired (common u, ε, x): the draw in this test lands at 2.9 se
    se = d.std(ddof=1) / math.sqrt(N)
    assert abs(d.mean()) < 4 * se, (d.mean(), se)
    assert se < 0.01 * bound  # the checks above have power: se is under 1% of the bound
    ratio = float(after.var() / before.var())
    assert ratio < 0.6, ratio


# --- discrete chains of a continuous schedule --------------------------------------------------------------------


@pytest.mark.parametrize("K,spacing", [(1, "uniform"), (10, "uniform"), (7, "quad"), (1000, "uniform")])
def test_chain_matches_schedule(K, spacing):
    """chain(K, spacing): tau = grid_times(K, spacing) (i/K or (i/K)²), ᾱ'_i = sigmoid(−γ(t_i)) in float64,
    β'_i = 1 − ᾱ'_i/ᾱ'_{i−1}, ᾱ'_0 = α_0² < 1, ᾱ'_K = α_1²."""
    sched = curved(3)
    chain = ContinuousGaussian(sched).chain(K, SPACINGS[spacing])
    t = grid_times(sched, K, SPACINGS[spacing])
    expected_t = np.arange(K + 1) / K if spacing == "uniform" else (np.arange(K + 1) / K) ** 2
    np.testing.assert_allclose(t, expected_t, rtol=1e-15, atol=0)
    assert chain.tau.dtype == torch.float64 and np.array_equal(chain.tau.numpy(), t)
    assert chain.alpha_bar.dtype == torch.float64 and chain.K == K
    with torch.no_grad():
        gamma = np.array([float(sched(torch.tensor([ti], dtype=torch.float32))) for ti in t], dtype=np.float64)
        g0, g1 = (float(v) for v in sched.endpoints())
    ab = 1.0 / (1.0 + np.exp(gamma))
    np.testing.assert_allclose(chain.alpha_bar.numpy(), ab, rtol=1e-12)
    np.testing.assert_allclose(chain.beta.numpy()[1:], 1 - ab[1:] / ab[:-1], rtol=1e-9, atol=1e-15)
    assert chain.beta[0] == 0
    assert float(chain.alpha_bar[0]) == pytest.approx(1 / (1 + math.exp(g0)), rel=1e-12) and chain.alpha_bar[0] < 1
    assert float(chain.alpha_bar[K]) == pytest.approx(1 / (1 + math.exp(g1)), rel=1e-6)
    assert bool((chain.alpha_bar.diff() < 0).all())


@pytest.mark.parametrize("K,spacing", [(10, "uniform"), (7, "quad"), (1000, "uniform")])
def test_ancestral_step_on_chain_is_vdm_update(K, spacing):
    """One ancestral β̃ step on chain(K) from t = t_i to s = t_{i−1} is VDM's update (appendix A.4):
    with c = −expm1(γ_s − γ_t), mean = (α_s/α_t)·(z_t − c·σ_t·ε̂) and variance σ_s²·c, in float64."""
    sched = curved(5)
    chain = ContinuousGaussian(sched).chain(K, SPACINGS[spacing])
    with torch.no_grad():
        gamma = sched(chain.tau.float()).double()
    g = torch.Generator().manual_seed(K)
    z_t = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64)
    eps_hat = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64)
    for i in sorted({1, 2, K // 2, K - 1, K} - {0}):
        g_t, g_s = gamma[i], gamma[i - 1]
        a_t, s_t = alpha_sigma(g_t)
        a_s, s_s = alpha_sigma(g_s)
        c = -torch.expm1(g_s - g_t)
        x0, _ = predict_x0(z_t, eps_hat, float(chain.alpha_bar[i]), False)
        mean = ancestral_step(z_t, x0, chain, i, "betatilde", torch.zeros_like(z_t))
        expected_mean = a_s / a_t * (z_t - c * s_t * eps_hat)
        assert torch.allclose(mean, expected_mean, rtol=1e-7, atol=1e-9), i
        assert float(chain.beta_tilde[i]) == pytest.approx(float(s_s**2 * c), rel=1e-6), i
        if i > 1:
            stepped = ancestral_step(z_t, x0, chain, i, "betatilde", noise)
            assert torch.allclose(stepped - mean, float(s_s**2 * c) ** 0.5 * noise, rtol=1e-6, atol=1e-12), i
