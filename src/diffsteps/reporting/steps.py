"""The answer the report leads with (STUDY.md, "How many steps"): how many NFE each run needs, per sampler.

- **NFE_δ**: the smallest NFE on the grid from which a sampler's headline FID (mean over seeds) stays within ±δ of
  the converged limit of *its kind* (:mod:`.limits`): the run's ODE limit for a deterministic solver, its own chain
  limit for a stochastic sampler. "> max" when it never gets there, "≤ min" when it is there at the smallest NFE,
  "no converged limit on this grid" when the limit was not measured (the caveats say what to add).
- **Best of solvers**: the fewest NFE at which any sampler and spacing of the run comes within ±δ of its ODE limit,
  naming which: the method's answer.
- **To DDPM's 1000-step FID**: the NFE at which a run's FID is first ≤ (1 + δ) × DDPM's 1000-step FID, which puts a
  run with a model per T (DDGAN, NFE = T) and every diffusion run on one scale.
- **NFE_ε**: the smallest NFE at which a deterministic sampler's solver error is ≤ ε, where the reference resolves ε.
- **Uncertainty**: a bootstrap over training seeds, and over sampling seeds within each, shared by every cell of
  a run (paired, limits included); the 95% interval is read on the NFE grid.

Every function takes the tidy results frame (:mod:`diffsteps.rows`) and plain settings, so tests build frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..rows import FLOOR_SAMPLER
from ..families import options_type
from ..sampler_registry import SamplerSpec, data_law_caveat
from ..solver_error import RESOLUTION, STRAIGHTNESS_METRIC
from .claims import Estimate
from .limits import (EXCESS_METRIC, NO_LIMIT, SOLVER_REFERENCE, Limit, Missing, Seeds, SolverErrors, chain_limit,
                     curves, first_below, first_converged, ode_limit)
from .render import Block, Bullets, Paragraph, Table
from .summary import text


@dataclass(frozen=True)
class Settings:
    """What the table needs from params.yaml: δ, ε, the bootstrap, and the study's reference chain (K = T)."""

    tolerance: float
    solver_error: float
    bootstrap: int
    seed: int
    reference_sampler: str
    reference_spacing: str
    reference_nfe: int
    metric: str = "fid"
    samplers: tuple[str, ...] = ()  # the column order (every sampler of the study)


@dataclass(frozen=True)
class Needed:
    """NFE needed by one (run, sampler, spacing): the point estimate and its bootstrap interval, on the grid
    (``math.inf`` = never within the target), with the grid's ends for the censored forms."""

    estimate: float
    low: float
    high: float
    grid_min: float
    grid_max: float

    def value(self, v: float) -> float | str:
        """One end or the estimate as the report states it: an NFE inside the grid, or its censored form."""
        if math.isinf(v):
            return f"> {self.grid_max:g}"
        if v <= self.grid_min:
            return f"≤ {self.grid_min:g}"
        return v

    def on_grid(self, v: float) -> float:
        """v clamped to the grid's ends: where a censored value is drawn."""
        return min(max(v, self.grid_min), self.grid_max)

    def _fmt(self, v: float) -> str:
        out = self.value(v)
        return out if isinstance(out, str) else f"{out:g}"

    def __str__(self) -> str:
        return f"{self._fmt(self.estimate)} [{self._fmt(self.low)}, {self._fmt(self.high)}]"


def _needed(grid: Sequence[float], draws: np.ndarray) -> Needed:
    point, boot = draws[0], np.sort(draws[1:]) if len(draws) > 1 else draws
    lo = boot[int(math.floor(0.025 * (len(boot) - 1)))]
    hi = boot[int(math.ceil(0.975 * (len(boot) - 1)))]
    return Needed(float(point), float(lo), float(hi), float(min(grid)), float(max(grid)))


def quality_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The ok rows of ``metric`` of the runs' cells, at each cell's largest N: a cell is also scored at the
    floor's N (the comparison with real data), and values at two N are not one quantity (FID is biased in N)."""
    rows = df[(df["metric"] == metric) & (df["status"] == "ok") & df["method"].notna()]
    rows = rows[rows["sampler"] != FLOOR_SAMPLER]
    largest = rows.groupby(["method", "sampler", "spacing", "nfe"], dropna=False)["n"].transform("max")
    return rows[rows["n"].isna() | (rows["n"] == largest)]


