"""``sample``: N samples of one cell (method, sampler, spacing, budget, training seed, sampling seed)
from the EMA weights, as uint8 arrays plus a PNG grid. One training run serves every budget."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_save_grid, atomic_save_npz, atomic_write_json, peak_memory_mb
from ..methods import run_identity
from ..sampler_registry import SamplerSpec
from ..samplers import sampler_for
from ..spacing import SPACINGS
from ..training.checkpoint import load_trained
from ..families import with_runs
from .common import add_common, record, resolve_device, run_cell, setup

SECTIONS = ("data", "model", "noise", "train", "sampling")  # train: its device


def register(sub) -> None:
    p = sub.add_parser("sample", help="sample one cell from a trained model")
    add_common(p)
    p.add_argument("--method", required=True, help="the run, a key of method_config in params.yaml")
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--sampler", required=True)
    p.add_argument("--spacing", required=True, choices=list(SPACINGS))
    p.add_argument("--budget", required=True, type=int)
    p.add_argument("--train-seed", required=True, type=int)
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = with_runs(setup(args, SECTIONS), args.params, (args.method,))
    spec = SamplerSpec.parse(args.sampler, "--sampler", source="command line")
    # a family with a chain of its own (DDGAN) checks its sampler, spacing and T itself, when it loads its model
    if cfg.method_config[args.method].eps_prediction and not 2 <= args.budget <= cfg.noise.T:
        raise ValueError(f"--budget = {args.budget} is invalid: must be 2 ≤ budget ≤ noise.T = {cfg.noise.T}")
    device = resolve_device(cfg.train.device)
    cell = {"method": args.method, "sampler": spec.name, "spacing": args.spacing, "budget": args.budget,
            **spec.columns(), "train_seed": args.train_seed, "seed": args.seed,
            **run_identity(cfg, args.method)}
    out = args.out_dir

    def work() -> None:
        method, model = load_trained(cfg, args.method, args.model_dir, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        gen = method.generate(model, args.budget, sampler_for(spec), SPACINGS[args.spacing], cfg.sampling.n_samples,
                              args.seed, batch_size=cfg.sampling.batch_size, device=device)
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

    return run_cell(work, failed)
