"""``sample``: N samples of each cell of one job (a run's sampler and spacing at its budgets, training seeds and
sampling seeds) from the EMA weights, as uint8 arrays plus a PNG grid per cell. The process starts once and loads each
trained model once for all of its cells."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_save_grid, atomic_save_npz, atomic_write_json, peak_memory_mb
from ..methods import run_identity
from ..models.compiling import compiled
from ..sampler_registry import SamplerSpec
from ..samplers import sampler_for
from ..spacing import SPACINGS
from ..training.checkpoint import load_trained
from ..families import with_runs
from .common import add_common, record, resolve_device, run_cell, setup

SECTIONS = ("data", "model", "noise", "train", "sampling")  # train: its device


@dataclass(frozen=True)
class Cell:
    """One cell of the job: its budget K, training and sampling seeds, the trained model it samples and the folder
    it writes (samples.npz, grid.png, sample.json)."""

    budget: int
    train_seed: int
    seed: int
    model_dir: Path
    out_dir: Path

    @classmethod
    def parse(cls, fields: list[str]) -> "Cell":
        budget, train_seed, seed, model_dir, out_dir = fields
        try:
            return cls(int(budget), int(train_seed), int(seed), Path(model_dir), Path(out_dir))
        except ValueError:
            raise ValueError(f"--cell {' '.join(fields)} is invalid: expected BUDGET TRAIN_SEED SEED MODEL_DIR OUT_DIR "
                             "with integer budget and seeds") from None


def register(sub) -> None:
    p = sub.add_parser("sample", help="sample the cells of one run's sampler and spacing from its trained models")
    add_common(p)
    p.add_argument("--method", required=True, help="the run, a key of method_config in params.yaml")
    p.add_argument("--sampler", required=True)
    p.add_argument("--spacing", required=True, choices=list(SPACINGS))
    p.add_argument("--cell", required=True, action="append", nargs=5, metavar=("BUDGET", "TRAIN_SEED", "SEED",
                                                                                 "MODEL_DIR", "OUT_DIR"),
                   help="one cell (repeatable): budget K, training seed, sampling seed, the trained model's folder and "
                        "the folder to write")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = with_runs(setup(args, SECTIONS), args.params, (args.method,))
    spec = SamplerSpec.parse(args.sampler, "--sampler", source="command line")
    cells = [Cell.parse(fields) for fields in args.cell]
    # a family with a chain of its own (DDGAN) checks its sampler, spacing and T itself, when it loads its model
    for c in cells:
        if cfg.method_config[args.method].eps_prediction and not 2 <= c.budget <= cfg.noise.T:
            raise ValueError(f"--cell budget = {c.budget} is invalid: must be 2 ≤ budget ≤ noise.T = {cfg.noise.T}")
    device = resolve_device(cfg.train.device)
    loaded: dict[Path, tuple] = {}  # model folder → (method, model): each model is read once

    def model(c: Cell):
        if c.model_dir not in loaded:
            method, net = load_trained(cfg, args.method, c.model_dir, device)
            loaded[c.model_dir] = method, compiled(net, cfg.sampling.compile)  # once per model and job
        return loaded[c.model_dir]

    for c in cells:
        sample_cell(cfg, args, spec, c, model, device)
    return 0


def sample_cell(cfg, args, spec: SamplerSpec, c: Cell, model, device) -> None:
    """Sample one cell and write its folder; a failure is written as the cell's failed outputs."""
    cell = {"method": args.method, "sampler": spec.name, "spacing": args.spacing, "budget": c.budget,
            **spec.columns(), "train_seed": c.train_seed, "seed": c.seed, **run_identity(cfg, args.method)}
    out = c.out_dir

    def work() -> None:
        method, net = model(c)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        gen = method.generate(net, c.budget, sampler_for(spec), SPACINGS[args.spacing], cfg.sampling.n_samples,
                              c.seed, batch_size=cfg.sampling.batch_size, device=device)
        wall = time.perf_counter() - start
        images = gen.images  # rounded to uint8 once
        atomic_save_npz(out / "samples.npz", images=images)
        atomic_save_grid(out / "grid.png", images[:64])
        atomic_write_json(out / "sample.json", record(
            cfg, args, device=device, cell={**cell, "nfe": gen.nfe},
            result={"n": len(images), "nfe": gen.nfe, "seconds": wall,
                    "seconds_per_image": gen.seconds / len(images), "peak_memory_mb": peak_memory_mb(device)}))

    def failed(message: str) -> None:
        atomic_save_npz(out / "samples.npz", images=np.zeros((0, 1, 1, 1), np.uint8))
        atomic_save_grid(out / "grid.png", None, caption=f"FAILED: {message}")
        atomic_write_json(out / "sample.json", record(cfg, args, status="failed", error=message,
                                                      device=device, cell=cell))

    run_cell(work, failed)