@dataclass(frozen=True)
class RunAnswer:
    """Everything the table says about one run: its limits, NFE_δ per (sampler, spacing) against its kind's limit
    (absent where the sampler's limit is :class:`~.limits.Missing`), the best of solvers, and the other targets."""

    method: str
    family: str
    n_train: int
    ode: Limit | Missing
    chains: dict[str, Limit | Missing]  # stochastic sampler → its chain limit
    to_own: dict[tuple[str, str], Needed]  # (sampler, spacing) → NFE_δ
    best: tuple[str, str, Needed] | None  # (sampler, spacing, NFE) of the best of solvers
    to_ddpm: dict[tuple[str, str], Needed]
    to_error: dict[tuple[str, str], Needed]
    error_unresolved: str | None = None  # why NFE_ε is not shown (the reference does not resolve ε)
    samplers: tuple[str, ...] = field(default=())  # the samplers the run has cells of
    #: the reference trajectories' mean excess length per training seed (STUDY.md's *Why*; empty without rows)
    straightness: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def straightness_interval(self) -> tuple[float, float, float] | None:
        """(mean, low, high) of the excess length: its 95% t interval over training seeds (low = high = mean with
        one seed); None without rows."""
        v = self.straightness
        if not len(v):
            return None
        low, high = Estimate.of_values(v).interval() if len(v) > 1 else (v[0], v[0])
        return float(v.mean()), float(low), float(high)

    def straightness_text(self) -> str:
        """The mean excess length with its 95% t interval over training seeds, or why there is none."""
        interval = self.straightness_interval()
        if interval is None:
            return "—"
        mean, low, high = interval
        return f"{mean:.3g} (1 training seed)" if len(self.straightness) == 1 else f"{mean:.3g} [{low:.3g}, {high:.3g}]"

    def limit_of(self, sampler: str) -> Limit | Missing:
        return self.ode if SamplerSpec.parse(sampler).deterministic else self.chains.get(
            sampler, Missing("chain", f"{sampler} was not run", f"{sampler} to sampling.samplers"))


def _is_reference(rows: pd.DataFrame, s: Settings) -> pd.Series:
    return (rows["sampler"] == s.reference_sampler) & (rows["spacing"] == s.reference_spacing) & \
        (rows["nfe"] == s.reference_nfe)


def answer(df: pd.DataFrame, s: Settings) -> list[RunAnswer]:
    """The steps-needed answer for every run with headline rows (in the frame's order of runs)."""
    rows = quality_rows(df, s.metric)
    rng = np.random.default_rng(s.seed)
    seeds = {m: Seeds(part, s.bootstrap, rng) for m, part in rows.groupby("method", sort=False)}
    is_reference = _is_reference(rows, s)
    references = {m: seeds[m].means(part) for m, part in rows[is_reference].groupby("method", sort=False)}
    ddpm = next((m for m, part in rows.groupby("method", sort=False)
                 if (part["family"] == "ddpm").all() and m in references), None)
    out = []
    for m, part in rows.groupby("method", sort=False):
        family = text(part["family"].iloc[0])
        # the curves run over the study's budgets: the reference cell is a limit, not a point of the grid
        run_curves = curves(seeds[m], part[~is_reference[part.index]])
        errors = SolverErrors.of(df, m)
        ode = ode_limit(run_curves, errors, s.solver_error, family)
        label = f"{s.reference_sampler}, K = T = {s.reference_nfe}"
        stochastic = dict.fromkeys([smp for smp, _ in run_curves if not SamplerSpec.parse(smp).deterministic]
                                   + ([s.reference_sampler] if m in references else []))
        chains = {smp: chain_limit(smp, run_curves, references.get(m) if smp == s.reference_sampler else None, label,
                                   family) for smp in stochastic}
        own = {}
        for (smp, sp), (grid, draws) in run_curves.items():
            limit = ode if SamplerSpec.parse(smp).deterministic else chains[smp]
            if isinstance(limit, Limit):
                own[(smp, sp)] = _needed(grid, first_converged(grid, draws, limit.draws, s.tolerance))
        best = None
        if isinstance(ode, Limit):
            hits = {k: first_converged(g, v, ode.draws, s.tolerance) for k, (g, v) in run_curves.items()}
            fewest = np.min(np.stack(list(hits.values())), 0)
            grid = sorted({n for g, _ in run_curves.values() for n in g})
            (smp, sp), _ = min(hits.items(), key=lambda kv: (kv[1][0], kv[0][0]))
            best = (smp, sp, _needed(grid, fewest))
        to_ddpm = {}
        if ddpm is not None:
            target = (1 + s.tolerance) * references[ddpm]
            to_ddpm = {k: _needed(g, first_below(g, v, target)) for k, (g, v) in run_curves.items()}
        to_error, unresolved = {}, None
        err_rows = errors.rows
        if not err_rows.empty:
            if errors.resolved(s.solver_error):
                for k, (g, v) in curves(Seeds(err_rows, s.bootstrap, rng), err_rows).items():
                    to_error[k] = _needed(g, first_below(g, v, np.full(len(v), s.solver_error)))
            else:
                unresolved = (f"its solver-error reference (estimate {errors.estimate:.2g}) does not resolve "
                              f"ε = {s.solver_error:g}")
        straight = df[(df["method"] == m) & (df["metric"] == STRAIGHTNESS_METRIC) & (df["status"] == "ok")]
        out.append(RunAnswer(m, family, seeds[m].n_train, ode, chains, own, best, to_ddpm, to_error, unresolved,
                             tuple(dict.fromkeys(smp for smp, _ in run_curves)),
                             straight.groupby("train_seed")["value"].mean().to_numpy(float)))
    return out


