"""One contract for every registered noise process and method, with no per-class special cases."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from diffsteps.config import SamplerSpec
from diffsteps.methods import DiffusionMethod, Method
from diffsteps.noise import NoiseProcess, Schedule, make_betas
from diffsteps.registry import METHODS, method_class
from diffsteps.rng import BatchRNG, StackedRNG

SHAPE = (4, 1, 8, 8)


RUNS = ["ddpm", "ddgm", "mixture", "vdm"]  # the smoke preset's runs: one per family (checked below)


@pytest.fixture(scope="module")
def schedule():
    return Schedule(make_betas("linear", 1000))


def _process(cfg, run):
    """The noise process of a run, built from its options exactly as training and sampling build it."""
    method = method_class(cfg, run)(cfg, run, SHAPE[1:])
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
    assert set(RUNS) == set(smoke_cfg.methods)
    assert {smoke_cfg.method_config[run].family for run in RUNS} == set(METHODS)


@pytest.mark.parametrize("run", RUNS)
def test_method_contract(run, smoke_cfg):
    cfg = dataclasses.replace(smoke_cfg, model=dataclasses.replace(smoke_cfg.model, channels=8))
    method = method_class(cfg, run)(cfg, run, SHAPE[1:])
    assert isinstance(method, Method) and isinstance(method.noise_label(method.options), str)
    skew = method.noise_skewness(np.array([1, 10, 1000]))
    assert skew is None or (skew.shape == (3,) and np.isfinite(skew).all())
    model = method.build_model()
    x0 = torch.rand(SHAPE) * 2 - 1
    loss = method.objective()(model, x0, BatchRNG(0))
    assert loss.shape == (SHAPE[0],) and torch.isfinite(loss).all()
    gen = method.generate(model, 3, SamplerSpec.parse(cfg.sampling.samplers[0]), "uniform", 5, 0, batch_size=2,
                          device=torch.device("cpu"))
    assert gen.images.shape == (5, *SHAPE[1:]) and gen.images.dtype == np.uint8 and gen.nfe == 3
    # one seed per sample: the set does not depend on the batch size
    again = method.generate(model, 3, SamplerSpec.parse(cfg.sampling.samplers[0]), "uniform", 5, 0, batch_size=5,
                            device=torch.device("cpu"))
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
