"""``solver-error``: every deterministic sampler × spacing × budget of one trained run against the reference solve
of its ODE from the same x_T (:mod:`diffsteps.solver_error`). One job per (run, training seed), because the
reference is shared by all of them and costs more than the rest; it needs no feature extractor."""

from __future__ import annotations

import math
from pathlib import Path

from ..io import atomic_write_json
from ..methods import run_identity
from ..rows import make_row
from ..sampler_registry import SamplerSpec
from ..samplers import Solver, rk4, sampler_for
from ..solver_error import (REFERENCE_SOLVER, REFERENCE_SPACING, STRAIGHTNESS_METRIC, cell_errors, excess_length,
                            reference_solve)
from ..spacing import EXACT_LOGSNR, SPACINGS
from ..training.checkpoint import load_trained
from ..families import with_runs
from .common import add_common, record, resolve_device, run_cell, setup

SECTIONS = ("data", "model", "noise", "train", "sampling", "evaluation")  # train: its device

METRIC = "solver_error"
#: the reference's own row: its solver, grid and NFE, and its Richardson error estimate (what it resolves)
REFERENCE_METRIC = "solver_error_reference"


def register(sub) -> None:
    p = sub.add_parser("solver-error", help="RMS distance of each deterministic sampler to the reference ODE solve")
    add_common(p)
    p.add_argument("--method", required=True, help="the run, a key of method_config in params.yaml")
    p.add_argument("--model-dir", required=True, type=Path)
    p.add_argument("--train-seed", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run)


def solved_samplers(cfg, family) -> list[SamplerSpec]:
    """The deterministic samplers of ``sampling.samplers`` that apply to ``family`` (its options type)."""
    specs = [SamplerSpec.parse(name) for name in cfg.sampling.samplers]
    return [s for s in specs if s.deterministic and s.decl.applies_to(family)]


def run(args) -> int:
    cfg = with_runs(setup(args, SECTIONS), args.params, (args.method,))
    ident = {"dataset": cfg.data.dataset, "method": args.method, **run_identity(cfg, args.method),
             "train_seed": args.train_seed, "seed": cfg.evaluation.solver_error.seed, "metric": METRIC}
    family = type(cfg.method_config[args.method])
    if not family.eps_prediction:
        raise ValueError(f"--method = {args.method!r} is invalid: its family {family.family_name()!r} samples only a "
                         "chain of its own (a stochastic one): there is no ODE of the study's samplers to solve")
    specs = solved_samplers(cfg, family)
    device = resolve_device(cfg.train.device)
    ev = cfg.evaluation.solver_error
    grid = [(s, spacing, K) for s in specs for spacing in cfg.sampling.spacings for K in cfg.sampling.budgets]

    def work() -> None:
        if not grid:  # no deterministic sampler in sampling.samplers: nothing to hold against a reference solve
            atomic_write_json(args.out, record(cfg, args, device=device, cell=ident, reference=None, rows=[]))
            return
        method, model = load_trained(cfg, args.method, args.model_dir, device)

        def solve(name: str, K: int, spacing: str):
            return method.generate(model, K, sampler_for(SamplerSpec.parse(name)), SPACINGS[spacing], ev.n, ev.seed,
                                   batch_size=ev.batch_size, device=device).x

        endpoints = {(s.name, spacing, K): solve(s.name, K, spacing) for s, spacing, K in grid}

        def smallest(ref) -> float:
            errs = [float(e.mean()) for e in cell_errors(endpoints, ref).values()]
            return min((e for e in errs if e > 0), default=math.inf)

        # M RK4 steps pair 2M chain intervals; a discrete chain adds its final denoising step (and evaluation)
        extra = 0 if method.continuous_time else 1
        reference = Solver(REFERENCE_SOLVER, rk4)

        solves = {}  # RK4 steps → the reference's set, its traced trajectories with it

        def solve_reference(M: int):
            solves[M] = method.generate(model, 2 * M + extra, reference, EXACT_LOGSNR, ev.n, ev.seed,
                                        batch_size=ev.batch_size, device=device)
            return solves[M].x

        ref = reference_solve(solve_reference, lambda M: 4 * M + extra, smallest, max_steps=ev.max_K)
        rows = []
        for (name, spacing, K), per_image in cell_errors(endpoints, ref.x).items():
            spec, err = SamplerSpec.parse(name), per_image.numpy()
            rows.append(make_row(**ident, sampler=name, spacing=spacing, **spec.columns(), nfe=spec.nfe(K),
                                 value=float(err.mean()), std=float(err.std(ddof=1) / math.sqrt(len(err))),
                                 n=len(err), status="ok"))
        rows.append(make_row(**{**ident, "metric": REFERENCE_METRIC}, sampler=REFERENCE_SOLVER,
                             spacing=REFERENCE_SPACING, nfe=ref.nfe, value=ref.estimate, n=len(ref.x), status="ok",
                             reason=None if ref.converged else f"not converged: its error estimate {ref.estimate:.2g} "
                             f"after {ref.steps} RK4 steps (evaluation.solver_error.max_K) does not resolve the "
                             f"smallest reported error {smallest(ref.x):.2g}"))
        traced = solves[ref.steps]
        excess = excess_length(traced.path_length, traced.displacement).numpy()
        rows.append(make_row(**{**ident, "metric": STRAIGHTNESS_METRIC}, sampler=REFERENCE_SOLVER,
                             spacing=REFERENCE_SPACING, nfe=ref.nfe, value=float(excess.mean()),
                             std=float(excess.std(ddof=1) / math.sqrt(len(excess))), n=len(excess), status="ok"))
        reference_record = {"solver": REFERENCE_SOLVER, "spacing": REFERENCE_SPACING, "steps": ref.steps,
                            "nfe": ref.nfe, "estimate": ref.estimate, "order": ref.order,
                            "converged": ref.converged}
        atomic_write_json(args.out, record(cfg, args, device=device, cell=ident, reference=reference_record,
                                           rows=rows))

    def failed(message: str) -> None:
        rows = [make_row(**ident, sampler=s.name, spacing=spacing, **s.columns(), nfe=s.nfe(K), value=None,
                         status="failed", reason=message) for s, spacing, K in grid]
        atomic_write_json(args.out, record(cfg, args, status="failed", error=message, device=device, cell=ident,
                                           rows=rows))

    return run_cell(work, failed)
