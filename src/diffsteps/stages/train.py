"""``train``: one model per (run, training seed), and per T for a family with one model per T (DDGAN), the same
budget in images seen for every model.

A probed family's run (DDGAN with ``probe_every`` > 0) also keeps its EMA weights every ``probe_every`` steps
(``snapshots.pt``; empty for the others): the probe stage scores them after training, so training runs no evaluation
and its code holds no feature extractor.

Resumable state lives in ``.cache/resume/<dataset>/<model>/train<seed>/<key>`` (:mod:`~.training.resume`), keyed
by the params slice, the cell, the training data and the code this command runs, and held under the cell's lock for
the whole job: a killed run continues where it stopped, never into the state of other params or code, and a run
that finished removes its state, so a forced rerun retrains.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..config import config_hash, to_plain
from ..data.datasets import load_split
from ..io import atomic_torch_save, atomic_write_json, atomic_write_text, read_json
from ..methods import method_class, run_identity
from ..models.unet import count_parameters
from ..rows import make_row
from ..training.checkpoint import load_ema_model
from ..training.loop import SNAPSHOTS_NAME, resumed_train_config, train
from ..training.resume import ResumeState, loaded_code_digest
from ..families import with_runs
from .common import add_common, cell_config, record, resolve_device, run_cell, setup

SECTIONS = ("data", "model", "noise", "train")



def register(sub) -> None:
    p = sub.add_parser("train", help="train one method at one training seed")
    add_common(p)
    p.add_argument("--method", required=True, help="the run, a key of method_config in params.yaml")
    p.add_argument("--train-seed", required=True, type=int)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--T", type=int, default=None, help="the step count of one model of a family with a model per T "
                                                     "(DDGAN); omit for the others")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def resume_state(cfg, args, data_sha256: str, device: torch.device) -> ResumeState:
    """The cell's resumable state: its folder is the data set, the model (the run, at its T for a model per T)
    and the training seed; its key the params slice the cell reads (:func:`~.common.cell_config`) with all of the
    training config a checkpoint is checked against, the cell, the training data's content hash, the type of the
    device it trains on (its random streams are that device's) and the digest of the code this command runs (every
    package module it has loaded: called once the run's method is imported)."""
    model = args.method if args.T is None else f"{args.method}/T{args.T}"
    key = {"params": cell_config(cfg, args), "train": resumed_train_config(cfg.train), "method": args.method,
           "seed": args.train_seed, "data": data_sha256, "T": args.T, "device_type": device.type,
           "code": loaded_code_digest()}
    return ResumeState(Path(cfg.data.dataset) / model / f"train{args.train_seed}", config_hash(key))


def noise_skewness(method, T: int) -> dict[str, list[float]] | None:
    """Skewness of the method's standardised training noise on a log grid of t = 1..T, or None."""
    t = np.unique(np.geomspace(1, T, 60).round().astype(int))
    skew = method.noise_skewness(t)
    return None if skew is None else {"t": t.tolist(), "skewness": [float(v) for v in skew]}


def run(args) -> int:
    cfg = with_runs(setup(args, SECTIONS), args.params, (args.method,))
    images, _ = load_split(args.data_dir / "train.npz")
    method = method_class(cfg, args.method)(cfg, args.method, images.shape[1:], args.T)
    device = resolve_device(cfg.train.device)
    out = args.out_dir
    ident = {"dataset": cfg.data.dataset, "method": args.method, **run_identity(cfg, args.method),
             "train_seed": args.train_seed}
    if args.T is not None:  # a model per T serves one cell: its rows carry its NFE
        ident["nfe"] = args.T
    cell = {**ident, "image_shape": list(images.shape[1:]), "T": args.T,
            # the noise's shape over t, for the report (closed form; Gaussian is 0)
            "noise_skewness": noise_skewness(method, cfg.noise.T)}
    data_sha = read_json(args.data_dir / "data.json")["sha256"]["train"]
    state = resume_state(cfg, args, data_sha, device)

    def work() -> None:
        res = train(method, images, cfg.train, args.train_seed, out, state.dir, device,
                    progress=not args.no_progress, snapshot_every=method.options.snapshot_every())
        rows = [make_row(**ident, n=res.images_seen, metric=m, value=v) for m, v in (
            ("training_seconds", res.seconds), ("training_peak_memory_mb", res.peak_memory_mb),
            ("train_loss_final", res.final_loss))]
        # the trained (EMA) network's size and noise schedule, for the report's comparisons
        model = load_ema_model(method, out / "model.pt", device)
        result = {**to_plain(dataclasses.asdict(res)), "parameters": count_parameters(model),
                  "log_snr": method.log_snr_curve(model)}
        atomic_write_json(out / "train.json", record(cfg, args, device=device, cell=cell, rows=rows,
                                                result=result))
        state.finished()  # every output is written: a rerun of this cell trains from step 0

    def failed(message: str) -> None:
        # placeholders that cannot be mistaken for a model: train.json says why, downstream cells fail in turn
        atomic_torch_save(out / "model.pt", {"status": "failed", "error": message})
        if not (out / "loss.csv").exists():  # the header alone: no log row was written
            atomic_write_text(out / "loss.csv", "step,images_seen,loss,lr,seconds\n")
        atomic_torch_save(out / SNAPSHOTS_NAME, {})  # a failed run's snapshots are not scored
        atomic_write_json(out / "train.json", record(cfg, args, status="failed", error=message,
                                                     device=device, cell=cell))

    with state.hold():  # one writer per cell, for the whole job (a second one fails here, having written nothing)
        return run_cell(work, failed)
