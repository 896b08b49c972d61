"""The generic training loop on a tiny DDPM: learning, determinism, in-process resume, divergence."""

from __future__ import annotations

import csv
import dataclasses
import itertools

import numpy as np
import pytest
import torch

from diffsteps.methods.ddpm import DDPM
from diffsteps.training.checkpoint import ModelFileError, ResumeMismatch, load_ema_model
from diffsteps.training.loop import TrainingDiverged, train
from diffsteps.training.loop import EpochSampler, learning_rate

CPU = torch.device("cpu")
SHAPE = (1, 8, 8)
STEPS = 30


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these tiny steps gain nothing from two, and spin-waiting threads make them
    many times slower when other processes share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (100, *SHAPE), dtype=np.uint8)


@pytest.fixture(scope="module")
def tcfg(smoke_cfg):
    return dataclasses.replace(smoke_cfg.train, images=32 * STEPS, batch_size=32, warmup_images=320,
                               checkpoint_every=5, log_every=5)


class Interrupted(Exception):
    pass


class Scripted(DDPM):
    """DDPM whose objective misbehaves at one (1-based) step; ``name`` stays 'ddpm', so runs stay resumable."""

    def __init__(self, cfg, shape, at: int, action: str):
        super().__init__(cfg, "ddpm", shape)
        self.at, self.action = at, action

    def objective(self):
        inner, calls = super().objective(), itertools.count(1)

        def objective(model, x0, rng):
            loss = inner(model, x0, rng)
            if next(calls) != self.at:
                return loss
            if self.action == "raise":
                raise Interrupted
            if self.action == "nan_loss":
                return loss * float("nan")
            p = next(model.parameters()).sum()
            return loss + torch.sqrt(p - p.detach())  # finite value, infinite gradient → NaN weights

        return objective


def run(cfg, tcfg, images, root, seed=0, method=None):
    method = method or DDPM(cfg, "ddpm", SHAPE)
    return train(method, images, tcfg, seed, root / "out", root / "resume", CPU, progress=False)


def ema_weights(root):
    return torch.load(root / "out" / "model.pt", weights_only=True)["ema"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def losses(root):
    with open(root / "out" / "loss.csv") as fh:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def straight(smoke_cfg, tcfg, images, tmp_path_factory):
    root = tmp_path_factory.mktemp("straight")
    return run(smoke_cfg, tcfg, images, root), root


def test_outputs_and_result(straight, smoke_cfg):
    res, root = straight
    assert (res.steps, res.images_seen, res.resumed_from_step, res.device) == (STEPS, 32 * STEPS, 0, "cpu")
    assert res.seconds > 0 and res.peak_memory_mb > 0 and np.isfinite(res.final_loss)
    saved = torch.load(root / "out" / "model.pt", weights_only=True)
    assert saved["method"] == "ddpm" and saved["steps"] == STEPS and saved["images_seen"] == 32 * STEPS
    assert saved["model_spec"]["image_size"] == 8 and saved["model_spec"]["in_channels"] == 1
    rows = losses(root)
    assert [s for s, _ in rows] == list(range(5, STEPS + 1, 5))
    assert rows[-1][1] == pytest.approx(res.final_loss)
    with open(root / "out" / "loss.csv") as fh:
        assert fh.readline().strip() == "step,images_seen,loss,lr,seconds"
    assert (root / "resume" / "checkpoint.pt").exists() and (root / "resume" / "config.json").exists()


def test_loss_decreases(straight):
    _, root = straight
    values = [v for _, v in losses(root)]
    # the untrained UNet predicts ε̂ = 0 (zero-initialised head), so the loss starts near E‖ε‖² = 1
    assert values[0] > 0.8
    assert np.mean(values[-2:]) < 0.75 * values[0]


def test_same_seed_same_weights_other_seed_differs(straight, smoke_cfg, tcfg, images, tmp_path):
    _, root = straight
    run(smoke_cfg, tcfg, images, tmp_path / "again")
    assert_same_weights(ema_weights(root), ema_weights(tmp_path / "again"))
    run(smoke_cfg, dataclasses.replace(tcfg, images=32 * 5), images, tmp_path / "seed1", seed=1)
    first = next(iter(ema_weights(root)))
    assert not torch.equal(ema_weights(tmp_path / "seed1")[first], ema_weights(root)[first])


def test_resume_after_exception_is_bit_identical(straight, smoke_cfg, tcfg, images, tmp_path):
    _, root = straight
    with pytest.raises(Interrupted):  # dies during step 18: the checkpoint of step 15 is the latest
        run(smoke_cfg, tcfg, images, tmp_path, method=Scripted(smoke_cfg, SHAPE, at=18, action="raise"))
    assert not (tmp_path / "out" / "model.pt").exists()
    res = run(smoke_cfg, tcfg, images, tmp_path)
    assert res.resumed_from_step == 15 and res.steps == STEPS
    assert_same_weights(ema_weights(root), ema_weights(tmp_path))
    assert losses(root) == losses(tmp_path)


def test_finished_run_only_rewrites_outputs(straight, smoke_cfg, tcfg, images):
    _, root = straight
    before = ema_weights(root)
    (root / "out" / "model.pt").unlink()
    res = run(smoke_cfg, tcfg, images, root)
    assert res.resumed_from_step == STEPS
    assert_same_weights(before, ema_weights(root))


@pytest.mark.parametrize("action, at, bad_step, kept_step", [("nan_loss", 13, 13, 10), ("nan_grad", 10, 10, 5)])
def test_divergence_keeps_last_good_checkpoint(straight, smoke_cfg, tcfg, images, tmp_path, action, at, bad_step,
                                               kept_step):
    _, root = straight
    with pytest.raises(TrainingDiverged) as info:
        run(smoke_cfg, tcfg, images, tmp_path, method=Scripted(smoke_cfg, SHAPE, at=at, action=action))
    ckpt = tmp_path / "resume" / "checkpoint.pt"
    assert info.value.step == bad_step and info.value.checkpoint == ckpt
    assert f"step {bad_step}" in str(info.value) and f"last good checkpoint kept at {ckpt}" in str(info.value)
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == kept_step
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "out" / "model.pt").exists()
    # the kept state is exactly the good run's: resuming reproduces the uninterrupted weights
    run(smoke_cfg, tcfg, images, tmp_path)
    assert_same_weights(ema_weights(root), ema_weights(tmp_path))


