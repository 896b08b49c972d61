"""Converged limits (STUDY.md, "How many steps"): what each sampler of a run converges to, measured, never a best cell.

- **ODE limit** FID_ODE∞, shared by a run's deterministic solvers (they discretise one probability-flow ODE): the FID
  of the run's cheapest ODE cell whose solver error is ≤ ε, named. The solver error must be resolved by its reference
  (:func:`diffsteps.solver_error.resolves` at ε), or no cell qualifies.
- **Chain limit** FID_SDE∞, one per stochastic sampler: the chain at K = T (the study's reference cell) for a discrete
  model; for a continuous one, the chain at 2K where halving its step from K moves the FID by less than the
  standard error of that move.
- Where a limit was not measured, :class:`Missing` says why and what to add to the grid.

The values are bootstrap replicates (:class:`Seeds`), so a limit carries its uncertainty into NFE_δ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..families import options_type
from ..sampler_registry import SamplerSpec
from ..solver_error import fitted_order, resolves
from .summary import missing, text

SOLVER_ERROR = "solver_error"
SOLVER_REFERENCE = "solver_error_reference"
NO_LIMIT = "no converged limit on this grid"
#: a cell's relative distance to its run's ODE limit, |FID/FID_ODE∞ − 1|, paired by seed (:func:`~.steps.excess_rows`;
#: 0: converged; two-sided, as NFE_δ is: a FID below the limit is another distribution, not a converged one)
EXCESS_METRIC = "distance_to_ode_limit"


class Seeds:
    """One run's cells of one metric: values indexed by (training seed, sampling seed), with bootstrap weights
    shared by all of them (B + 1, n_t, n_s): replicate b counts how often each pair is drawn; replicate 0 is the
    data as they are (the point estimate). Training seeds are resampled, then sampling seeds within each."""

    def __init__(self, rows: pd.DataFrame, n_boot: int, rng: np.random.Generator):
        self.ts = sorted({int(v) if not missing(v) else -1 for v in rows["train_seed"]})
        self.ss = sorted({int(v) if not missing(v) else -1 for v in rows["seed"]})
        nt, ns = len(self.ts), len(self.ss)
        w = np.zeros((n_boot + 1, nt, ns))
        w[0] = 1.0
        for b in range(1, n_boot + 1):
            for i in rng.integers(0, nt, nt):
                np.add.at(w[b, i], rng.integers(0, ns, ns), 1.0)
        self.weights = w

    def means(self, cell: pd.DataFrame) -> np.ndarray:
        """The cell's mean under every replicate, (B + 1,); NaN where a replicate drew none of its pairs."""
        v = np.full((len(self.ts), len(self.ss)), np.nan)
        for ts, s, value in zip(cell["train_seed"], cell["seed"], cell["value"]):
            v[self.ts.index(-1 if missing(ts) else int(ts)), self.ss.index(-1 if missing(s) else int(s))] = value
        have = ~np.isnan(v)
        total = (self.weights * np.where(have, v, 0.0)).sum((1, 2))
        count = (self.weights * have).sum((1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / count

    @property
    def n_train(self) -> int:
        return len(self.ts)


#: (sampler, spacing) → (the NFE grid, replicate means (B + 1, G) in grid order)
Curves = dict[tuple[str, str], tuple[list[float], np.ndarray]]


def curves(seeds: Seeds, rows: pd.DataFrame) -> Curves:
    """Every (sampler, spacing) of ``rows`` as a curve over its NFE grid."""
    out = {}
    for (sampler, spacing), part in rows.groupby(["sampler", "spacing"], dropna=False, sort=False):
        grid = sorted({float(n) for n in part["nfe"] if not missing(n)})
        out[(sampler, text(spacing))] = (grid, np.stack([seeds.means(part[part["nfe"] == n]) for n in grid], 1))
    return out


@dataclass(frozen=True)
class Limit:
    """A measured limit: ``kind`` ("ODE" or "chain"), its replicate means ``draws`` (B + 1,), where it was read
    (``source``, e.g. "heun, uniform, 49 NFE, solver error 0.012") and, for a limit read at a cell of the grid,
    that cell (sampler, spacing, NFE), so that its values can be paired with other cells seed by seed."""

    kind: str
    draws: np.ndarray
    source: str
    cell: tuple[str, str, float] | None = None

    @property
    def value(self) -> float:
        return float(self.draws[0])

    def __str__(self) -> str:
        return f"{self.value:.3g} ({self.source})"


@dataclass(frozen=True)
class Missing:
    """No limit of ``kind`` on this grid: ``why``, and what to add to measure one (``add``)."""

    kind: str
    why: str
    add: str

    def __str__(self) -> str:
        return NO_LIMIT


@dataclass(frozen=True)
class SolverErrors:
    """One run's solver errors: the mean over training seeds of each (sampler, spacing, NFE) cell, and the largest
    Richardson estimate of its references (None without reference rows)."""

    cells: dict[tuple[str, str, float], float]
    estimate: float | None
    rows: pd.DataFrame  # the ok solver-error rows (one per cell and training seed), for the bootstrap of NFE_ε

    @classmethod
    def of(cls, df: pd.DataFrame, method: str) -> "SolverErrors":
        ok = df[(df["method"] == method) & (df["status"] == "ok")]
        err = ok[ok["metric"] == SOLVER_ERROR]
        cells = {(smp, text(sp), float(n)): float(v) for (smp, sp, n), v in
                 err.groupby(["sampler", "spacing", "nfe"], dropna=False)["value"].mean().items()}
        ref = ok[ok["metric"] == SOLVER_REFERENCE]["value"]
        return cls(cells, float(ref.max()) if len(ref) else None, err)

    def resolved(self, error: float) -> bool:
        """Whether the reference resolves ``error`` (no reference row: nothing is resolved)."""
        return self.estimate is not None and resolves(self.estimate, error)


def ode_limit(run_curves: Curves, errors: SolverErrors, epsilon: float, family: str) -> Limit | Missing:
    """FID_ODE∞ of one run: the FID of its cheapest deterministic cell (ties: the smaller error) whose solver error is
    ≤ ε, where the reference resolves ε."""
    traits = options_type(family)
    if not traits.eps_prediction:
        return Missing("ODE", f"the {family} chain is fixed at training (a model per T): it has no ODE",
                       "nothing on this grid can: DDPM's 1000-step FID is its common target")
    if not errors.cells:
        return Missing("ODE", "no solver-error rows", "a deterministic sampler in sampling.samplers (its solver-error "
                                                      "job measures the ODE cells)")
    if not errors.resolved(epsilon):
        return Missing("ODE", f"the solver-error reference (estimate {errors.estimate:.2g}) does not resolve "
                              f"ε = {epsilon:g}", "a larger evaluation.solver_error.max_K")
    candidates = []
    for (sampler, spacing), (grid, draws) in run_curves.items():
        if not SamplerSpec.parse(sampler).deterministic:
            continue
        for j, nfe in enumerate(grid):
            e = errors.cells.get((sampler, spacing, nfe))
            if e is not None and e <= epsilon:
                candidates.append((nfe, e, sampler, spacing, draws[:, j]))
    if candidates:
        nfe, e, sampler, spacing, draws = min(candidates, key=lambda c: (c[0], c[1]))
        return Limit("ODE", draws, f"{sampler}, {spacing}, {nfe:g} NFE, solver error {e:.2g} ≤ ε", (sampler, spacing, nfe))
    return Missing("ODE", f"no ODE cell has solver error ≤ ε = {epsilon:g} (smallest {min(errors.cells.values()):.2g})",
                   _budget_to_reach(errors, epsilon))


def _budget_to_reach(errors: SolverErrors, epsilon: float) -> str:
    """What to add: the NFE at which the run's best solver would reach ε, extrapolated along its fitted order."""
    best = None
    for sampler, spacing in {(smp, sp) for smp, sp, _ in errors.cells}:
        pts = sorted((n, e) for (smp, sp, n), e in errors.cells.items() if (smp, sp) == (sampler, spacing))
        order = fitted_order([n for n, _ in pts], [e for _, e in pts])
        if order is None or order <= 0:
            continue
        n_last, e_last = pts[-1]
        need = n_last * (e_last / epsilon) ** (1 / order) - 1e-9  # no rounding up of an exact power law
        if best is None or need < best[0]:
            best = (need, sampler, spacing, order)
    if best is None:
        return "larger budgets (sampling.budgets)"
    need, sampler, spacing, order = best
    return (f"a budget of about {math.ceil(need)} NFE or more to sampling.budgets ({sampler}, {spacing}: fitted order "
            f"{order:.2f})")


def chain_limit(sampler: str, run_curves: Curves, reference: np.ndarray | None, reference_label: str, family: str
                ) -> Limit | Missing:
    """FID_SDE∞ of one stochastic sampler of a run: the reference chain (K = T) where this run has it; else, for a
    continuous-time family, the first budget K of the grid whose doubled step 2K moves the FID by less than the
    bootstrap standard error of that move (the chain at 2K)."""
    traits = options_type(family)
    if not traits.eps_prediction:
        return Missing("chain", f"the {family} chain is fixed at training (a model per T): it is not refined in K",
                       "nothing on this grid can: DDPM's 1000-step FID is its common target")
    if reference is not None:
        return Limit("chain", reference, reference_label)
    if traits.continuous_time:
        for (smp, spacing), (grid, draws) in run_curves.items():
            if smp != sampler:
                continue
            for i, nfe in enumerate(grid):
                if 2 * nfe in grid:
                    j = grid.index(2 * nfe)
                    move = draws[:, j] - draws[:, i]
                    se = float(np.nanstd(move[1:])) if len(move) > 2 else math.inf
                    if abs(move[0]) < se:
                        return Limit("chain", draws[:, j], f"{sampler}, {spacing}, {2 * nfe:g} NFE: halving its step "
                                                           f"moves the FID by {abs(move[0]):.2g} < its se {se:.2g}")
        return Missing("chain", f"no budget of {sampler} where halving the step moves the FID by less than its "
                                "standard error", "budgets K and 2K to sampling.budgets beyond the largest")
    return Missing("chain", f"{sampler} was not run at K = T", f"this run to sampling.reference.methods with "
                                                                f"sampler {sampler}")


def first_converged(grid: Sequence[float], draws: np.ndarray, limit: np.ndarray, tolerance: float) -> np.ndarray:
    """Per replicate, the smallest grid NFE from which on the curve stays within ±δ of its limit, |FID − FID∞| ≤
    δ·FID∞ at that NFE and every larger one of the grid, else inf. Two-sided, because a FID *below* the limit is a
    different distribution, not a converged one (skewed Gamma noise's DPM-Solver++ at 4 NFE); staying, because a
    curve that crosses the band is not there yet. ``draws`` (B, G) in grid order, ``limit`` (B,)."""
    inside = np.abs(draws - limit[:, None]) <= tolerance * limit[:, None]
    # inside from j on: the reversed cumulative AND along the grid
    stays = np.flip(np.logical_and.accumulate(np.flip(inside, 1), 1), 1)
    idx = np.where(stays.any(1), stays.argmax(1), -1)
    return np.where(idx < 0, math.inf, np.asarray(grid, float)[np.maximum(idx, 0)])


def first_below(grid: Sequence[float], draws: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per replicate, the smallest grid NFE whose value is ≤ the replicate's target, else inf (a quality target:
    DDPM's 1000-step FID, or ε for the solver error). ``draws`` (B, G) in grid order, ``target`` (B,)."""
    hit = draws <= target[:, None]
    idx = np.where(hit.any(1), hit.argmax(1), -1)
    return np.where(idx < 0, math.inf, np.asarray(grid, float)[np.maximum(idx, 0)])
