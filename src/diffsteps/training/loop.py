"""The one training loop every method uses.

A method supplies ``build_model()`` and a :class:`~diffsteps.learners.Learner` (its optimisers and update);
the loop runs ``cfg.steps`` = ⌈images / batch_size⌉ steps on uint8 images (N, C, H, W) mapped to
x0 = images / 127.5 − 1, with

- data order: consecutive seeded permutations of the training set (epochs; a batch may span two);
- learning rates warmed up linearly over ``warmup_images``, then constant; gradients clipped to norm
  ``grad_clip`` (0 disables) (both applied by the learner);
- bf16 autocast on CUDA when ``amp`` (bf16 has float32's range, so no loss scaling); float32 on CPU;
- an EMA of the weights with decay warm-up (:mod:`.ema`), which is what ``model.pt`` keeps;
- health checks on every step's values: a non-finite value, or the learner's own verdict (DDGAN:
  a discriminator that wins every batch for too long), stops the run with :class:`TrainingDiverged`
  before that state is checkpointed, so the last checkpoint is the last good state;
- optionally *snapshots* of the EMA weights every ``snapshot_every`` steps (``snapshots.pt``), which the probe
  stage scores after training (DDGAN's domain-FID curve), so that training never runs an evaluation.

Every random number comes from a stream derived from ``seed``: the model initialisation (global
generator, seeded before ``build_model``; it also drives dropout), the data order and the learner's
draws. The last two are generators on the training device, so a step neither copies from the host nor
reads anything back (values are read in bulk at log and checkpoint steps); the numbers are reproducible
per seed on a device type. All of them, with the model, EMA and learner state, are saved every
``checkpoint_every`` steps, so a run killed after a checkpoint and started again ends with bit-identical
weights on the CPU.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..config import TrainConfig, to_plain
from ..io import atomic_torch_save, atomic_write_json, atomic_write_text, peak_memory_mb, sha256_array
from ..methods.base import Method, to_model_space
from ..rng import BatchRNG, sample_seed
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, load_ema_model, model_spec, save_checkpoint, save_model
from .ema import EMA
from ..learners import learning_rate

__all__ = ["EpochSampler", "SNAPSHOTS_NAME", "TrainResult", "TrainingDiverged", "learning_rate", "load_ema_model", "train"]

# sub-streams of a training seed (rng.sample_seed(seed, stream)); the model initialisation uses seed itself
_DATA_STREAM, _OBJECTIVE_STREAM = 1, 2
#: train-config keys that change neither the trained weights nor the log, so a resume may differ in them (``device``
#: names a choice; the resolved device's type is part of the fingerprint)
_RESUME_FREE_KEYS = ("checkpoint_every", "seeds", "replicates", "device", "threads")
SNAPSHOTS_NAME = "snapshots.pt"


log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became non-finite at ``step``; no checkpoint of that state is written."""

    def __init__(self, step: int, loss: float, checkpoint: Path | None, detail: str, advice: str):
        self.step, self.loss, self.checkpoint = step, loss, checkpoint
        kept = (f"last good checkpoint kept at {checkpoint}" if checkpoint is not None
                else "no checkpoint had been written yet")
        super().__init__(f"training diverged at step {step}: loss = {loss} ({detail}); {kept}. {advice}")


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports (train.json). ``seconds`` sums the training time of every attempt."""

    steps: int
    images_seen: int
    seconds: float
    peak_memory_mb: float
    final_loss: float
    device: str
    resumed_from_step: int


class EpochSampler:
    """Batches of indices (batch_size,) taken in order from seeded permutations of range(n), one per epoch.

    The permutations are drawn on ``device`` (where the images are), so a batch is indexed without a copy
    from the host; the order is reproducible per (seed, device type)."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        self.n, self.batch_size, self.device = n, batch_size, torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.perm = self._permutation()
        self.pos = 0

    def _permutation(self) -> torch.Tensor:
        return torch.randperm(self.n, generator=self.generator, device=self.device)

    def next(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need:
            if self.pos == self.n:
                self.perm, self.pos = self._permutation(), 0
            take = min(need, self.n - self.pos)
            parts.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm.cpu().clone(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.pos = state["perm"].to(self.device, copy=True), int(state["pos"])


def resumed_train_config(cfg: TrainConfig) -> dict[str, Any]:
    """The training config a checkpoint must agree with to be resumed (all but :data:`_RESUME_FREE_KEYS`): its
    fingerprint holds it, and the key of the resume state (:mod:`.resume`) too, so that state of another config is
    never found (a run with a new one starts from step 0)."""
    return {k: v for k, v in to_plain(cfg).items() if k not in _RESUME_FREE_KEYS}


def _fingerprint(method: Method, model: torch.nn.Module, images: np.ndarray, cfg: TrainConfig, seed: int,
                 device: torch.device) -> dict:
    """What must match for a checkpoint to be resumed: it decides every weight of the run, the device's type
    included (the data order and the objective's draws are that device's random streams)."""
    train = resumed_train_config(cfg)
    return {"method": method.name, "options": to_plain(method.options), "T": method.T, "seed": seed, "train": train,
            "device_type": device.type,
            "model_spec": model_spec(model),
            "image_shape": list(images.shape[1:]), "data_sha256": sha256_array(images)}


class _Run:
    """The mutable state of one training run and the operations on it."""

    def __init__(self, method: Method, images: np.ndarray, cfg: TrainConfig, seed: int, device: torch.device,
                 checkpoint: Path):
        self.cfg, self.device, self.checkpoint = cfg, device, checkpoint
        torch.manual_seed(seed)  # the initialisation is drawn on the CPU: the same weights on every device
        self.model = method.build_model()
        self.learner = method.learner(self.model, cfg)  # may build more networks (DDGAN's D) from the same seed
        for net in self.learner.networks():
            net.to(device)
        self.fingerprint = _fingerprint(method, self.model, images, cfg, seed, device)
        self.ema = EMA(self.model, cfg.ema_decay, cfg.ema_warmup)
        # the data order and the objective's draws come from generators on the device: no copy from the host
        # per step, which would make the host wait for the device's queue
        self.sampler = EpochSampler(len(images), cfg.batch_size, sample_seed(seed, _DATA_STREAM), device)
        self.rng = BatchRNG(sample_seed(seed, _OBJECTIVE_STREAM), device)
        self.data = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # uint8 on the device: 4× smaller
        self.amp = cfg.amp and device.type == "cuda"
        self.step = 0
        self.log: list[dict[str, float]] = []
        self.interval: list[dict[str, float]] = []  # per-step values since the last log row, checked
        self.pending: list[dict[str, torch.Tensor]] = []  # values not yet read back (no device sync every step)
        self.last_loss = math.nan
        self.seconds = 0.0
        self.has_checkpoint = False

    # ---- checkpoints

    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"fingerprint": self.fingerprint, "step": self.step, "model": self.model.state_dict(),
                "ema": self.ema.state_dict(), "learner": self.learner.state_dict(),
                "sampler": self.sampler.state_dict(),
                "rng": {"objective": self.rng.get_state(), "torch": torch.get_rng_state(), "cuda": cuda},
                "log": self.log, "interval": self.interval, "seconds": self.seconds}

    def resume(self) -> bool:
        """Load the checkpoint if there is one; True when it did."""
        state = load_checkpoint(self.checkpoint, self.fingerprint)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.learner.load_state_dict(state["learner"])
        self.sampler.load_state_dict(state["sampler"])
        self.rng.set_state(state["rng"]["objective"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"]["cuda"] is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.step, self.log = int(state["step"]), list(state["log"])
        self.interval, self.seconds = list(state["interval"]), float(state["seconds"])
        self.has_checkpoint = True
        return True

    def save(self) -> None:
        """Checkpoint the current state, after checking that it is finite (a diverged state is never saved)."""
        for net in (*self.learner.networks(), self.ema.model):
            if not all(torch.isfinite(p).all() for p in net.parameters()):
                raise self._diverged(self.step, self.last_loss, "the weights are not finite after this step")
        save_checkpoint(self.checkpoint, self.state_dict())
        self.has_checkpoint = True

    def _diverged(self, step: int, loss: float, detail: str) -> TrainingDiverged:
        return TrainingDiverged(step, loss, self.checkpoint if self.has_checkpoint else None, detail,
                                self.learner.advice)

    # ---- training

    def train_step(self) -> None:
        """One learner step on the next batch; its values are kept on the device until :meth:`flush`."""
        x0 = to_model_space(self.data[self.sampler.next()])
        values = self.learner.step(x0, self.rng, self.step, self.amp)
        self.ema.update(self.model)
        self.step += 1
        self.pending.append(values)

    def flush(self) -> None:
        """Read the pending values back; raise :class:`TrainingDiverged` at the first step with a
        non-finite value or that the learner's health check refuses."""
        if not self.pending:
            return
        columns = self.learner.columns
        values = torch.stack([torch.stack([v[c].float() for c in columns]) for v in self.pending]).cpu().tolist()
        first = self.step - len(values) + 1
        for i, row in enumerate(values):
            named = dict(zip(columns, row))
            bad = [c for c, v in named.items() if not math.isfinite(v)]
            if bad:
                raise self._diverged(first + i, named["loss"], f"{', '.join(bad)} not finite")
            verdict = self.learner.health(named)
            if verdict is not None:
                raise self._diverged(first + i, named["loss"], verdict)
            self.interval.append(named)
        self.last_loss = values[-1][0]
        self.pending.clear()

    def log_row(self) -> dict[str, float]:
        row = {"step": self.step, "images_seen": self.step * self.cfg.batch_size,
               **{c: float(np.mean([v[c] for v in self.interval])) for c in self.learner.columns},
               "lr": self.learner.lr(self.step - 1), "seconds": round(self.seconds, 3)}
        self.log.append(row)
        self.interval = []
        return row


def _check_images(images: np.ndarray, method: Method) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"train_images must be a uint8 array (N, C, H, W); got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")
    if tuple(images.shape[1:]) != tuple(method.image_shape):
        raise ValueError(f"train_images have shape {tuple(images.shape[1:])} per image, but method "
                         f"{method.name!r} was built for {tuple(method.image_shape)}")
    if len(images) == 0:
        raise ValueError("train_images is empty; the training split needs at least one image")


def _write_loss_csv(path: Path, log: list[dict[str, float]], columns: tuple[str, ...]) -> None:
    """One row per log row (a value a row lacks is written as nan)."""
    lines = [",".join(columns)] + [",".join(repr(row.get(c, math.nan)) for c in columns) for row in log]
    atomic_write_text(path, "\n".join(lines) + "\n")


def loss_columns(learner_columns: tuple[str, ...]) -> tuple[str, ...]:
    """loss.csv's header: step, images_seen, the learner's values, lr, seconds."""
    return ("step", "images_seen", *learner_columns, "lr", "seconds")


def _snapshot_path(resume_dir: Path, step: int) -> Path:
    return resume_dir / f"snapshot-{step:09d}.pt"


def _write_snapshots(resume_dir: Path, out: Path, last: int) -> None:
    """``out`` (``snapshots.pt``): {step: EMA state dict} of every snapshot up to step ``last`` (empty without)."""
    snaps = {}
    for path in sorted(resume_dir.glob("snapshot-*.pt")):
        step = int(path.stem.split("-")[1])
        if step <= last:
            snaps[step] = torch.load(path, map_location="cpu", weights_only=True)
    atomic_torch_save(out, snaps)


def train(method: Method, train_images: np.ndarray, cfg: TrainConfig, seed: int, out_dir: str | Path,
          resume_dir: str | Path, device: torch.device | str, progress: bool = True,
          snapshot_every: int = 0) -> TrainResult:
    """Train ``method`` on uint8 images (N, C, H, W) for ``cfg.steps`` steps; resume from ``resume_dir`` if it
    holds a checkpoint of the same run.

    Writes ``out_dir/model.pt`` (EMA weights) and ``out_dir/loss.csv`` (one row every ``log_every`` steps and at
    the end: step, images_seen, the learner's values averaged since the previous row, lr, training seconds so
    far) and ``out_dir/snapshots.pt`` (the EMA weights every ``snapshot_every`` steps before the last, by step;
    empty when ``snapshot_every`` is 0),
    and keeps ``resume_dir/checkpoint.pt`` with ``resume_dir/config.json`` saying which run it belongs to (the
    caller removes them once its outputs are written: :mod:`.resume`). Sets the global torch seed.
    """
    _check_images(train_images, method)
    if snapshot_every < 0:
        raise ValueError(f"snapshot_every = {snapshot_every} is invalid: must be ≥ 0 (steps; 0: no snapshots)")
    out_dir, resume_dir, device = Path(out_dir), Path(resume_dir), torch.device(device)
    batch = cfg.batch_size
    run = _Run(method, train_images, cfg, seed, device, resume_dir / CHECKPOINT_NAME)
    if not run.resume():
        atomic_write_json(resume_dir / "config.json", run.fingerprint)
    resumed_from = run.step
    # where it picked up: a killed or pre-empted job's rerun resumes (tests/cluster: pre-emption), anything else
    # (new code, new params, a finished run forced again) starts at step 0
    log.info("train %s seed %d: %s at step %d/%d", method.name, seed,
             "resumed from its checkpoint" if resumed_from else "started", resumed_from, cfg.steps)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for net in run.learner.networks():
        net.train()
    started, base_seconds = time.perf_counter(), run.seconds
    columns = loss_columns(run.learner.columns)
    try:
        _train_steps(run, method, seed, snapshot_every, started, base_seconds, resumed_from, progress)
    except TrainingDiverged:
        _write_loss_csv(out_dir / "loss.csv", run.log, columns)  # the curves up to the failure, for the report
        raise
    save_model(out_dir / "model.pt", run.ema.model, method, run.step, run.step * batch)
    _write_loss_csv(out_dir / "loss.csv", run.log, columns)
    _write_snapshots(resume_dir, out_dir / SNAPSHOTS_NAME, run.step - 1)
    return TrainResult(steps=run.step, images_seen=run.step * batch, seconds=run.seconds,
                       peak_memory_mb=peak_memory_mb(device), final_loss=run.log[-1]["loss"], device=str(device),
                       resumed_from_step=resumed_from)


def _train_steps(run: _Run, method: Method, seed: int, snapshot_every: int, started: float,
                 base_seconds: float, resumed_from: int, progress: bool) -> None:
    cfg = run.cfg
    total, batch = cfg.steps, cfg.batch_size
    with tqdm(total=total * batch, initial=run.step * batch, unit="img", unit_scale=True, file=sys.stderr,
              desc=f"train {method.run} seed {seed}", disable=not (progress and sys.stderr.isatty())) as bar:
        while run.step < total:
            run.train_step()
            bar.update(batch)
            done = run.step == total
            snapshot_due = snapshot_every > 0 and not done and run.step % snapshot_every == 0
            log_due = done or run.step % cfg.log_every == 0
            checkpoint_due = done or run.step % cfg.checkpoint_every == 0
            if log_due or checkpoint_due or snapshot_due:
                run.flush()  # a diverged state is never logged, snapshotted or checkpointed
                run.seconds = base_seconds + time.perf_counter() - started
            if snapshot_due:  # beside the checkpoint, so that a resumed run keeps the snapshots it had
                atomic_torch_save(_snapshot_path(run.checkpoint.parent, run.step),
                                  {k: v.detach().cpu() for k, v in run.ema.model.state_dict().items()})
            if log_due:
                row = run.log_row()
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
            if checkpoint_due:
                run.save()
                if bar.disable:  # no terminal (a Snakemake log file): one line per checkpoint instead
                    rate = (run.step - resumed_from) * batch / max(time.perf_counter() - started, 1e-9)
                    log.info("train %s seed %d: step %d/%d, loss %.4f, %.0f img/s, checkpoint saved", method.name,
                             seed, run.step, total, run.log[-1]["loss"] if run.log else float("nan"), rate)
