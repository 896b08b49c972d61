"""DDGAN through the training loop: the AdversarialLearner's resume, collapse rule, divergence checks,
its loss.csv columns and EMA snapshots, and a short real run on digits whose probe beats the untrained generator."""

from __future__ import annotations

import csv
import dataclasses
import math

import numpy as np
import pytest
import torch

from diffsteps.methods.ddgan import DDGAN
from diffsteps.learners import AdversarialLearner
from diffsteps.training.loop import TrainingDiverged, train

CPU = torch.device("cpu")
SHAPE = (1, 8, 8)
STEPS = 12
T = 2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: deterministic reductions and no spin-waiting on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def with_options(cfg, **options):
    """The study config with the ddgan run's options replaced."""
    runs = dict(cfg.method_config)
    runs["ddgan"] = dataclasses.replace(runs["ddgan"], **options)
    return dataclasses.replace(cfg, method_config=runs)


@pytest.fixture(scope="module")
def cfg(smoke_cfg):
    """The smoke preset with a tinier network (8 channels)."""
    return dataclasses.replace(smoke_cfg, model=dataclasses.replace(smoke_cfg.model, channels=8))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (100, *SHAPE), dtype=np.uint8)


@pytest.fixture(scope="module")
def tcfg(cfg):
    return dataclasses.replace(cfg.train, images=32 * STEPS, batch_size=32, warmup_images=64, checkpoint_every=4,
                               log_every=4)


class Interrupted(Exception):
    pass


class Scripted(DDGAN):
    """DDGAN whose learner misbehaves; ``script(step, values)`` sees the 1-based global step before
    (values None) and after the real update and may raise or overwrite the returned values. ``name``
    stays 'ddgan' and the options are the run's, so its checkpoints resume into a plain DDGAN."""

    def __init__(self, cfg, script, T=T):
        super().__init__(cfg, "ddgan", SHAPE, T)
        self.script = script

    def learner(self, model, cfg):
        learner = super().learner(model, cfg)
        inner = learner.step

        def step(x0, rng, k, amp):
            self.script(k + 1, None)
            values = inner(x0, rng, k, amp)
            self.script(k + 1, values)
            return values

        learner.step = step
        return learner


def raise_at(at):
    def script(step, values):
        if step == at and values is None:
            raise Interrupted

    return script


def pin_from(first, die_at=None):
    """d_accuracy reported as 1 from step ``first`` on; optionally die before step ``die_at``."""

    def script(step, values):
        if values is None:
            if step == die_at:
                raise Interrupted
        elif step >= first:
            values["d_accuracy"] = torch.tensor(1.0)

    return script


def run(cfg, tcfg, images, root, method=None, **kw):
    method = method or DDGAN(cfg, "ddgan", SHAPE, T)
    return train(method, images, tcfg, 0, root / "out", root / "resume", CPU, progress=False, **kw)


def rows(root):
    with open(root / "out" / "loss.csv") as fh:
        return list(csv.DictReader(fh))


def header(root):
    with open(root / "out" / "loss.csv") as fh:
        return fh.readline().strip().split(",")


def checkpoint(root):
    return torch.load(root / "resume" / "checkpoint.pt", weights_only=True)