def excess_rows(df: pd.DataFrame, answers: Sequence[RunAnswer], s: Settings) -> pd.DataFrame:
    """How far each run's best solver at each NFE is from its own converged limit, seed by seed: for every run with
    an ODE limit read at a cell, each (training seed, sampling seed) of a deterministic cell gets |FID_cell /
    FID_ODE∞ − 1| (metric :data:`EXCESS_METRIC`), the limit cell's FID taken at the same seeds; at each NFE the
    (sampler, spacing) with the smallest mean distance is the run's best solver there, and its rows are returned.
    They copy that cell's identity and context, so a claim judges them like any metric (STUDY.md's flow-matching
    claim)."""
    rows = quality_rows(df, s.metric)
    out = []
    for a in answers:
        if not isinstance(a.ode, Limit) or a.ode.cell is None:
            continue
        run = rows[(rows["method"] == a.method) & rows["sampler"].map(lambda x: SamplerSpec.parse(x).deterministic)]
        lsmp, lsp, lnfe = a.ode.cell
        limit = run[(run["sampler"] == lsmp) & (run["spacing"] == lsp) & (run["nfe"] == lnfe)]
        ref = {(r["train_seed"], r["seed"]): r["value"] for r in limit.to_dict("records")}
        for _, at in run.groupby("nfe", sort=True):
            cells = {}
            for (smp, sp), part in at.groupby(["sampler", "spacing"], sort=False):
                cells[(smp, sp)] = [{**r, "metric": EXCESS_METRIC, "value": abs(r["value"] / ref[key] - 1.0)}
                                    for r in part.to_dict("records") if (key := (r["train_seed"], r["seed"])) in ref]
            cells = {k: v for k, v in cells.items() if v}
            if cells:
                out += min(cells.values(), key=lambda v: float(np.mean([r["value"] for r in v])))
    return pd.DataFrame(out, columns=df.columns).astype(df.dtypes.to_dict()) if out else df.iloc[0:0]


def best_spacing(needed: dict[tuple[str, str], Needed], sampler: str) -> tuple[str, Needed] | None:
    """The spacing with the smallest point estimate for ``sampler`` (ties: the first listed)."""
    options = [(spacing, n) for (smp, spacing), n in needed.items() if smp == sampler]
    return min(options, key=lambda o: o[1].estimate) if options else None


def _cell(answer_: RunAnswer, needed: dict[tuple[str, str], Needed], sampler: str, several_spacings: bool,
          own: bool = False) -> str:
    if not SamplerSpec.parse(sampler).decl.applies_to(options_type(answer_.family)):
        return "n/a"
    best = best_spacing(needed, sampler)
    if best is None:
        if own and sampler in answer_.samplers and isinstance(answer_.limit_of(sampler), Missing):
            return NO_LIMIT
        return "—"
    spacing, n = best
    return f"{n} ({spacing})" if several_spacings else str(n)


def _fewest(needed: dict[tuple[str, str], Needed]) -> tuple[str, str, Needed]:
    """The (sampler, spacing) with the smallest point estimate (ties: the sampler first in name order)."""
    (smp, sp), n = min(needed.items(), key=lambda kv: (kv[1].estimate, kv[0][0]))
    return smp, sp, n


