"""The one training loop every method uses.

A method supplies ``build_model()`` and ``objective()``; the loop runs ``cfg.steps`` =
⌈images / batch_size⌉ Adam steps on uint8 images (N, C, H, W) mapped to x0 = images / 127.5 − 1, with

- data order: consecutive seeded permutations of the training set (epochs; a batch may span two);
- learning rate: lr_k = lr · min(1, (k + 1) / W), W = warmup_images / batch_size (linear warm-up,
  then constant); gradients clipped to norm ``grad_clip`` (0 disables);
- bf16 autocast on CUDA when ``amp`` (bf16 has float32's range, so no loss scaling); float32 on CPU;
- an EMA of the weights with decay warm-up (:mod:`.ema`), which is what ``model.pt`` keeps.

Every random number comes from a stream derived from ``seed``: the model initialisation (global
generator, seeded before ``build_model``; it also drives dropout), the data order and the objective's
draws. All of them, with the model, EMA and optimiser, are saved every ``checkpoint_every`` steps,
so a run killed after a checkpoint and started again ends with bit-identical weights on the CPU.
"""

from __future__ import annotations

import logging
import math
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..config import TrainConfig, to_plain
from ..io import atomic_write_json, atomic_write_text, sha256_array
from ..methods import Method, to_model_space
from ..rng import BatchRNG, sample_seed
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, load_ema_model, model_spec, save_checkpoint, save_model
from .ema import EMA

__all__ = ["EpochSampler", "TrainResult", "TrainingDiverged", "learning_rate", "load_ema_model", "train"]

# sub-streams of a training seed (rng.sample_seed(seed, stream)); the model initialisation uses seed itself
_DATA_STREAM, _OBJECTIVE_STREAM = 1, 2
#: train-config keys that do not change the trained weights, so a resume may differ in them
_RESUME_FREE_KEYS = ("checkpoint_every", "seeds", "device", "threads")
LOSS_COLUMNS = ("step", "images_seen", "loss", "lr", "seconds")


log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became non-finite at ``step``; no checkpoint of that state is written."""

    def __init__(self, step: int, loss: float, checkpoint: Path | None, detail: str = "the loss is not finite"):
        self.step, self.loss, self.checkpoint = step, loss, checkpoint
        kept = (f"last good checkpoint kept at {checkpoint}" if checkpoint is not None
                else "no checkpoint had been written yet")
        super().__init__(f"training diverged at step {step}: loss = {loss} ({detail}); {kept}. "
                         "Try a lower train.lr, a longer train.warmup_images or train.grad_clip > 0.")


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
    """Batches of indices (batch_size,) taken in order from seeded permutations of range(n), one per epoch."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need:
            if self.pos == self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.generator), 0
            take = min(need, self.n - self.pos)
            parts.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])


def learning_rate(k: int, cfg: TrainConfig) -> float:
    """lr_k = lr · min(1, (k + 1) / W) for optimiser step k = 0, 1, ..., W = warmup_images / batch_size."""
    warm = cfg.warmup_images / cfg.batch_size
    return cfg.lr * min(1.0, (k + 1) / warm) if warm > 0 else cfg.lr


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated by tensors, else the process's peak resident set size, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def _fingerprint(method: Method, model: torch.nn.Module, images: np.ndarray, cfg: TrainConfig, seed: int) -> dict:
    """What must match for a checkpoint to be resumed: it decides every weight of the run."""
    train = {k: v for k, v in to_plain(cfg).items() if k not in _RESUME_FREE_KEYS}
    return {"method": method.name, "options": to_plain(method.options), "seed": seed, "train": train,
            "model_spec": model_spec(model),
            "image_shape": list(images.shape[1:]), "data_sha256": sha256_array(images)}


