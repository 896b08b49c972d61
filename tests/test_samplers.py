import numpy as np
import pytest
import torch
from scipy import stats

from diffsteps.sampler_registry import SamplerSpec
from diffsteps.families.mixture import PhiSchedule
from diffsteps.noise.gaussian import GaussianNoise
from diffsteps.noise.schedule import Schedule, make_betas
from diffsteps.noise.gamma import GammaNoise
from diffsteps.noise.mixture import MixtureNoise
from diffsteps.rng import BatchRNG, StackedRNG
from diffsteps.noise.reverse import predict_x0
from diffsteps.samplers import ddim_sigma, sample
from diffsteps.spacing import SPACINGS


@pytest.fixture(scope="module")
def process():
    return GaussianNoise(Schedule(make_betas("linear", 1000)))


def toy_denoiser(x, t):
    """A fixed, smooth, time-dependent ε̂ (no training needed to exercise the update algebra)."""
    return torch.tanh(0.5 * x) * (t / 1000.0).reshape(-1, 1, 1, 1) + 0.1 * torch.sin(x)


SHAPE = (6, 1, 4, 4)


def run(process, name, K, spacing="uniform", seed=0, clip=True, x_T=None):
    chain = process.schedule.chain(K, SPACINGS[spacing])
    return sample(toy_denoiser, process, chain, SamplerSpec.parse(name), SHAPE, StackedRNG(seed, range(SHAPE[0])),
                  clip_x0=clip, x_T=x_T)


@pytest.mark.parametrize("K,spacing", [(10, "uniform"), (7, "quad"), (1000, "uniform")])
def test_ddim_eta1_equals_ancestral_betatilde(process, K, spacing):
    a = run(process, "ddim-eta1", K, spacing)
    b = run(process, "ancestral-betatilde", K, spacing)
    assert torch.allclose(a.x0, b.x0, atol=1e-5)


def test_ddim_eta1_sigma_is_posterior_std(process):
    chain = process.schedule.chain(20, SPACINGS["uniform"])
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
    chain = process.schedule.chain(5, SPACINGS["uniform"])
    assert any(float(chain.beta[i]) > 1 - float(chain.alpha_bar[i - 1]) for i in range(2, 6))
    out = run(process, "ancestral-beta", 5)
    assert torch.isfinite(out.x0).all()


def test_clipping_bounds_the_output(process):
    assert run(process, "ancestral-beta", 10, clip=True).x0.abs().max() <= 1 + 1e-6


# --- non-Gaussian noise families through the same samplers ---------------------------------------------------

MU, S = 0.3, 0.2  # 1-D Gaussian data N(μ, s²) for the analytic denoiser


def gaussian_data_denoiser(schedule):
    """The exact ε-prediction for data N(μ, s²) under Gaussian forward noise, E[ε | x_t] =
    √(1 − ᾱ_t)(x_t − √ᾱ_t μ)/(ᾱ_t s² + 1 − ᾱ_t): a fixed, linear function of x_t used for every family."""
    alpha_bar = schedule.alpha_bar

    def denoiser(x, t):
        ab = alpha_bar[t.long()].float().reshape(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * MU) / (ab * S**2 + 1 - ab)

    return denoiser


def test_gamma_sampler_approaches_gaussian_as_theta0_vanishes(process):
    """With a fixed analytic denoiser, K = 10 ancestral-β̃ samples (5000 1-D "images") from Gamma noise with
    θ0 = 1e-4 (every injected z has skewness ≤ 0.02) cannot be told from the Gaussian sampler's by a two-sample
    KS test, while θ0 = 0.5 (z at τ_1 = 1 has k̄ = 4e-4, almost a point mass) gives a clearly different law."""
    schedule = process.schedule
    den, chain = gaussian_data_denoiser(schedule), schedule.chain(10, SPACINGS["uniform"])
    spec, shape = SamplerSpec.parse("ancestral-betatilde"), (5000, 1, 1, 1)

    def draw(proc, seed):
        return sample(den, proc, chain, spec, shape, BatchRNG(seed), clip_x0=False).x0.double().flatten().numpy()

    gauss = draw(process, 1)
    near = draw(GammaNoise(schedule, theta0=1e-4, loss="l1"), 2)
    far = draw(GammaNoise(schedule, theta0=0.5, loss="l1"), 3)
    assert stats.ks_2samp(gauss, near).pvalue > 1e-2
    assert stats.ks_2samp(gauss, far).pvalue < 1e-6
    assert near.mean() == pytest.approx(gauss.mean(), abs=0.01) and near.std() == pytest.approx(gauss.std(), rel=0.05)


