"""``train``: one model per (method, training seed), the same budget in images seen for every method.

Resumable state lives in ``.cache/resume/<hash>``, keyed by the hash of the resolved config slice
and the cell, outside DVC's declared outputs (DVC deletes those before it runs a stage), so a
killed run continues where it stopped and never resumes into a run with other parameters.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..config import config_hash, to_plain
from ..data.datasets import load_split
from ..io import atomic_torch_save, atomic_write_json, atomic_write_text, read_json
from ..registry import method_class, run_identity
from ..reporting.schema import make_row
from ..models.unet import count_parameters
from ..training.checkpoint import load_ema_model
from ..training.loop import train
from ..workflow import params_slice
from .common import add_common, record, resolve_device, run_cell, setup

RESUME_ROOT = Path(".cache/resume")


def register(sub) -> None:
    p = sub.add_parser("train", help="train one method at one training seed")
    add_common(p)
    p.add_argument("--method", required=True, help="the run, a key of method_config in params.yaml")
    p.add_argument("--train-seed", required=True, type=int)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def resume_dir(cfg, method: str, seed: int, data_sha256: str) -> Path:
    """Keyed by the resolved params slice, the cell and the training data's content hash."""
    key = {"params": params_slice(to_plain(cfg), "train", method), "method": method, "seed": seed, "data": data_sha256}
    return RESUME_ROOT / config_hash(key)


def noise_skewness(method, T: int) -> dict[str, list[float]] | None:
    """Skewness of the method's standardised training noise on a log grid of t = 1..T, or None."""
    t = np.unique(np.geomspace(1, T, 60).round().astype(int))
    skew = method.noise_skewness(t)
    return None if skew is None else {"t": t.tolist(), "skewness": [float(v) for v in skew]}


def run(args) -> int:
    cfg = setup(args)
    images, _ = load_split(args.data_dir / "train.npz")
    method = method_class(cfg, args.method)(cfg, args.method, images.shape[1:])
    device = resolve_device(cfg.train.device)
    out = args.out_dir
    ident = {"dataset": cfg.data.dataset, "method": args.method, **run_identity(cfg, args.method),
             "train_seed": args.train_seed}
    cell = {**ident, "image_shape": list(images.shape[1:]),
            # the noise's shape over t, for the report (closed form; Gaussian is 0)
            "noise_skewness": noise_skewness(method, cfg.noise.T)}

    def work() -> None:
        data_sha = read_json(args.data_dir / "data.json")["sha256"]["train"]
        res = train(method, images, cfg.train, args.train_seed, out,
                    resume_dir(cfg, args.method, args.train_seed, data_sha), device, progress=not args.no_progress)
        rows = [make_row(**ident, n=res.images_seen, metric=m, value=v) for m, v in (
            ("training_seconds", res.seconds), ("training_peak_memory_mb", res.peak_memory_mb),
            ("train_loss_final", res.final_loss))]
        # the trained (EMA) network's size and noise schedule, for the report's comparisons
        model = load_ema_model(method, out / "model.pt", device)
        result = {**to_plain(dataclasses.asdict(res)), "parameters": count_parameters(model),
                  "log_snr": method.log_snr_curve(model)}
        atomic_write_json(out / "train.json", record(cfg, "train", args.method, device=device, cell=cell, rows=rows,
                                                result=result))

    def failed(message: str) -> None:
        # placeholders that cannot be mistaken for a model: train.json says why, downstream cells fail in turn
        atomic_torch_save(out / "model.pt", {"status": "failed", "error": message})
        if not (out / "loss.csv").exists():
            atomic_write_text(out / "loss.csv", "step,images_seen,loss,lr,seconds\n")
        atomic_write_json(out / "train.json", record(cfg, "train", args.method, status="failed", error=message,
                                                     device=device, cell=cell))

    return run_cell(work, failed)