def assert_identical(a, b, where="state"):
    """Recursive bit-equality of state dicts (tensors, numbers, nested dicts and lists)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def straight(cfg, tcfg, images, tmp_path_factory):
    root = tmp_path_factory.mktemp("straight")
    return run(cfg, tcfg, images, root), root


# ---- 1. resume


def test_adversarial_resume_is_bit_identical(straight, cfg, tcfg, images, tmp_path):
    res_a, a = straight
    with pytest.raises(Interrupted):  # dies during step 10: the checkpoint of step 8 is the latest
        run(cfg, tcfg, images, tmp_path, method=Scripted(cfg, raise_at(10)))
    assert checkpoint(tmp_path)["step"] == 8
    assert not (tmp_path / "out" / "model.pt").exists()
    res_b = run(cfg, tcfg, images, tmp_path)
    assert res_b.resumed_from_step == 8 and res_b.steps == res_a.steps == STEPS
    ema_a = torch.load(a / "out" / "model.pt", weights_only=True)["ema"]
    ema_b = torch.load(tmp_path / "out" / "model.pt", weights_only=True)["ema"]
    assert_identical(ema_a, ema_b, "ema")
    ck_a, ck_b = checkpoint(a), checkpoint(tmp_path)
    assert ck_a["step"] == ck_b["step"] == STEPS
    # the discriminator, both optimisers and the collapse counter: everything the learner owns
    assert set(ck_a["learner"]) == {"discriminator", "opt_g", "opt_d", "pinned"}
    assert_identical(ck_a["learner"], ck_b["learner"], "learner")
    assert_identical(ck_a["model"], ck_b["model"], "model")
    assert_identical(ck_a["ema"], ck_b["ema"], "ema_state")
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(rows(a)) == strip(rows(tmp_path))
    assert res_a.final_loss == res_b.final_loss


# ---- 2. collapse


def test_pinned_discriminator_stops_training(cfg, tcfg, images, tmp_path):
    """d_accuracy = 1 from step 5 on with collapse_steps = 3: the third pinned step (7) fails. Steps 5–6
    are flushed (and logged) at step 6; the failure is found at the flush of step 8, before its checkpoint."""
    cfg3 = with_options(cfg, collapse_steps=3)
    short = dataclasses.replace(tcfg, log_every=2)
    with pytest.raises(TrainingDiverged) as info:
        run(cfg3, short, images, tmp_path, method=Scripted(cfg3, pin_from(5)))
    ckpt = tmp_path / "resume" / "checkpoint.pt"
    msg = str(info.value)
    assert info.value.step == 7 and "training diverged at step 7" in msg
    assert "discriminator accuracy pinned at 1 for 3 consecutive steps" in msg and "collapse_steps = 3" in msg
    assert info.value.checkpoint == ckpt and f"last good checkpoint kept at {ckpt}" in msg
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 4 < info.value.step  # the last good state, not the collapsed one
    assert state["learner"]["pinned"] == 0
    assert all(torch.isfinite(v).all() for v in state["learner"]["discriminator"].values())
    assert not (tmp_path / "out" / "model.pt").exists()
    logged = rows(tmp_path)
    assert header(tmp_path) == ["step", "images_seen", "loss", "d_loss", "r1", "d_accuracy", "lr", "seconds"]
    assert [int(r["step"]) for r in logged] == [2, 4, 6]
    assert float(logged[-1]["d_accuracy"]) == 1.0 and float(logged[0]["d_accuracy"]) < 1.0


def test_pinned_count_before_first_checkpoint(cfg, tcfg, images, tmp_path):
    cfg3 = with_options(cfg, collapse_steps=3)
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written yet") as info:
        run(cfg3, tcfg, images, tmp_path, method=Scripted(cfg3, pin_from(1)))
    assert info.value.step == 3 and info.value.checkpoint is None
    assert "collapse_steps = 3" in str(info.value)
    assert header(tmp_path)[:3] == ["step", "images_seen", "loss"] and rows(tmp_path) == []


def test_pinned_count_survives_resume(cfg, tcfg, images, tmp_path):
    """Steps 3–4 pinned, checkpoint at 4 (pinned = 2), killed in step 5; the resumed run pins again and
    fails at step 5 (2 + 1 = 3), not at step 7 as it would with a counter reset by the restart."""
    cfg3 = with_options(cfg, collapse_steps=3)
    with pytest.raises(Interrupted):
        run(cfg3, tcfg, images, tmp_path, method=Scripted(cfg3, pin_from(3, die_at=5)))
    assert checkpoint(tmp_path)["learner"]["pinned"] == 2
    with pytest.raises(TrainingDiverged, match="pinned at 1 for 3 consecutive") as info:
        run(cfg3, tcfg, images, tmp_path, method=Scripted(cfg3, pin_from(1)))
    assert info.value.step == 5


def test_health_counts_consecutive_pinned_steps(cfg, tcfg):
    method = DDGAN(with_options(cfg, collapse_steps=3), "ddgan", SHAPE, T)
    torch.manual_seed(0)
    learner = method.learner(method.build_model(), tcfg)
    assert isinstance(learner, AdversarialLearner) and learner.collapse_steps == 3
    assert learner.health({"d_accuracy": 1.0}) is None and learner.pinned == 1
    assert learner.health({"d_accuracy": 0.97}) is None and learner.pinned == 0  # one normal step resets it
    for _ in range(2):
        assert learner.health({"d_accuracy": 1.0}) is None
    assert learner.health({"d_accuracy": 0.5}) is None and learner.pinned == 0
    assert learner.health({"d_accuracy": 1.0}) is None
    assert learner.health({"d_accuracy": 1.0}) is None
    verdict = learner.health({"d_accuracy": 1.0})
    assert verdict is not None and "pinned at 1 for 3 consecutive steps" in verdict and "collapse_steps = 3" in verdict
    # the counter travels with the learner's state
    state = learner.state_dict()
    other = method.learner(method.build_model(), tcfg)
    other.load_state_dict(state)
    assert other.pinned == 3


# ---- 3. non-finite discriminator values


@pytest.mark.parametrize("column, value", [("d_loss", math.nan), ("r1", math.inf)])
def test_non_finite_discriminator_value_stops_training(cfg, tcfg, images, tmp_path, column, value):
    def script(step, values):
        if values is not None and step == 6:
            values[column] = torch.tensor(value)

    with pytest.raises(TrainingDiverged) as info:
        run(cfg, tcfg, images, tmp_path, method=Scripted(cfg, script))
    msg = str(info.value)
    assert info.value.step == 6 and f"({column} not finite)" in msg
    assert "lr_g/lr_d" in msg and "train.lr" not in msg  # the advice is the GAN's own: it has no train.lr
    assert math.isfinite(info.value.loss)  # the generator's loss was fine: only the named column is reported
    assert checkpoint(tmp_path)["step"] == 4 and info.value.checkpoint == tmp_path / "resume" / "checkpoint.pt"
    assert [int(r["step"]) for r in rows(tmp_path)] == [4]


# ---- 4. loss.csv and the probe


def test_loss_csv_columns_and_lazy_r1(cfg, tcfg, images, tmp_path):
    """Every step logged (log_every = 1): R1 (lazy_reg = 2) is applied on steps k = 0, 2, 4 (logged as
    steps 1, 3, 5) and is exactly 0 between them."""
    assert cfg.method_config["ddgan"].lazy_reg == 2
    every = dataclasses.replace(tcfg, images=32 * 6, log_every=1, warmup_images=0)
    res = run(cfg, every, images, tmp_path)
    assert header(tmp_path) == ["step", "images_seen", "loss", "d_loss", "r1", "d_accuracy", "lr", "seconds"]
    logged = rows(tmp_path)
    assert [int(r["step"]) for r in logged] == list(range(1, 7))
    assert [int(r["images_seen"]) for r in logged] == [32 * s for s in range(1, 7)]
    r1 = [float(r["r1"]) for r in logged]
    assert all(v > 0 for v in r1[0::2]) and all(v == 0 for v in r1[1::2])
    assert all(0 <= float(r["d_accuracy"]) <= 1 for r in logged)
    assert all(float(r["d_loss"]) > 0 and float(r["loss"]) > 0 for r in logged)
    assert all(float(r["lr"]) == cfg.method_config["ddgan"].lr_g for r in logged)  # lr_g, no warm-up
    seconds = [float(r["seconds"]) for r in logged]
    assert seconds == sorted(seconds) and seconds[-1] == round(res.seconds, 3)
    assert float(logged[-1]["loss"]) == pytest.approx(res.final_loss)


def test_r1_positive_on_every_interval_with_a_regularised_step(straight):
    _, root = straight
    assert all(float(r["r1"]) > 0 for r in rows(root))  # every 4-step interval holds two lazy R1 steps


def test_snapshots_are_the_ema_weights_every_snapshot_every_steps(cfg, tcfg, images, tmp_path):
    """snapshots.pt holds the EMA weights at steps 5 and 10 of a 12-step run (not the last: that is model.pt), each
    bit-equal to the final EMA of a run stopped there; without snapshots the file is empty."""
    run(cfg, tcfg, images, tmp_path / "a", snapshot_every=5)
    snaps = torch.load(tmp_path / "a" / "out" / "snapshots.pt", weights_only=True)
    assert sorted(snaps) == [5, 10]
    run(cfg, dataclasses.replace(tcfg, images=32 * 10), images, tmp_path / "b")
    assert_identical(snaps[10], torch.load(tmp_path / "b" / "out" / "model.pt", weights_only=True)["ema"])
    assert torch.load(tmp_path / "b" / "out" / "snapshots.pt", weights_only=True) == {}
    with pytest.raises(ValueError, match="snapshot_every = -1"):
        run(cfg, tcfg, images, tmp_path / "c", snapshot_every=-1)


def test_snapshots_survive_a_resume(cfg, tcfg, images, tmp_path):
    """A run interrupted in step 7 (checkpoint at 4, snapshot at 5) and resumed keeps the snapshots of a straight
    run."""
    with pytest.raises(Interrupted):
        run(cfg, tcfg, images, tmp_path / "k", method=Scripted(cfg, raise_at(7)), snapshot_every=5)
    run(cfg, tcfg, images, tmp_path / "k", snapshot_every=5)
    run(cfg, tcfg, images, tmp_path / "s", snapshot_every=5)
    assert_identical(torch.load(tmp_path / "k" / "out" / "snapshots.pt", weights_only=True),
                     torch.load(tmp_path / "s" / "out" / "snapshots.pt", weights_only=True))


# ---- 5. real training on digits


@pytest.mark.slow
def test_short_gan_training_on_digits_improves_domain_fid(smoke_cfg, tmp_path):
    """A pure GAN (T = 1) trained for 300 steps of 32 digits: the domain FID of 256 samples of its EMA
    generator is under half that of the untrained generator (same sampling seeds); ~30 s on one thread."""
    from diffsteps.data.datasets import load_split, prepare
    from diffsteps.features.classifier import train_domain_classifier
    from diffsteps.features.extract import DOMAIN_EXTRACTOR
    from diffsteps.metrics.refstats import reference_stats
    from diffsteps.stages.probe import generator_fid
    from diffsteps.training.checkpoint import load_ema_model

    steps, batch = 300, 32
    record = prepare(smoke_cfg.data, tmp_path / "data")
    x_train, y_train = load_split(tmp_path / "data" / "train.npz")
    x_held, y_held = load_split(tmp_path / "data" / "heldout.npz")
    weights = tmp_path / "domain.pt"
    info = train_domain_classifier(x_train, y_train, x_held, y_held, smoke_cfg.evaluation.domain, weights,
                                   dataset="digits")
    assert info["accuracy_ok"], info
    split_sha = record["sha256"]["train"]
    reference_stats(x_train, split_sha, x_held, record["sha256"]["heldout"], DOMAIN_EXTRACTOR, weights,
                    tmp_path / "stats.npz", n=None, n_heldout=None, seed=0, batch_size=smoke_cfg.evaluation.batch_size)

    cfg = with_options(smoke_cfg, lr_g=5e-4, lr_d=5e-4)
    method = DDGAN(cfg, "ddgan", x_train.shape[1:], 1)
    ref = dict(np.load(tmp_path / "stats.npz"))

    def probe(model):  # the probe stage's FID of 256 samples
        return generator_fid(method, model, {"mu": ref["mu"], "sigma": ref["sigma"]}, weights, 256, cfg, CPU)

    torch.manual_seed(0)  # the loop's initialisation for training seed 0
    untrained = probe(method.build_model())

    tcfg = dataclasses.replace(cfg.train, images=batch * steps, batch_size=batch, warmup_images=0,
                               checkpoint_every=steps, log_every=50)
    res = train(method, x_train, tcfg, 0, tmp_path / "out", tmp_path / "resume", CPU, progress=False,
                snapshot_every=100)
    model = load_ema_model(method, tmp_path / "out" / "model.pt", CPU)
    trained = probe(model)
    snaps = torch.load(tmp_path / "out" / "snapshots.pt", weights_only=True)
    assert res.steps == steps and math.isfinite(res.final_loss) and sorted(snaps) == [100, 200]
    model.load_state_dict(snaps[100])
    early = probe(model)
    assert max(float(r["d_accuracy"]) for r in rows(tmp_path)) < 1.0  # no collapse
    assert trained < 0.5 * untrained and early < untrained, (trained, early, untrained)