def _best_cell(a: RunAnswer) -> str:
    if a.best is None:
        return NO_LIMIT
    smp, sp, n = a.best
    if math.isinf(n.estimate):
        return f"{n}"
    return f"{n} ({smp}, {sp})"


def _sentence(a: RunAnswer, s: Settings) -> str:
    seeds = "one training seed" if a.n_train == 1 else f"{a.n_train} training seeds"
    parts = []
    if isinstance(a.ode, Limit) and a.best is not None:
        smp, sp, n = a.best
        if math.isinf(n.estimate):
            parts.append(f"**{a.method}**: no sampler comes within ±{s.tolerance:.0%} of its ODE limit FID_ODE∞ = "
                         f"{a.ode} on this grid (> {n.grid_max:g} NFE)")
        else:
            parts.append(f"**{a.method}** needs {n} NFE (best of solvers: {smp}, {sp}) to come within ±{s.tolerance:.0%} "
                         f"of its ODE limit FID_ODE∞ = {a.ode}")
        ddim = best_spacing(a.to_own, "ddim-eta0")
        if ddim is not None and smp != "ddim-eta0":
            parts.append(f"DDIM (η = 0) needs {ddim[1]}")
    elif not options_type(a.family).eps_prediction:
        parts.append(f"**{a.method}**: {a.ode.why}, so no limit of its own; only the common target applies")
    else:
        parts.append(f"**{a.method}**: {NO_LIMIT} for its ODE solvers ({a.ode.why}; to measure one, add {a.ode.add})")
    for smp, limit in a.chains.items():
        if isinstance(limit, Limit):
            parts.append(f"its {smp} chain converges to FID_SDE∞ = {limit}")
    if a.to_ddpm:
        smp2, sp2, n2 = _fewest(a.to_ddpm)
        parts.append(f"DDPM's 1000-step {s.metric} is reached at {n2} NFE ({smp2}, {sp2})" if not math.isinf(n2.estimate)
                     else f"DDPM's 1000-step {s.metric} is not reached (> {n2.grid_max:g} NFE)")
    if a.to_error:
        smp3, sp3, n3 = _fewest(a.to_error)
        parts.append(f"solver error ≤ {s.solver_error:g} at {n3} NFE ({smp3}, {sp3})" if not math.isinf(n3.estimate)
                     else f"no solver reaches error ≤ {s.solver_error:g} (> {n3.grid_max:g} NFE)")
    return "; ".join(parts) + f" ({seeds})."


def several_spacings(answers: Sequence[RunAnswer]) -> bool:
    """Whether the answers span several spacings: only then does a cell name the spacing that needs the fewest NFE."""
    return len({sp for a in answers for _, sp in (*a.to_own, *a.to_ddpm)}) > 1