class _Run:
    """The mutable state of one training run and the operations on it."""

    def __init__(self, method: Method, images: np.ndarray, cfg: TrainConfig, seed: int, device: torch.device,
                 checkpoint: Path):
        self.cfg, self.device, self.checkpoint = cfg, device, checkpoint
        torch.manual_seed(seed)  # the initialisation is drawn on the CPU: the same weights on every device
        self.model = method.build_model().to(device)
        self.fingerprint = _fingerprint(method, self.model, images, cfg, seed)
        self.ema = EMA(self.model, cfg.ema_decay, cfg.ema_warmup)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.objective = method.objective()
        self.sampler = EpochSampler(len(images), cfg.batch_size, sample_seed(seed, _DATA_STREAM))
        self.rng = BatchRNG(sample_seed(seed, _OBJECTIVE_STREAM))
        self.data = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # uint8 on the device: 4× smaller
        self.amp = cfg.amp and device.type == "cuda"
        self.step = 0
        self.log: list[dict[str, float]] = []
        self.interval: list[float] = []  # losses since the last log row, checked finite
        self.pending: list[torch.Tensor] = []  # losses not yet read back (avoids a device sync every step)
        self.last_loss = math.nan
        self.seconds = 0.0
        self.has_checkpoint = False

    # ---- checkpoints

    def state_dict(self) -> dict[str, Any]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return {"fingerprint": self.fingerprint, "step": self.step, "model": self.model.state_dict(),
                "ema": self.ema.state_dict(), "optimizer": self.optimizer.state_dict(),
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
        self.optimizer.load_state_dict(state["optimizer"])
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
        for net in (self.model, self.ema.model):
            if not all(torch.isfinite(p).all() for p in net.parameters()):
                raise self._diverged(self.step, self.last_loss, "the weights are not finite after this step")
        save_checkpoint(self.checkpoint, self.state_dict())
        self.has_checkpoint = True

    def _diverged(self, step: int, loss: float, detail: str) -> TrainingDiverged:
        return TrainingDiverged(step, loss, self.checkpoint if self.has_checkpoint else None, detail)

    # ---- training

    def train_step(self) -> None:
        """One optimiser step on the next batch; its loss is kept on the device until :meth:`flush`."""
        idx = self.sampler.next()
        x0 = to_model_space(self.data[idx.to(self.device)])
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, self.cfg)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = self.objective(self.model, x0, self.rng).float().mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.ema.update(self.model)
        self.step += 1
        self.pending.append(loss.detach())

    def flush(self) -> None:
        """Read the pending losses back; raise :class:`TrainingDiverged` at the first non-finite one."""
        if not self.pending:
            return
        values = torch.stack(self.pending).cpu().tolist()
        first = self.step - len(values) + 1
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise self._diverged(first + i, v, "the loss is not finite")
        self.interval.extend(values)
        self.last_loss = values[-1]
        self.pending.clear()

    def log_row(self) -> dict[str, float]:
        row = {"step": self.step, "images_seen": self.step * self.cfg.batch_size,
               "loss": float(np.mean(self.interval)), "lr": learning_rate(self.step - 1, self.cfg),
               "seconds": round(self.seconds, 3)}
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


def _write_loss_csv(path: Path, log: list[dict[str, float]]) -> None:
    lines = [",".join(LOSS_COLUMNS)] + [",".join(repr(row[c]) for c in LOSS_COLUMNS) for row in log]
    atomic_write_text(path, "\n".join(lines) + "\n")


def train(method: Method, train_images: np.ndarray, cfg: TrainConfig, seed: int, out_dir: str | Path,
          resume_dir: str | Path, device: torch.device | str, progress: bool = True) -> TrainResult:
    """Train ``method`` on uint8 images (N, C, H, W) for ``cfg.steps`` steps; resume from ``resume_dir`` if it
    holds a checkpoint of the same run.

    Writes ``out_dir/model.pt`` (EMA weights) and ``out_dir/loss.csv`` (one row every ``log_every`` steps and at
    the end: step, images_seen, mean loss since the previous row, lr, training seconds so far), and keeps
    ``resume_dir/checkpoint.pt`` (a re-run of a finished run only rewrites the outputs) with
    ``resume_dir/config.json`` saying which run it belongs to. Sets the global torch seed.
    """
    _check_images(train_images, method)
    out_dir, resume_dir, device = Path(out_dir), Path(resume_dir), torch.device(device)
    total, batch = cfg.steps, cfg.batch_size
    run = _Run(method, train_images, cfg, seed, device, resume_dir / CHECKPOINT_NAME)
    if not run.resume():
        atomic_write_json(resume_dir / "config.json", run.fingerprint)
    resumed_from = run.step
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run.model.train()
    started, base_seconds = time.perf_counter(), run.seconds
    with tqdm(total=total * batch, initial=run.step * batch, unit="img", unit_scale=True, file=sys.stderr,
              desc=f"train {method.run} seed {seed}", disable=not (progress and sys.stderr.isatty())) as bar:
        while run.step < total:
            run.train_step()
            bar.update(batch)
            done = run.step == total
            log_due = done or run.step % cfg.log_every == 0
            checkpoint_due = done or run.step % cfg.checkpoint_every == 0
            if log_due or checkpoint_due:
                run.flush()
                run.seconds = base_seconds + time.perf_counter() - started
            if log_due:
                row = run.log_row()
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
            if checkpoint_due:
                run.save()
                if bar.disable:  # no terminal (a Snakemake log file): one line per checkpoint instead
                    rate = (run.step - resumed_from) * batch / max(time.perf_counter() - started, 1e-9)
                    log.info("train %s seed %d: step %d/%d, loss %.4f, %.0f img/s, checkpoint saved", method.name,
                             seed, run.step, total, run.log[-1]["loss"] if run.log else float("nan"), rate)
    save_model(out_dir / "model.pt", run.ema.model, method.name, run.step, run.step * batch)
    _write_loss_csv(out_dir / "loss.csv", run.log)
    return TrainResult(steps=run.step, images_seen=run.step * batch, seconds=run.seconds,
                       peak_memory_mb=peak_memory_mb(device), final_loss=run.log[-1]["loss"], device=str(device),
                       resumed_from_step=resumed_from)
