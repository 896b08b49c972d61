"""VDM's variational bound (arXiv 2107.00630, eqs. 11–17) against closed forms.

The prior KL and the 256-level decoder are checked against direct float64 computations. The diffusion term is
checked by Monte Carlo with tolerances from the standard error, on analytic denoisers for Gaussian data
x ~ N(μ, s²) per dimension: ε̂ = k·(z − α m') with k = σ/(α² s'² + σ²) is the exact E[ε | z_t] when (m', s'²) =
(μ, s²), and for any (m', s'²) the per-dimension error has the closed form

    E(ε − ε̂)² = (1 − kσ)² + k²α²(s² + (μ − m')²),

so that E[L_T] = ½ Σ_i expm1(γ_i − γ_{i−1})·D·e(γ_i) and L_∞ = ½ ∫ D·e(γ) dγ over [γ_0, γ_1].
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from diffsteps.likelihood import (bits_per_dim, discrete_decoder_nll, pixel_levels, prior_kl, vdm_bound)
from diffsteps.models.unet import UNetSpec
from diffsteps.models.vdm import VDMNetwork
from diffsteps.noise.logsnr import alpha_sigma, build_schedule, grid_times
from diffsteps.spacing import SPACINGS

from .vdm_helpers import GaussianDenoiser

LN2 = math.log(2.0)


def per_dim_error(gam: float, mu: float, s2: float, m: float, s2_model: float) -> float:
    """E(ε − ε̂)² per dimension at log-SNR γ for data N(μ, s²) and the denoiser of N(m', s'²)."""
    a2 = special.expit(-gam)
    sig = math.sqrt(1 - a2)
    k = sig / (a2 * s2_model + 1 - a2)
    return (1 - k * sig) ** 2 + k * k * a2 * (s2 + (mu - m) ** 2)


def expected_bounds(schedule, Ts, mu, s2, m, s2_model):
    """Closed-form E[L_T] for each T in ``Ts`` and L_∞, in bits/dim (diffusion term only)."""
    with torch.no_grad():
        g0, g1 = (float(v) for v in schedule.endpoints())
        out = {}
        for T in Ts:
            gam = schedule(torch.from_numpy(grid_times(schedule, T, SPACINGS["uniform"])).float()).double().numpy()
            err = np.array([per_dim_error(g, mu, s2, m, s2_model) for g in gam[1:]])
            out[T] = 0.5 * float(np.sum(np.expm1(np.diff(gam)) * err)) / LN2
    f = lambda g: per_dim_error(g, mu, s2, m, s2_model)  # noqa: E731
    out[None] = 0.5 * integrate.quad(f, g0, g1, epsabs=1e-13, epsrel=1e-12, limit=400)[0] / LN2
    return out


@pytest.fixture
def no_decoder(monkeypatch):
    """The diffusion-term tests draw ~10⁵ images per T and read only ``terms.diffusion``: skip the 256-level
    decoder inside vdm_bound (its (B, D, 256) softmax would dominate the runtime; it is tested above)."""
    import diffsteps.likelihood as nll

    monkeypatch.setattr(nll, "discrete_decoder_nll", lambda x, z_0, gamma_0: torch.zeros(x.shape[0], dtype=x.dtype))


def mc_bounds(net, Ts, N, D, mu, s2, seed):
    """Per-draw diffusion losses in bits/dim for each T in ``Ts`` (None = continuous), with common random numbers
    (the same x, u, ε for every T). x ~ N(μ, s²) in float64, shape (N, 1, 1, D)."""
    g = torch.Generator().manual_seed(seed)
    x = mu + math.sqrt(s2) * torch.randn(N, 1, 1, D, generator=g, dtype=torch.float64)
    u = torch.rand(N, generator=g)
    eps = torch.randn(N, 1, 1, D, generator=g, dtype=torch.float64)
    with torch.no_grad():
        return {T: bits_per_dim(vdm_bound(net, x, u, eps, T=T).diffusion, D).numpy() for T in Ts}


def se(v: np.ndarray) -> float:
    return float(v.std(ddof=1) / math.sqrt(len(v)))


def schedule_of(kind: str):
    """fixed_linear, or a monotone net with a strongly non-linear interior (a steep sigmoid bump around t ≈ 0.4 on
    a small linear part, |ĝ(t) − t| > 0.2 somewhere; endpoints at their initial values)."""
    s = build_schedule(kind)
    if kind == "monotone_net":
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            s.raw_w.fill_(-3.0)
            s.raw_a.copy_(0.5 + 0.5 * torch.randn(64, generator=g))
            s.raw_b.copy_(15.0 + 3.0 * torch.randn(64, generator=g))
            s.c.copy_(0.4 + 0.15 * torch.randn(64, generator=g))
            t = torch.linspace(0, 1, 101)
            assert float((s.shape(t) - t).abs().max()) > 0.2
    return s


# --- prior and decoder ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma_1", [5.0, 10.0, -1.0, 0.3])
def test_prior_kl_matches_closed_form(gamma_1):
    """prior_kl = Σ_d KL(N(α_1 x_d, σ_1²) ‖ N(0, 1)) = Σ_d ½(α_1² x_d² + σ_1² − 1 − log σ_1²), checked against numpy
    and torch.distributions in float64, per image."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 2, 2, generator=g, dtype=torch.float64) * 2 - 1
    kl = prior_kl(x, torch.tensor(gamma_1, dtype=torch.float64))
    a2, s2 = special.expit(-gamma_1), special.expit(gamma_1)
    xn = x.numpy().reshape(5, -1)
    expected = (0.5 * (a2 * xn**2 + s2 - 1 - math.log(s2))).sum(1)
    assert kl.shape == (5,) and kl.dtype == torch.float64
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-10, atol=1e-300)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(math.sqrt(a2) * x, math.sqrt(s2)),
                                            torch.distributions.Normal(0.0, 1.0)).flatten(1).sum(1)
    assert torch.allclose(kl, ref, rtol=1e-9)