def steps_blocks(df: pd.DataFrame, s: Settings, answers: Sequence[RunAnswer] | None = None) -> list[Block]:
    """The report's opening section: the table (one row per run: its limits, the best of solvers, one column per
    sampler), the same for DDPM's target and for the solver error, then one sentence per run and the caveats.
    ``answers``: :func:`answer` of the same frame and settings, when the caller has them already."""
    answers = answer(df, s) if answers is None else answers
    if not answers:
        return [Paragraph(f"No {s.metric} rows: the question cannot be answered from this run.")]
    samplers = list(dict.fromkeys(s.samplers or sorted({smp for a in answers for smp in a.samplers})))
    several = several_spacings(answers)
    deterministic = [smp for smp in samplers if SamplerSpec.parse(smp).deterministic]
    spacing_note = " (spacing with the fewest NFE in brackets)" if several else ""

    def chain_text(a: RunAnswer) -> str:
        return "; ".join(f"{smp}: {lim}" for smp, lim in a.chains.items()) or "—"

    head = Table(("run", "training seeds", f"ODE limit {s.metric} (cell)", f"chain limit {s.metric}",
                  "best of solvers (NFE)", "excess path length", *samplers),
                 tuple((a.method, str(a.n_train), str(a.ode), chain_text(a), _best_cell(a), a.straightness_text(),
                        *(_cell(a, a.to_own, smp, several, own=True) for smp in samplers)) for a in answers),
                 f"NFE_δ: NFE from which each sampler stays within ±δ = {s.tolerance:g} of the converged {s.metric} of "
                 f"its kind: the run's ODE limit (the cheapest ODE cell with solver error ≤ ε = {s.solver_error:g}) for "
                 "a deterministic solver, its own chain limit (K = T) for a stochastic one; never a best cell. Best of "
                 f"solvers: the fewest NFE of any sampler and spacing within ±δ of the ODE limit. 95% bootstrap "
                 f"intervals on the NFE grid{spacing_note}. Excess path length: why (STUDY.md), the mean over images of "
                 "(path length)/‖x_0 − x_T‖ − 1 of the run's reference ODE solves in its own coordinates (0: straight "
                 "lines), with its 95% t interval over training seeds")
    blocks: list[Block] = [head]
    if any(a.to_ddpm for a in answers):
        blocks.append(Table(("run", "training seeds", *samplers),
                            tuple((a.method, str(a.n_train), *(_cell(a, a.to_ddpm, smp, several) for smp in samplers))
                                  for a in answers),
                            f"NFE needed to come within δ = {s.tolerance:g} of DDPM's 1000-step {s.metric} "
                            "(FID ≤ (1 + δ) × target: one target for every run, DDGAN's fixed T included)"))
    if any(a.to_error or a.error_unresolved for a in answers):
        blocks.append(Table(("run", "training seeds", *deterministic),
                            tuple((a.method, str(a.n_train), *(("reference unresolved",) * len(deterministic)
                                                               if a.error_unresolved else
                                                               (_cell(a, a.to_error, smp, several)
                                                                for smp in deterministic)))
                                  for a in answers if a.to_error or a.error_unresolved),
                            f"NFE_ε: NFE at which the solver error (RMS distance to the converged RK4 reference solve "
                            f"of the same ODE from the same x_T, [−1, 1] units) is ≤ ε = {s.solver_error:g}; shown where "
                            f"the reference's error estimate is ≤ {RESOLUTION:g} ε"))
    blocks.append(Bullets(tuple(_sentence(a, s) for a in answers)))
    blocks.append(Bullets(tuple(caveats(df, answers, s))))
    return blocks


def caveats(df: pd.DataFrame, answers: Sequence[RunAnswer], s: Settings) -> list[str]:
    """What the table cannot say: one training seed, limits not measured on this grid (and what to add),
    unconverged solver references, and samplers that do not solve the Gaussian probability flow."""
    notes = []
    single = [a.method for a in answers if a.n_train == 1]
    if single:
        notes.append(f"One training seed for {', '.join(single)}: their intervals are over sampling seeds only and "
                     "do not cover training variation.")
    for a in answers:
        for limit in (a.ode, *a.chains.values()):
            if isinstance(limit, Missing) and options_type(a.family).eps_prediction:
                notes.append(f"{a.method}: {NO_LIMIT} ({limit.kind}): {limit.why}; add {limit.add}.")
        if a.error_unresolved:
            notes.append(f"{a.method}: NFE_ε not shown: {a.error_unresolved}.")
    ref = df[(df["metric"] == SOLVER_REFERENCE) & df["reason"].notna()]
    for m in sorted(set(ref["method"])):
        notes.append(f"{m}: solver-error reference {text(ref[ref['method'] == m]['reason'].iloc[0])}; the figure and "
                     "NFE_ε show only the errors it resolves.")
    seen = set()
    for a in answers:
        for smp in a.samplers:
            why = data_law_caveat(smp, options_type(a.family)) if smp != FLOOR_SAMPLER else None
            if why and (a.family, smp) not in seen:
                seen.add((a.family, smp))
                notes.append(f"{a.method} / {smp}: {why}.")
    notes.append(f"Headline metric: {s.metric} (study-internal features; not comparable to published CIFAR-10 "
                 "Inception FID). 'n/a': the sampler does not apply to the family (a generator fixed at its T samples "
                 "only its own chain); '—': not run at the study's budgets.")
    return notes


def settings_from_config(cfg: Any, metric: str = "fid") -> Settings:
    """:class:`Settings` from a :class:`~diffsteps.config.StudyConfig`."""
    sn, ref = cfg.evaluation.steps_needed, cfg.sampling.reference
    own = (type(cfg.method_config[run]).own_sampler for run in cfg.methods)
    samplers = tuple(dict.fromkeys((*cfg.sampling.samplers, ref.sampler, *(s for s in own if s is not None))))
    return Settings(sn.tolerance, sn.solver_error, sn.bootstrap, sn.seed, ref.sampler, ref.spacing, ref.budget,
                    metric, samplers)
