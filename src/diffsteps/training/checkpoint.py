"""On-disk formats of training: the resumable checkpoint and the final ``model.pt``.

``checkpoint.pt`` (in the resume directory) holds everything that determines the rest of a run —
model, EMA, learner (optimisers, extra networks), step, data-order sampler, every RNG state, the loss log and the elapsed
seconds — plus a *fingerprint* of what the run was started with, so a run never resumes into a
checkpoint of another configuration or data set.

``model.pt`` (in the output directory) holds only what sampling needs:
``{"ema": state_dict, "model_spec": dict | None, "method": str, "T": int | None, "steps": int,
"images_seen": int}`` (T: the step count of a model per T, as DDGAN has).
Both are written atomically and read with ``weights_only=True`` (no code runs on load).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import to_plain
from ..io import atomic_torch_save, read_json
from ..methods import method_class

CHECKPOINT_NAME = "checkpoint.pt"
#: bumped when the checkpoint layout changes, so an old file is refused instead of half-loaded
CHECKPOINT_FORMAT = 2  # 2: optimiser state moved into the learner's


class ResumeMismatch(ValueError):
    """A resume checkpoint belongs to another run (configuration, seed, data or format)."""


class ModelFileError(ValueError):
    """A ``model.pt`` is missing, is a failed-run placeholder or does not fit the method."""


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """The network's sizing as a plain dict (``model.spec`` when it has one), else None."""
    spec = getattr(model, "spec", None)
    return to_plain(dataclasses.asdict(spec)) if dataclasses.is_dataclass(spec) else None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_torch_save(path, {"format": CHECKPOINT_FORMAT, **state})


def load_checkpoint(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (tensors on the CPU), or None when there is none.

    Raises :class:`ResumeMismatch` when it was written by a run with another fingerprint.
    """
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ResumeMismatch(f"{path}: checkpoint format {state.get('format')!r}, this code reads format "
                             f"{CHECKPOINT_FORMAT}; delete {path.parent} to train from scratch")
    saved = state["fingerprint"]
    differ = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
    if differ:
        raise ResumeMismatch(f"{path} was written by another run: {', '.join(differ)} differ "
                             f"(checkpoint: {[saved.get(k) for k in differ]}, now: {[fingerprint.get(k) for k in differ]}); "
                             f"delete {path.parent} to train from scratch")
    return state


def save_model(path: Path, ema_model: nn.Module, method, steps: int, images_seen: int) -> None:
    """Write ``model.pt``: the EMA weights (on the CPU, so any device can load them), what built them and,
    for a model per T (DDGAN), the T it was trained at."""
    atomic_torch_save(path, {"ema": {k: v.detach().cpu() for k, v in ema_model.state_dict().items()},
                             "model_spec": model_spec(ema_model), "method": method.name, "T": method.T,
                             "steps": steps, "images_seen": images_seen})


def load_ema_model(method, model_path: str | Path, device: torch.device | str) -> nn.Module:
    """``method.build_model()`` with the EMA weights of ``model_path``, on ``device``, in eval mode."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; run the train stage first")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if "ema" not in saved:
        raise ModelFileError(f"{path} holds no trained weights (training failed: {saved.get('error', 'unknown error')})")
    if saved["method"] != method.name:
        raise ModelFileError(f"{path} was trained by method {saved['method']!r}, not {method.name!r}")
    if saved.get("T") != method.T:
        raise ModelFileError(f"{path} was trained at T = {saved.get('T')}, but T = {method.T} was asked for")
    with torch.random.fork_rng(devices=[]):  # the throw-away initialisation must not move the caller's RNG
        model = method.build_model()
    spec = model_spec(model)
    if spec != saved["model_spec"]:
        raise ModelFileError(f"{path}: the saved network {saved['model_spec']} does not match the configured one "
                             f"{spec}; retrain or restore the params.yaml it was trained with")
    model.load_state_dict(saved["ema"])
    return model.to(device).eval()


class UpstreamFailed(RuntimeError):
    """An input cell failed, so this one cannot run; its error is carried along."""


def load_trained(cfg, run: str, model_dir: Path, device: torch.device | str):
    """(method, EMA model) of a training cell (with its T for a model per T); raises :class:`UpstreamFailed`
    if that training failed."""
    train_meta = read_json(model_dir / "train.json")
    if train_meta["status"] != "ok":
        raise UpstreamFailed(f"training failed: {train_meta['error']}")
    cell = train_meta["cell"]
    method = method_class(cfg, run)(cfg, run, tuple(cell["image_shape"]), cell.get("T"))
    return method, load_ema_model(method, model_dir / "model.pt", device)