def decoder_reference(x: np.ndarray, z0: np.ndarray, gamma_0: float) -> np.ndarray:
    """−log p(x | z_0) per image: p(x_k | z_0) ∝ N(z_0/α_0; x_k, σ_0²/α_0²), normalised explicitly over the 256
    levels x_k = −1 + 2k/255 in float64 (scipy)."""
    a0, s0 = math.sqrt(special.expit(-gamma_0)), math.sqrt(special.expit(gamma_0))
    levels = -1 + 2 * np.arange(256) / 255
    logp = stats.norm.logpdf(z0[..., None] / a0, loc=levels, scale=s0 / a0)  # (B, D, 256)
    logp = logp - special.logsumexp(logp, axis=-1, keepdims=True)
    k = np.rint((x + 1) * 127.5).astype(int)
    return -np.take_along_axis(logp, k[..., None], axis=-1)[..., 0].sum(1)


@pytest.mark.parametrize("gamma_0", [-13.3, -6.0, -2.0, 1.0])
def test_discrete_decoder_matches_explicit_categorical(gamma_0):
    """discrete_decoder_nll equals the explicitly normalised 256-level categorical in float64, from the sharp
    decoder of VDM's initial γ_0 = −13.3 to γ_0 = −6, −2 and 1, where the neighbouring levels carry much of the mass
    (then the NLL per dimension is far from 0), including the edge levels ±1."""
    g = torch.Generator().manual_seed(1)
    B, D = 6, 40
    k = torch.randint(0, 256, (B, D), generator=g)
    k[0, :4] = torch.tensor([0, 255, 1, 254])
    x = k.double() / 127.5 - 1
    a0, s0 = alpha_sigma(torch.tensor(gamma_0, dtype=torch.float64))
    z0 = a0 * x + s0 * torch.randn(B, D, generator=g, dtype=torch.float64)
    nll = discrete_decoder_nll(x, z0, torch.tensor(gamma_0, dtype=torch.float64))
    expected = decoder_reference(x.numpy(), z0.numpy(), gamma_0)
    np.testing.assert_allclose(nll.numpy(), expected, rtol=1e-9, atol=1e-9)
    if gamma_0 >= -6:
        assert expected.mean() / D > 0.5  # the neighbours matter: far from a deterministic decoder
    else:
        assert expected.mean() / D < 0.05
    # the probabilities over all 256 levels sum to one (the categorical is normalised)
    logp = torch.stack([-discrete_decoder_nll(torch.full_like(z0, float(lv)), z0, torch.tensor(gamma_0,
                        dtype=torch.float64)) for lv in pixel_levels()[::51]])
    assert bool((logp < 0).all())
    levels = pixel_levels()
    total = sum(torch.exp(-discrete_decoder_nll(torch.full((1, 1), float(lv), dtype=torch.float64), z0[:1, :1],
                                                torch.tensor(gamma_0, dtype=torch.float64))) for lv in levels)
    assert float(total) == pytest.approx(1.0, abs=1e-10)


