"""``nll``: bits/dim on the held-out split of one trained run, reported per term (prior, reconstruction,
diffusion) and in total, for every bound the run's family defines: the bound of each K-step ancestral chain
(``evaluation.nll.budgets`` × ``evaluation.nll.variances`` × ``sampling.spacings``) and, for a continuous-time
method, its T = ∞ bound. Each value states its Monte-Carlo draws per image and its standard error over images.

One job per trained run: the workflow runs it only for the runs of ``evaluation.nll.methods`` (every family with a
bound), so a run whose family defines none is no job at all. Within a bounded run, a cell its family does not
define (VDM at σ² = β, a discrete-time model at T = ∞) is a ``not_defined`` row with the family's reason, and a
discrete chain at K = T is the full chain whatever the spacing (:meth:`~diffsteps.noise.schedule.Schedule.chain`):
it is computed once and written under every spacing."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.datasets import load_split
from ..io import atomic_write_json
from ..methods import run_identity
from ..rows import CONTINUOUS_SAMPLER, make_row
from ..spacing import SPACINGS
from ..training.checkpoint import load_trained
from ..families import with_runs
from .common import add_common, record, resolve_device, run_cell, setup

SECTIONS = ("data", "model", "noise", "train", "sampling", "evaluation")  # train: its device; sampling: its spacings

TERMS = ("total", "prior", "recon", "diffusion")


def register(sub) -> None:
    p = sub.add_parser("nll", help="every bits/dim bound of one trained run (its K-step chains and T = ∞)")
    add_common(p)
    p.add_argument("--method", required=True, help="the run, a key of method_config in params.yaml")
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--train-seed", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run)


def bound_cells(budgets: Sequence[int], variances: Sequence[str], spacings: Sequence[str], T: int,
                continuous_time: bool) -> list[dict[str, Any]]:
    """Every bound cell of a run (``evaluation.nll.budgets`` × ``variances`` × ``sampling.spacings``, ``noise.T``):
    (variance, spacing, budget) of each K-step chain, then the T = ∞ bound (all three None), each with the key of
    the chain it computes (a discrete chain at K = T is one chain, whatever the spacing)."""
    cells = []
    for budget in budgets:
        for variance in variances:
            for spacing in spacings:
                full = not continuous_time and budget == T
                cells.append({"variance": variance, "spacing": spacing, "budget": budget,
                              "chain": (variance, "full", budget) if full else (variance, spacing, budget)})
    cells.append({"variance": None, "spacing": None, "budget": None, "chain": None})
    return cells


def run(args) -> int:
    cfg = with_runs(setup(args, SECTIONS), args.params, (args.method,))
    family = type(cfg.method_config[args.method])
    reason = family.bound_reason  # the family's declaration: which cells have a bound
    if all(reason(v) is not None for v in (*cfg.evaluation.nll.variances, None)):
        raise ValueError(f"--method = {args.method!r}: its family {family.family_name()!r} defines no bound "
                         f"({reason(None)}); list only runs with one under evaluation.nll.methods")
    device = resolve_device(cfg.train.device)
    n_images = cfg.evaluation.nll.n_images
    base = {"dataset": cfg.data.dataset, "method": args.method, **run_identity(cfg, args.method),
            "train_seed": args.train_seed, "seed": cfg.evaluation.nll.seed}
    nll = cfg.evaluation.nll
    cells = bound_cells(nll.budgets, nll.variances, cfg.sampling.spacings, cfg.noise.T, family.continuous_time)

    def ident(cell: dict[str, Any]) -> dict[str, Any]:
        sampler = CONTINUOUS_SAMPLER if cell["budget"] is None else f"ancestral-{cell['variance']}"
        return {**base, "sampler": sampler, "spacing": cell["spacing"], "variance": cell["variance"],
                "nfe": cell["budget"]}

    def rows_with(cell: dict[str, Any], status: str, why: str | None) -> list[dict]:
        return [make_row(**ident(cell), metric=f"nll_{t}", value=None, n=n_images, status=status, reason=why)
                for t in TERMS]

    def work() -> None:
        method, model = load_trained(cfg, args.method, args.model_dir, device)
        images = load_split(args.data_dir / "heldout.npz")[0][:n_images]
        dims = int(np.prod(images.shape[1:]))
        computed: dict[Any, Any] = {}
        rows = []
        for cell in cells:
            why = reason(cell["variance"])
            if why is not None:
                rows += rows_with(cell, "not_defined", why)
                continue
            if cell["chain"] not in computed:
                spacing = None if cell["spacing"] is None else SPACINGS[cell["spacing"]]
                terms = method.nll(model, images, cell["budget"], cell["variance"], spacing, cfg.evaluation.nll.seed,
                                   batch_size=cfg.evaluation.nll.batch_size, device=device)
                computed[cell["chain"]] = (terms.bits_per_dim(dims), terms.draws)
            bpd, draws = computed[cell["chain"]]
            for t in TERMS:
                v = bpd[t].double().numpy()
                # the bound is an average over images; its standard error is over images (each image: draws draws)
                rows.append(make_row(**ident(cell), metric=f"nll_{t}", value=float(v.mean()),
                                     std=float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None,
                                     n=len(v), draws=draws, status="ok"))
        atomic_write_json(args.out, record(cfg, args, device=device, cell=base, rows=rows,
                                           chains_computed=len(computed)))

    def failed(message: str) -> None:
        atomic_write_json(args.out, record(cfg, args, status="failed", error=message, device=device, cell=base,
                                           rows=[r for cell in cells for r in (
                                               rows_with(cell, "failed", message) if reason(cell["variance"]) is None
                                               else rows_with(cell, "not_defined", reason(cell["variance"])))]))

    return run_cell(work, failed)
