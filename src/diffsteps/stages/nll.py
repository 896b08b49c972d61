"""``nll``: bits/dim on the held-out split, reported per term (prior, reconstruction, diffusion) and
in total: the bound of a K-step ancestral chain with a stated reverse variance, or (``--continuous``)
a continuous-time method's T = ∞ bound. Each value states its Monte-Carlo draws per image and its
standard error over images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.datasets import load_split
from ..spacing import SPACINGS
from ..io import atomic_write_json
from ..registry import method_class, run_identity
from ..rows import CONTINUOUS_SAMPLER, make_row
from ..training.checkpoint import load_trained
from .common import add_common, record, resolve_device, run_cell, setup

TERMS = ("total", "prior", "recon", "diffusion")


def register(sub) -> None:
    p = sub.add_parser("nll", help="bits/dim bound of one (method, variance, spacing, budget, training seed)")
    add_common(p)
    p.add_argument("--method", required=True, help="the run, a key of method_config in params.yaml")
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--data-dir", required=True, type=Path)
    chain = p.add_mutually_exclusive_group(required=True)
    chain.add_argument("--budget", type=int, help="K of the K-step bound (with --variance and --spacing)")
    chain.add_argument("--continuous", action="store_true", help="the continuous-time (T = ∞) bound")
    p.add_argument("--variance", choices=["betatilde", "beta"])
    p.add_argument("--spacing", choices=list(SPACINGS))
    p.add_argument("--train-seed", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run)


def _check_args(args) -> None:
    if args.continuous and (args.variance or args.spacing):
        raise ValueError("--variance and --spacing are invalid with --continuous: the T = ∞ bound has neither")
    if not args.continuous and not (args.variance and args.spacing):
        raise ValueError("--budget needs --variance (betatilde or beta) and --spacing "
                         f"({' or '.join(SPACINGS)})")


def run(args) -> int:
    _check_args(args)
    cfg = setup(args)
    method_cls = method_class(cfg, args.method)
    device = resolve_device(cfg.train.device)
    sampler = CONTINUOUS_SAMPLER if args.continuous else f"ancestral-{args.variance}"
    ident = {"dataset": cfg.data.dataset, "method": args.method, "sampler": sampler,
             "spacing": args.spacing, "variance": args.variance, **run_identity(cfg, args.method),
             "nfe": args.budget, "train_seed": args.train_seed, "seed": cfg.evaluation.nll.seed}
    n_images = cfg.evaluation.nll.n_images

    def rows_with(status: str, reason: str | None) -> list[dict]:
        return [make_row(**ident, metric=f"nll_{t}", value=None, n=n_images, status=status, reason=reason)
                for t in TERMS]

    reason = method_cls.nll_reason(args.variance)
    if reason is not None:
        atomic_write_json(args.out, record(cfg, args, status="ok", cell=ident,
                                           rows=rows_with("not_defined", reason)))
        return 0

    def work() -> None:
        method, model = load_trained(cfg, args.method, args.model_dir, device)
        images = load_split(args.data_dir / "heldout.npz")[0][:n_images]
        terms = method.nll(model, images, args.budget, args.variance, args.spacing, cfg.evaluation.nll.seed,
                           batch_size=cfg.evaluation.nll.batch_size, device=device)
        bpd = terms.bits_per_dim(int(np.prod(images.shape[1:])))
        rows = []
        for t in TERMS:
            v = bpd[t].double().numpy()
            # the bound is an average over images; its standard error is over images (each image: terms.draws draws)
            rows.append(make_row(**ident, metric=f"nll_{t}", value=float(v.mean()),
                                 std=float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None,
                                 n=len(v), draws=terms.draws, status="ok"))
        atomic_write_json(args.out, record(cfg, args, device=device, cell=ident, rows=rows))

    def failed(message: str) -> None:
        atomic_write_json(args.out, record(cfg, args, status="failed", error=message, device=device,
                                           cell=ident, rows=rows_with("failed", message)))

    return run_cell(work, failed)