def test_divergence_before_first_checkpoint(smoke_cfg, tcfg, images, tmp_path):
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written yet") as info:
        run(smoke_cfg, tcfg, images, tmp_path, method=Scripted(smoke_cfg, SHAPE, at=2, action="nan_loss"))
    assert info.value.step == 2 and info.value.checkpoint is None


def test_resume_refuses_another_run(straight, smoke_cfg, tcfg, images, tmp_path):
    _, root = straight
    with pytest.raises(ResumeMismatch, match="seed"):
        train(DDPM(smoke_cfg, "ddpm", SHAPE), images, tcfg, 1, tmp_path, root / "resume", CPU, progress=False)
    with pytest.raises(ResumeMismatch, match="data_sha256"):
        train(DDPM(smoke_cfg, "ddpm", SHAPE), images[:50], tcfg, 0, tmp_path, root / "resume", CPU, progress=False)


def test_load_ema_model(straight, smoke_cfg, tmp_path):
    _, root = straight
    model = load_ema_model(DDPM(smoke_cfg, "ddpm", SHAPE), root / "out" / "model.pt", CPU)
    assert not model.training
    assert_same_weights(model.state_dict(), ema_weights(root))
    torch.save({"status": "failed", "error": "boom"}, tmp_path / "model.pt")
    with pytest.raises(ModelFileError, match="training failed: boom"):
        load_ema_model(DDPM(smoke_cfg, "ddpm", SHAPE), tmp_path / "model.pt", CPU)
    with pytest.raises(ModelFileError, match="does not match"):
        load_ema_model(DDPM(smoke_cfg, "ddpm", (1, 16, 16)), root / "out" / "model.pt", CPU)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_ema_model(DDPM(smoke_cfg, "ddpm", SHAPE), tmp_path / "absent.pt", CPU)


def test_rejects_images_of_the_wrong_shape(smoke_cfg, tcfg, tmp_path):
    with pytest.raises(ValueError, match=r"\(1, 16, 16\).*\(1, 8, 8\)"):
        train(DDPM(smoke_cfg, "ddpm", SHAPE), np.zeros((4, 1, 16, 16), np.uint8), tcfg, 0, tmp_path, tmp_path, CPU)
    with pytest.raises(ValueError, match="uint8"):
        train(DDPM(smoke_cfg, "ddpm", SHAPE), np.zeros((4, *SHAPE), np.float32), tcfg, 0, tmp_path, tmp_path, CPU)


