"""One contract for every registered family (its torch-free declaration), noise process and method, with no
per-class special cases."""

import dataclasses
import importlib
import re

import numpy as np
import pytest
import torch
from scipy import stats

import jsonschema

from diffsteps import families
from diffsteps.families.base import MethodOptions
from diffsteps.methods import method_class
from diffsteps.methods.base import Method
from diffsteps.methods.diffusion import DiffusionMethod
from diffsteps.noise.base import NoiseProcess
from diffsteps.noise.schedule import Schedule, make_betas
from diffsteps.rng import BatchRNG
from diffsteps.sampler_registry import SAMPLERS, SamplerSpec
from diffsteps.samplers import sampler_for
from diffsteps.spacing import SPACINGS

SHAPE = (4, 1, 8, 8)


RUNS = ["ddpm", "ddgm", "mixture", "vdm", "ddgan", "flow"]  # the smoke preset's runs: one per family (checked below)
T_FIXED = 3  # the step count a model per T (DDGAN) is built at here; the others are sampled at this budget


class NamedDeviceRNG:
    """A :class:`BatchRNG` that records every draw made without naming its device: on a GPU such a draw lands in
    host memory and is copied to the device in every training step, which makes the host wait for the device."""

    def __init__(self, rng):
        self.rng, self.unnamed = rng, []

    def _draw(self, name, *args, **kwargs):
        if "device" not in kwargs:
            self.unnamed.append(name)
        return getattr(self.rng, name)(*args, **kwargs)

    def randn(self, *args, **kwargs):
        return self._draw("randn", *args, **kwargs)

    def rand(self, *args, **kwargs):
        return self._draw("rand", *args, **kwargs)

    def randint(self, *args, **kwargs):
        return self._draw("randint", *args, **kwargs)

    def standard_gamma(self, concentration, shape):
        if not isinstance(concentration, torch.Tensor):  # read from a host table
            self.unnamed.append("standard_gamma")
        return self.rng.standard_gamma(concentration, shape)


def _method(family):
    return importlib.import_module(f"diffsteps.methods.{family}").METHOD


def _build(cfg, run):
    """A run's method as the stages build it: a family with a model per T (DDGAN) at one T, the others without."""
    per_T = "budget" in type(cfg.method_config[run]).grid.models
    return method_class(cfg, run)(cfg, run, SHAPE[1:], T_FIXED if per_T else None)


@pytest.mark.parametrize("family", families.names())
def test_family_declaration_contract(family):
    """Every family module declares its options (named by the module), a valid schema that the registry fixes the
    family in, a grid whose models and cells are its own, and traits the sampler registry can read; its method's
    module names the same options."""
    cls = families.options_type(family)
    assert issubclass(cls, MethodOptions) and cls.family_name() == family and _method(family).options_type is cls
    schema = families.entry_schema(family)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert not jsonschema.Draft202012Validator(schema).is_valid({"family": "not-" + family})
    required = {k: [1] if k == "T" else 0.5 for k in schema.get("required", ())}  # the smallest valid entry
    options = families.parse_run("r", {"family": family, **required})
    assert type(options) is cls and isinstance(options.describe(), str)
    grid = cls.grid
    assert grid.model.startswith("{method}") and set(grid.models) <= set(grid.cells) | {"budget"}
    for key in (*grid.models.values(), *grid.cells.values()):  # a list of the study or of the run's own options
        assert key.startswith(("sampling.", "method_config.{run}.")), key
        if key.startswith("method_config."):
            assert key.rsplit(".", 1)[-1] in {f.name for f in dataclasses.fields(cls)}
    # a family runs every sampler of the study, or has one of its own (and then a fixed chain and spacing)
    assert cls.eps_prediction or (cls.own_sampler is not None and cls.own_spacing in SPACINGS)
    applies = [d.kind for d in SAMPLERS.values() if d.applies_to(cls)]
    assert applies == list(SAMPLERS) if cls.eps_prediction else applies == [SamplerSpec.parse(cls.own_sampler).kind]
    assert not cls.probed or cls.own_sampler is not None  # a probe samples the family's own chain
    assert isinstance(cls.gaussian_marginals, bool) and isinstance(cls.stochastic_reaches_data_law, bool)
    assert cls.networks >= 1 and isinstance(cls.uses_noise_schedule, bool)