@pytest.mark.parametrize("noise", [GammaNoise, MixtureNoise], ids=["gamma", "mixture"])
@pytest.mark.parametrize("K,spacing", [(10, "uniform"), (7, "quad")])
def test_ddim_eta1_equals_ancestral_betatilde_for_non_gaussian_noise(process, noise, K, spacing):
    """DDIM with η = 1 and ancestral sampling with σ² = β̃ are the same update for Gamma (θ0 = 0.1, skewed) and
    mixture noise too: with the same per-sample streams they give the same samples."""
    if noise is GammaNoise:
        proc = GammaNoise(process.schedule, theta0=0.1, loss="l1")
    else:
        proc = MixtureNoise(process.schedule, p=0.3, phi=PhiSchedule(0.4, 0.6))
    a = run(proc, "ddim-eta1", K, spacing)
    b = run(proc, "ancestral-betatilde", K, spacing)
    assert torch.allclose(a.x0, b.x0, atol=1e-5)
    assert not torch.allclose(a.x0, run(proc, "ddim-eta1", K, spacing, seed=1).x0)  # the noise does act


class RecordingRNG:
    """Passes draws through to ``rng`` and records the Gamma concentrations asked for."""

    def __init__(self, rng):
        self.rng, self.concentrations = rng, []

    def standard_gamma(self, concentration, shape):
        self.concentrations.append(torch.as_tensor(concentration, dtype=torch.float64).cpu().numpy())
        return self.rng.standard_gamma(concentration, shape)

    def __getattr__(self, name):
        return getattr(self.rng, name)


@pytest.mark.parametrize("K", [2, 5])
def test_gamma_last_step_adds_no_noise(process, K):
    """The Gamma sampler injects the marginal noise of τ_{i−1} at steps i = K..2 (k̄ > 0 each time: k̄_{τ_1} =
    k̄_1 = 4e-4 at θ0 = 0.5) and draws nothing at the last step (k̄_0 = 0, which would give 0/0): its output is
    exactly the noiseless posterior mean c0_1·x̂_0 + ct_1·x_1 of the last network input x_1."""
    proc = GammaNoise(process.schedule, theta0=0.5, loss="l1")
    chain = process.schedule.chain(K, SPACINGS["uniform"])
    seen = []

    def den(x, t):
        seen.append((x.clone(), t.clone()))
        return toy_denoiser(x, t)

    rng = RecordingRNG(BatchRNG(0))
    x_T = proc.prior_sample(SHAPE, BatchRNG(1))
    for spec in ("ancestral-betatilde", "ancestral-beta", "ddim-eta1"):
        rng.concentrations.clear()
        seen.clear()
        out = sample(den, proc, chain, SamplerSpec.parse(spec), SHAPE, rng, clip_x0=False, x_T=x_T).x0
        assert torch.isfinite(out).all()
        taus = [int(chain.tau[i - 1]) for i in range(K, 1, -1)]
        assert len(rng.concentrations) == K - 1
        for conc, tau in zip(rng.concentrations, taus):
            assert tau >= 1 and np.all(conc == proc.k_bar[tau]) and np.all(conc > 0)
        x_1, t_1 = seen[-1]
        assert float(t_1[0]) == float(chain.tau[1]) == 1.0
        x0_hat, _ = predict_x0(x_1, toy_denoiser(x_1, t_1).float(), float(chain.alpha_bar[1]), False)
        c0, ct = chain.posterior_coefs()
        assert float(ct[1]) == 0.0
        assert torch.allclose(out, float(c0[1]) * x0_hat + float(ct[1]) * x_1, atol=1e-6)
    rng.concentrations.clear()
    sample(toy_denoiser, proc, chain, SamplerSpec.parse("ancestral-beta"), SHAPE, rng)  # x_T from the prior
    assert len(rng.concentrations) == K and np.all(rng.concentrations[0] == proc.k_bar[proc.T])


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["ancestral-betatilde", "ddim-eta1", "heun"])
def test_a_sampler_on_cuda_draws_the_cpus_noise_per_sample(process, name):
    """On a GPU each sample's noise still comes from its own CPU stream, copied through pinned memory without
    blocking: the samples equal the CPU's to float rounding."""
    chain = process.schedule.chain(25, SPACINGS["uniform"])
    out = {device: sample(toy_denoiser, process, chain, SamplerSpec.parse(name), SHAPE,
                          StackedRNG(3, range(SHAPE[0])), device=device).x0.cpu() for device in ("cpu", "cuda")}
    torch.testing.assert_close(out["cuda"], out["cpu"], rtol=1e-4, atol=1e-5)
