"""One contract for every registered noise process and method, with no per-class special cases."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from diffsteps.config import SamplerSpec
from diffsteps.methods import Method
from diffsteps.noise import NoiseProcess, Schedule, make_betas
from diffsteps.registry import METHODS, NOISE_PROCESSES, method_class
from diffsteps.rng import BatchRNG, StackedRNG

SHAPE = (4, 1, 8, 8)


@pytest.fixture(scope="module")
def schedule():
    return Schedule(make_betas("linear", 1000))


@pytest.mark.parametrize("name", list(NOISE_PROCESSES))
def test_noise_process_contract(name, schedule):
    process = NOISE_PROCESSES[name](schedule)
    assert isinstance(process, NoiseProcess)
    n = 20000
    for t in (1, 100, 1000):
        eps = process.sample_noise((n, 1), torch.full((n,), t), BatchRNG(t)).double()
        assert abs(float(eps.mean())) < 5 / n**0.5 and float(eps.var()) == pytest.approx(1.0, rel=0.05)
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


@pytest.mark.parametrize("name", [n for n in NOISE_PROCESSES if NOISE_PROCESSES[n].markov_forward])
def test_declared_markov_chain_matches_marginal(name, schedule):
    """A process that declares ``markov_forward`` must reach its marginal by chaining one-step kernels."""
    process = NOISE_PROCESSES[name](schedule)
    n, t, x0 = 20000, 40, 0.5
    x = torch.full((n, 1), x0, dtype=torch.float64)
    rng = BatchRNG(1)
    for s in range(1, t + 1):
        x = process.forward_step(x, torch.full((n,), s), rng)
    marginal = process.q_sample(torch.full((n, 1), x0, dtype=torch.float64), torch.full((n,), t), BatchRNG(2)).x_t
    assert stats.ks_2samp(x.flatten().numpy(), marginal.flatten().numpy()).pvalue > 1e-3


def test_smoke_runs_cover_every_method_family(smoke_cfg):
    """The method contract below runs every run of the smoke preset, so those runs must cover the registry."""
    assert {smoke_cfg.method_config[run].family for run in smoke_cfg.methods} == set(METHODS)


@pytest.mark.parametrize("run", ["ddpm", "ddgm", "mixture"])
def test_method_contract(run, smoke_cfg):
    cfg = dataclasses.replace(smoke_cfg, model=dataclasses.replace(smoke_cfg.model, channels=8))
    method = method_class(cfg, run)(cfg, run, SHAPE[1:])
    assert isinstance(method, Method) and isinstance(method.noise_label(method.options), str)
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
    if method.nll_undefined_reason is None:
        terms = method.nll(model, gen.images, 3, "betatilde", "uniform", 0, batch_size=5, device=torch.device("cpu"))
        bpd = terms.bits_per_dim(int(np.prod(SHAPE[1:])))
        assert all(torch.isfinite(v).all() and v.shape == (5,) for v in bpd.values())
