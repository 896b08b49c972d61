"""One contract for every registered noise process and method, with no per-class special cases."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from diffsteps.sampler_registry import FIXED_T_SAMPLER, SamplerSpec
from diffsteps.samplers import sampler_for
from diffsteps.methods import DiffusionMethod, Method
from diffsteps.noise import NoiseProcess, Schedule, make_betas
from diffsteps.registry import METHODS, method_class
from diffsteps.rng import BatchRNG

SHAPE = (4, 1, 8, 8)


RUNS = ["ddpm", "ddgm", "mixture", "vdm", "ddgan"]  # the smoke preset's runs: one per family (checked below)
T_FIXED = 3  # the step count a fixed-T run is built at here; the others are sampled at this budget


def _build(cfg, run):
    """A run's method as the stages build it: a fixed-T run (DDGAN) at its T, the others without one."""
    return method_class(cfg, run)(cfg, run, SHAPE[1:], T_FIXED if cfg.method_config[run].fixed_T else None)


@pytest.fixture(scope="module")
def schedule():
    return Schedule(make_betas("linear", 1000))


def _process(cfg, run):
    """The noise process of a run, built from its options exactly as training and sampling build it."""
    method = _build(cfg, run)
    return method.process if isinstance(method, DiffusionMethod) else None


def test_smoke_runs_cover_every_noise_process(smoke_cfg):
    covered = {type(_process(smoke_cfg, run)) for run in RUNS}
    assert covered >= {m.noise_cls for m in (METHODS[f] for f in METHODS) if issubclass(m, DiffusionMethod)}


@pytest.mark.parametrize("run", RUNS)
def test_noise_process_contract(run, smoke_cfg, schedule):
    process = _process(smoke_cfg, run)
    if process is None:
        pytest.skip(f"{run} has no discrete noise process")
    assert isinstance(process, NoiseProcess)
    n = 20000
    for t in (1, 100, 1000):
        eps = process.sample_noise((n, 1), torch.full((n,), t), BatchRNG(t)).double()
        # standard errors from the sample's own fourth moment: very skewed noise (Gamma at t = 1) is heavy-tailed
        se_var = float(((eps - eps.mean()) ** 2).var() / n) ** 0.5
        assert abs(float(eps.mean())) < 5 / n**0.5 and abs(float(eps.var()) - 1.0) < max(5 * se_var, 0.02)
    x0 = torch.rand(SHAPE) * 2 - 1
    fs = process.q_sample(x0, torch.tensor([1, 5, 500, 1000]), BatchRNG(0))
    assert fs.x_t.shape == SHAPE and fs.eps.shape == SHAPE
    assert process.loss(torch.zeros(SHAPE), fs.eps).shape == (SHAPE[0],)
    assert process.prior_sample(SHAPE, BatchRNG(0)).shape == SHAPE
    chain = schedule.chain(10, "uniform")
    assert process.reverse_noise(SHAPE, chain, 3, BatchRNG(0)).shape == SHAPE
    assert isinstance(process.markov_forward, bool)
    assert process.nll_undefined_reason is None or len(process.nll_undefined_reason) > 20
    # the declared closed-form skewness is the noise's: checked where it is large enough to measure
    for t in (1, 100, 1000):
        eps = process.sample_noise((n, 1), torch.full((n,), t), BatchRNG(7), dtype=torch.float64).flatten().numpy()
        expected = float(process.skewness(np.array([t]))[0])
        if abs(expected) < 2:  # beyond that the sample skewness of 20k draws is itself too noisy
            assert stats.skew(eps) == pytest.approx(expected, abs=0.1 + 0.1 * abs(expected))


@pytest.mark.parametrize("run", RUNS)
def test_declared_markov_chain_matches_marginal(run, smoke_cfg):
    """A process that declares ``markov_forward`` must reach its marginal by chaining one-step kernels."""
    process = _process(smoke_cfg, run)
    if process is None or not process.markov_forward:
        pytest.skip(f"{run} declares no Markov forward chain")
    n, t, x0 = 20000, 40, 0.5
    x = torch.full((n, 1), x0, dtype=torch.float64)
    rng = BatchRNG(1)
    for s in range(1, t + 1):
        x = process.forward_step(x, torch.full((n,), s), rng)
    marginal = process.q_sample(torch.full((n, 1), x0, dtype=torch.float64), torch.full((n,), t), BatchRNG(2)).x_t
    assert stats.ks_2samp(x.flatten().numpy(), marginal.flatten().numpy()).pvalue > 1e-3


def test_smoke_runs_cover_every_method_family(smoke_cfg):
    """The contracts run the smoke preset's runs, so those runs must cover the registry."""
    assert set(RUNS) == set(smoke_cfg.methods) | set(smoke_cfg.fixed_T.methods)
    assert {smoke_cfg.method_config[run].family for run in RUNS} == set(METHODS)


@pytest.mark.parametrize("run", RUNS)
def test_method_contract(run, smoke_cfg):
    cfg = dataclasses.replace(smoke_cfg, model=dataclasses.replace(smoke_cfg.model, channels=8))
    method = _build(cfg, run)
    assert isinstance(method, Method) and isinstance(method.noise_label(method.options), str)
    skew = method.noise_skewness(np.array([1, 10, 1000]))
    assert skew is None or (skew.shape == (3,) and np.isfinite(skew).all())
    curve = method.log_snr_curve(method.build_model())
    assert len(curve["t"]) == len(curve["gamma"]) >= 2 and np.all(np.diff(curve["gamma"]) > 0)  # noise grows with t
    model = method.build_model()
    x0 = torch.rand(SHAPE) * 2 - 1
    # one learner step changes the weights and reports every column it declares, finite
    learner = method.learner(model, dataclasses.replace(cfg.train, warmup_images=0))
    before = [p.detach().clone() for p in model.parameters()]
    values = learner.step(x0, BatchRNG(0), 0, amp=False)
    assert list(values) == list(learner.columns) and learner.columns[0] == "loss"
    assert all(v.shape == () and torch.isfinite(v) for v in values.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert model in learner.networks() and learner.health({c: float(v) for c, v in values.items()}) is None
    learner.load_state_dict(learner.state_dict())
    # a fixed-T run samples only its own cell (FIXED_T_SAMPLER at NFE = T); the others any sampler of the study
    spec = sampler_for(SamplerSpec.parse(FIXED_T_SAMPLER if method.T else cfg.sampling.samplers[0]))
    gen = method.generate(model, T_FIXED, spec, "uniform", 5, 0, batch_size=2, device=torch.device("cpu"))
    assert gen.images.shape == (5, *SHAPE[1:]) and gen.images.dtype == np.uint8 and gen.nfe == T_FIXED
    # one seed per sample: the set does not depend on the batch size
    again = method.generate(model, T_FIXED, spec, "uniform", 5, 0, batch_size=5, device=torch.device("cpu"))
    assert np.abs(gen.images.astype(int) - again.images.astype(int)).max() <= 1
    # every bound cell is either computed (finite, per image, with its draws) or says why it is not defined
    for variance in ("betatilde", "beta", None):  # None: the continuous-time bound
        reason = method.nll_reason(variance)
        if reason is not None:
            assert len(reason) > 20
            continue
        chain = (3, variance, "uniform") if variance else (None, None, None)
        terms = method.nll(model, gen.images, *chain, 0, batch_size=5, device=torch.device("cpu"))
        bpd = terms.bits_per_dim(int(np.prod(SHAPE[1:])))
        assert all(torch.isfinite(v).all() and v.shape == (5,) for v in bpd.values()) and terms.draws >= 1