def test_learning_rate_warmup(tcfg):
    cfg = dataclasses.replace(tcfg, lr=1e-3, warmup_images=320, batch_size=32)  # W = 10 steps
    assert learning_rate(0, cfg) == pytest.approx(1e-4)
    assert learning_rate(4, cfg) == pytest.approx(5e-4)
    assert learning_rate(9, cfg) == learning_rate(500, cfg) == 1e-3
    assert learning_rate(0, dataclasses.replace(cfg, warmup_images=0)) == 1e-3


def test_epoch_sampler_permutes_and_round_trips():
    sampler = EpochSampler(10, 4, seed=3)
    drawn = torch.cat([sampler.next() for _ in range(5)])  # 20 indices = exactly two epochs
    assert sorted(drawn[:10].tolist()) == sorted(drawn[10:].tolist()) == list(range(10))
    state = sampler.state_dict()
    ahead = [sampler.next() for _ in range(3)]
    other = EpochSampler(10, 4, seed=99)
    other.load_state_dict(state)
    assert all(torch.equal(a, other.next()) for a in ahead)


def test_vdm_resume_is_bit_identical(smoke_cfg, tcfg, images, tmp_path):
    """VDM's learned schedule (EMA included), its variance-objective gradients and its low-discrepancy
    times resume bit-identically as well: nothing of its state lives outside the checkpoint."""
    from diffsteps.methods.vdm import VDM

    class Dies(VDM):
        def objective(self):
            inner, calls = super().objective(), itertools.count(1)

            def objective(model, x0, rng):
                if next(calls) == 8:
                    raise Interrupted
                return inner(model, x0, rng)

            return objective

    short = dataclasses.replace(tcfg, images=32 * 12)
    run(smoke_cfg, short, images, tmp_path / "straight", method=VDM(smoke_cfg, "vdm", SHAPE))
    with pytest.raises(Interrupted):  # dies during step 8: the checkpoint of step 5 is the latest
        run(smoke_cfg, short, images, tmp_path / "killed", method=Dies(smoke_cfg, "vdm", SHAPE))
    res = run(smoke_cfg, short, images, tmp_path / "killed", method=VDM(smoke_cfg, "vdm", SHAPE))
    assert res.resumed_from_step == 5 and res.steps == 12
    assert_same_weights(ema_weights(tmp_path / "straight"), ema_weights(tmp_path / "killed"))
    assert any(k.startswith("gamma.") for k in ema_weights(tmp_path / "killed"))
    assert losses(tmp_path / "straight") == losses(tmp_path / "killed")


def test_a_compiled_training_step_trains_the_same_weights(straight, smoke_cfg, tcfg, images, tmp_path, monkeypatch):
    """train.compile runs the step through torch.compile (here its graph capture and autograd without code
    generation, which takes minutes on a CPU) and ends with the eager run's weights, to float tolerance."""
    from diffsteps.models import compiling

    monkeypatch.setattr(compiling, "BACKEND", "aot_eager")
    torch._dynamo.reset()
    counted = torch._dynamo.utils.counters
    counted.clear()
    run(smoke_cfg, dataclasses.replace(tcfg, compile=True), images, tmp_path)
    assert counted["stats"]["unique_graphs"] >= 1  # the network did go through torch.compile
    eager, compiled = ema_weights(straight[1]), ema_weights(tmp_path)
    assert eager.keys() == compiled.keys()
    for k in eager:
        torch.testing.assert_close(compiled[k], eager[k], rtol=1e-4, atol=1e-5, msg=k)


def test_a_checkpoint_resumes_only_on_the_device_type_that_wrote_it(smoke_cfg, tcfg, images):
    """The data order and the objective's draws are the training device's random streams, so the device's type is
    part of what a checkpoint is checked against (beside the resume key, tests/training/test_resume.py)."""
    from diffsteps.training.loop import _fingerprint

    method = DDPM(smoke_cfg, "ddpm", SHAPE)
    model = method.build_model()
    on = {d: _fingerprint(method, model, images, tcfg, 0, torch.device(d)) for d in ("cpu", "cuda")}
    assert [k for k in on["cpu"] if on["cpu"][k] != on["cuda"][k]] == ["device_type"]