@pytest.fixture(scope="module")
def schedule():
    return Schedule(make_betas("linear", 1000))


def test_every_sampler_parameter_is_a_column_of_the_row_schema():
    """The row schema (rows.py) holds every column a sampler's parameters fill: each named group of a sampler's
    grammar is a column it declares, and an identity column of every row."""
    from diffsteps.rows import IDENTITY_COLUMNS

    for decl in SAMPLERS.values():
        assert set(decl.columns) == set(re.compile(decl.grammar).groupindex) <= set(IDENTITY_COLUMNS), decl.kind


def _process(cfg, run):
    """The noise process of a run, built from its options exactly as training and sampling build it."""
    method = _build(cfg, run)
    return method.process if isinstance(method, DiffusionMethod) else None


def test_smoke_runs_cover_every_noise_process(smoke_cfg):
    covered = {type(_process(smoke_cfg, run)) for run in RUNS}
    assert covered >= {m.noise_cls for m in map(_method, families.names()) if issubclass(m, DiffusionMethod)}


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
    chain = schedule.chain(10, SPACINGS["uniform"])
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
    assert {smoke_cfg.method_config[run].family for run in RUNS} == set(families.names())


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
    rng = NamedDeviceRNG(BatchRNG(0))
    values = learner.step(x0, rng, 0, amp=False)
    assert rng.unnamed == []  # every draw of a step is made on the batch's device
    assert list(values) == list(learner.columns) and learner.columns[0] == "loss"
    assert all(v.shape == () and torch.isfinite(v) for v in values.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert model in learner.networks() and learner.health({c: float(v) for c, v in values.items()}) is None
    learner.load_state_dict(learner.state_dict())
    # a family with a chain of its own samples only that (its sampler at NFE = T); the others any sampler of the study
    own = type(method.options).own_sampler
    spec, uniform = sampler_for(SamplerSpec.parse(own or cfg.sampling.samplers[0])), SPACINGS["uniform"]
    gen = method.generate(model, T_FIXED, spec, uniform, 5, 0, batch_size=2, device=torch.device("cpu"))
    assert gen.images.shape == (5, *SHAPE[1:]) and gen.images.dtype == np.uint8 and gen.nfe == T_FIXED
    # one seed per sample: the set does not depend on the batch size
    again = method.generate(model, T_FIXED, spec, uniform, 5, 0, batch_size=5, device=torch.device("cpu"))
    assert np.abs(gen.images.astype(int) - again.images.astype(int)).max() <= 1
    # every bound cell is either computed (finite, per image, with its draws) or says why it is not defined
    for variance in ("betatilde", "beta", None):  # None: the continuous-time bound
        reason = method.nll_reason(variance)
        if reason is not None:
            assert len(reason) > 20
            continue
        chain = (3, variance, uniform) if variance else (None, None, None)
        terms = method.nll(model, gen.images, *chain, 0, batch_size=5, device=torch.device("cpu"))
        bpd = terms.bits_per_dim(int(np.prod(SHAPE[1:])))
        assert all(torch.isfinite(v).all() and v.shape == (5,) for v in bpd.values()) and terms.draws >= 1


@pytest.mark.gpu
@pytest.mark.parametrize("run", RUNS)
def test_training_steps_on_cuda_never_wait_for_the_device(run, smoke_cfg, tmp_path):
    """The loop's step on CUDA (data order, draws, learner step, EMA) never synchronises the host with the device:
    CUDA's sync debug mode turns any synchronising call into an error."""
    from diffsteps.training.loop import _Run

    cfg = dataclasses.replace(smoke_cfg, model=dataclasses.replace(smoke_cfg.model, channels=8))
    images = np.random.default_rng(0).integers(0, 256, (64, *SHAPE[1:]), dtype=np.uint8)
    train = dataclasses.replace(cfg.train, batch_size=SHAPE[0], warmup_images=0, grad_clip=1.0)
    loop = _Run(_build(cfg, run), images, train, 0, torch.device("cuda"), tmp_path / "checkpoint.pt")
    loop.train_step()  # the first step allocates and builds the device's tables
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            loop.train_step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    loop.flush()
    assert len(loop.interval) == 4