def test_decoder_float32_matches_float64_at_initial_gamma_0():
    """In training, z_0 is float32: at γ_0 = −13.3 (logits up to ~1e6) the float32 decoder stays close to the
    float64 reference."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (8, 64), generator=g).double() / 127.5 - 1
    a0, s0 = alpha_sigma(torch.tensor(-13.3, dtype=torch.float64))
    z0 = a0 * x + s0 * torch.randn(8, 64, generator=g, dtype=torch.float64)
    nll32 = discrete_decoder_nll(x.float(), z0.float(), torch.tensor(-13.3))
    expected = decoder_reference(x.numpy(), z0.numpy(), -13.3)
    np.testing.assert_allclose(nll32.double().numpy(), expected, rtol=1e-2, atol=1e-3)


# --- the diffusion term ------------------------------------------------------------------------------------------


def test_zero_prediction_gives_gamma_range_over_2ln2():
    """A fresh VDMNetwork predicts ε̂ ≡ 0 (zero-initialised head), so with the fixed linear schedule each draw of
    the continuous diffusion loss is ½(γ_1 − γ_0)‖ε‖² and its mean is (γ_1 − γ_0)/(2 ln 2) = 13.20 bits/dim
    (MC over 1000 draws, within 4 s.e.); the discrete-T draw is ½T·expm1((γ_1 − γ_0)/T)‖ε‖²; prior and recon are
    prior_kl(x, γ_1) and discrete_decoder_nll(x, α_0 x + σ_0 ε, γ_0)."""
    torch.manual_seed(0)
    spec = UNetSpec(image_size=8, in_channels=1, out_channels=1, channels=8, channel_mult=(1,), num_res_blocks=1,
                    attn_resolutions=(), dropout=0.0, num_heads=1)
    net = VDMNetwork(spec, build_schedule("fixed_linear"), fourier_min=6, fourier_max=7).eval()
    N, D = 1000, 64
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (N, 1, 8, 8), generator=g).float() / 127.5 - 1
    u, eps = torch.rand(N, generator=g), torch.randn(N, 1, 8, 8, generator=g)
    with torch.no_grad():
        assert torch.equal(net.predict(x, torch.linspace(-13, 5, N)), torch.zeros_like(x))
        terms = vdm_bound(net, x, u, eps, clip_x0=False)
        terms10 = vdm_bound(net, x, u, eps, T=10, clip_x0=False)
    diff = bits_per_dim(terms.diffusion, D).double().numpy()
    rng = 18.3
    sq = eps.double().pow(2).flatten(1).mean(1).numpy()
    np.testing.assert_allclose(diff, rng / (2 * LN2) * sq, rtol=1e-5)
    assert rng / (2 * LN2) == pytest.approx(13.20, abs=0.005)
    assert abs(diff.mean() - rng / (2 * LN2)) < 4 * se(diff)
    np.testing.assert_allclose(bits_per_dim(terms10.diffusion, D).double().numpy(),
                               0.5 * 10 * math.expm1(rng / 10) / LN2 * sq, rtol=1e-4)
    g0, g1 = net.gamma.endpoints()
    a0, s0 = alpha_sigma(g0)
    assert torch.allclose(terms.prior, prior_kl(x, g1))
    assert torch.allclose(terms.recon, discrete_decoder_nll(x, a0 * x + s0 * eps, g0))


@pytest.mark.parametrize("kind", ["fixed_linear", "monotone_net"])
def test_discrete_loss_approaches_continuous_loss(kind, no_decoder):
    """For a fixed mis-specified denoiser (model N(−0.2, 0.5) for data N(0.1, 0.09)), the discrete-T loss of
    T = 10, 100, 1000 approaches L_∞: the gap E[L_T − L_∞], estimated with common random numbers (N = 20000),
    matches its closed form within 4 s.e. and shrinks with T, significantly so at each step."""
    sched = schedule_of(kind)
    mu, s2, m, s2_model, D, N = 0.1, 0.09, -0.2, 0.5, 16, 20000
    net = GaussianDenoiser(sched, m, s2_model)
    Ts = (10, 100, 1000)
    mc = mc_bounds(net, Ts + (None,), N, D, mu, s2, seed=3)
    exact = expected_bounds(sched, Ts, mu, s2, m, s2_model)
    assert abs(mc[None].mean() - exact[None]) < 4 * se(mc[None])
    gaps = {}
    for T in Ts:
        d = mc[T] - mc[None]
        gaps[T] = (d.mean(), se(d))
        assert abs(d.mean() - (exact[T] - exact[None])) < 4 * se(d) + 1e-9, (T, d.mean(), exact[T] - exact[None])
    for T_lo, T_hi in ((10, 100), (100, 1000)):
        assert abs(exact[T_hi] - exact[None]) < 0.2 * abs(exact[T_lo] - exact[None])
        (lo, lo_se), (hi, hi_se) = gaps[T_lo], gaps[T_hi]
        assert abs(hi) + 3 * hi_se < abs(lo) - 3 * lo_se, (T_lo, gaps)


@pytest.mark.parametrize("kind", ["fixed_linear", "monotone_net"])
def test_more_steps_never_increase_the_loss_of_the_optimal_denoiser(kind, no_decoder):
    """Gaussian data x ~ N(0.1, 0.09) with its exact E[ε | z_t]: E[L_T] matches its closed form within 4 s.e. for
    T = 1, 2, 4, …, 1024 and ∞; L_{2T} − L_T ≤ 3 s.e. by Monte Carlo (common random numbers, N = 20000) and matches
    its closed form within 4 s.e.; and the
    closed form decreases strictly in T towards L_∞, its gap halving with each doubling of T at large T (VDM:
    doubling the steps never increases the loss)."""
    sched = schedule_of(kind)
    mu, s2, D, N = 0.1, 0.09, 16, 20000
    net = GaussianDenoiser(sched, mu, s2)
    Ts = tuple(2**j for j in range(11))
    mc = mc_bounds(net, Ts + (None,), N, D, mu, s2, seed=4)
    exact = expected_bounds(sched, Ts, mu, s2, mu, s2)
    # with the exact denoiser, L_∞ = ½ ∫ sigmoid(log s² − γ) dγ = ½[softplus(log s² − γ_0) − softplus(log s² − γ_1)]
    g0, g1 = (float(v.detach()) for v in sched.endpoints())
    sp = lambda v: float(np.logaddexp(0.0, v))  # noqa: E731
    assert exact[None] == pytest.approx(0.5 * (sp(math.log(s2) - g0) - sp(math.log(s2) - g1)) / LN2, rel=1e-9)
    for T in Ts + (None,):
        assert abs(mc[T].mean() - exact[T]) < 4 * se(mc[T]), (T, mc[T].mean(), exact[T], se(mc[T]))
    for T in Ts[:-1]:
        d = mc[2 * T] - mc[T]
        assert d.mean() <= 3 * se(d), (T, d.mean(), se(d))
        assert abs(d.mean() - (exact[2 * T] - exact[T])) < 4 * se(d), (T, d.mean(), exact[2 * T] - exact[T])
        assert exact[2 * T] < exact[T]
    assert all(exact[T] > exact[None] for T in Ts)
    # first-order convergence: expm1(Δγ) ≈ Δγ(1 + Δγ/2) makes the gap ≈ c/T, halving with each doubling
    assert 0.4 < (exact[1024] - exact[None]) / (exact[512] - exact[None]) < 0.6
    assert exact[1024] - exact[None] < 0.015 * exact[None]


def test_variance_router_is_refused_for_the_discrete_bound():
    """The discrete-T bound depends on the interior and trains it itself: routing it to the variance
    objective would silently change what is learned, so it is an error."""
    from diffsteps.noise.logsnr import VarianceGradient

    net = GaussianDenoiser(build_schedule("monotone_net"), 0.0, 0.25)
    x, u = torch.zeros(2, 1, 2, 2), torch.tensor([0.2, 0.7])
    vdm_bound(net, x, u, torch.randn(2, 1, 2, 2), T=None, router=VarianceGradient())  # continuous: fine
    with pytest.raises(ValueError, match="variance router with T = 10 is invalid"):
        vdm_bound(net, x, u, torch.randn(2, 1, 2, 2), T=10, router=VarianceGradient())
