"""The answer the report leads with (STUDY.md, "How many steps"): how many NFE each run needs, per sampler.

- **NFE_δ**: the smallest NFE on the grid at which a run's headline FID (mean over seeds) is within (1 + δ) of its
  *converged* FID: its reference cell (e.g. 1000-step ancestral DDPM) where it has one, else its best cell
  (flagged). "> max" when it never gets there, "≤ min" when it is there at the smallest NFE.
- **To DDPM's 1000-step FID**: the same with DDPM's reference FID as the target, which puts a run with a model per T (DDGAN,
  NFE = T) and every diffusion run on one scale.
- **NFE_ε**: the smallest NFE at which a deterministic sampler's solver error is ≤ ε.
- **Uncertainty**: a bootstrap over training seeds, and over sampling seeds within each, shared by every cell of
  a run (paired); the 95% interval is read on the NFE grid.

Every function takes the tidy results frame (:mod:`diffsteps.rows`) and plain settings, so tests build frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..rows import FLOOR_SAMPLER
from ..families import options_type
from ..sampler_registry import SamplerSpec, data_law_caveat
from .render import Block, Bullets, Paragraph, Table
from .summary import missing, text

SOLVER_ERROR = "solver_error"
SOLVER_REFERENCE = "solver_error_reference_shift"


@dataclass(frozen=True)
class Settings:
    """What the table needs from params.yaml: δ, ε, the bootstrap, and which cell is a run's reference."""

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

    def _fmt(self, v: float) -> str:
        out = self.value(v)
        return out if isinstance(out, str) else f"{out:g}"

    def __str__(self) -> str:
        return f"{self._fmt(self.estimate)} [{self._fmt(self.low)}, {self._fmt(self.high)}]"


class Run:
    """One run's cells of one metric: values indexed by (training seed, sampling seed), with the bootstrap
    weights shared by all of them (B, n_t, n_s): replicate b counts how often each pair is drawn."""

    def __init__(self, rows: pd.DataFrame, n_boot: int, rng: np.random.Generator):
        self.ts = sorted({int(v) if not missing(v) else -1 for v in rows["train_seed"]})
        self.ss = sorted({int(v) if not missing(v) else -1 for v in rows["seed"]})
        nt, ns = len(self.ts), len(self.ss)
        w = np.zeros((n_boot + 1, nt, ns))
        w[0] = 1.0  # replicate 0: the data as they are (the point estimate)
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


def first_within(grid: Sequence[float], curves: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per replicate, the smallest grid NFE whose value is ≤ the replicate's target, else inf.
    ``curves`` (B, G) in grid order, ``target`` (B,)."""
    hit = curves <= target[:, None]
    idx = np.where(hit.any(1), hit.argmax(1), -1)
    out = np.asarray(grid, float)[np.maximum(idx, 0)]
    return np.where(idx < 0, math.inf, out)


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
    """Everything the table says about one run."""

    method: str
    family: str
    n_train: int
    converged: float | None  # the point estimate of its converged FID
    converged_from: str  # "reference" or "best cell (…)"
    to_own: dict[tuple[str, str], Needed]  # (sampler, spacing) → NFE_δ
    to_ddpm: dict[tuple[str, str], Needed]
    to_error: dict[tuple[str, str], Needed]


def _curves(run: Run, rows: pd.DataFrame) -> dict[tuple[str, str], tuple[list[float], np.ndarray]]:
    """(sampler, spacing) → (NFE grid, replicate means (B + 1, G))."""
    out = {}
    for (sampler, spacing), part in rows.groupby(["sampler", "spacing"], dropna=False, sort=False):
        grid = sorted({float(n) for n in part["nfe"] if not missing(n)})
        out[(sampler, text(spacing))] = (grid, np.stack([run.means(part[part["nfe"] == n]) for n in grid], 1))
    return out


def _is_reference(rows: pd.DataFrame, s: Settings) -> pd.Series:
    return (rows["sampler"] == s.reference_sampler) & (rows["spacing"] == s.reference_spacing) & \
        (rows["nfe"] == s.reference_nfe)


def answer(df: pd.DataFrame, s: Settings) -> list[RunAnswer]:
    """The steps-needed answer for every run with headline rows (in the frame's order of runs)."""
    rows = quality_rows(df, s.metric)
    rng = np.random.default_rng(s.seed)
    runs = {m: Run(part, s.bootstrap, rng) for m, part in rows.groupby("method", sort=False)}
    conv: dict[str, tuple[np.ndarray, str]] = {}
    for m, part in rows.groupby("method", sort=False):
        ref = part[_is_reference(part, s)]
        if not ref.empty:
            conv[m] = (runs[m].means(ref), "reference")
            continue
        keys, cells = zip(*part.groupby(["sampler", "spacing", "nfe"], dropna=False))
        stacked = np.stack([runs[m].means(c) for c in cells], 1)
        key = keys[int(np.nanargmin(stacked[0]))]
        conv[m] = (np.nanmin(stacked, 1), f"best cell ({key[0]}, {text(key[1])}, {text(key[2])} NFE), flagged: "
                                         "no reference cell")
    ddpm = next((m for m, part in rows.groupby("method", sort=False)
                 if (part["family"] == "ddpm").all() and conv[m][1] == "reference"), None)
    errors = df[(df["metric"] == SOLVER_ERROR) & (df["status"] == "ok")]
    out = []
    for m, part in rows.groupby("method", sort=False):
        run, (c, source) = runs[m], conv[m]
        # the curves run over the study's budgets: the reference cell is the target, not a point of the grid
        curves = _curves(run, part[~_is_reference(part, s)])
        own = {k: _needed(g, first_within(g, v, (1 + s.tolerance) * c)) for k, (g, v) in curves.items()}
        to_ddpm = {}
        if ddpm is not None:
            target = (1 + s.tolerance) * conv[ddpm][0]
            to_ddpm = {k: _needed(g, first_within(g, v, target)) for k, (g, v) in curves.items()}
        err_rows = errors[errors["method"] == m]
        to_error = {}
        if not err_rows.empty:
            erun = Run(err_rows, s.bootstrap, rng)
            for k, (g, v) in _curves(erun, err_rows).items():
                to_error[k] = _needed(g, first_within(g, v, np.full(len(v), s.solver_error)))
        out.append(RunAnswer(m, text(part["family"].iloc[0]), run.n_train, float(c[0]), source, own, to_ddpm,
                             to_error))
    return out


def best_spacing(needed: dict[tuple[str, str], Needed], sampler: str) -> tuple[str, Needed] | None:
    """The spacing with the smallest point estimate for ``sampler`` (ties: the first listed)."""
    options = [(spacing, n) for (smp, spacing), n in needed.items() if smp == sampler]
    return min(options, key=lambda o: o[1].estimate) if options else None


def _cell(answer_: RunAnswer, needed: dict[tuple[str, str], Needed], sampler: str, several_spacings: bool) -> str:
    if not SamplerSpec.parse(sampler).decl.applies_to(options_type(answer_.family)):
        return "n/a"
    best = best_spacing(needed, sampler)
    if best is None:
        return "—"
    spacing, n = best
    return f"{n} ({spacing})" if several_spacings else str(n)


def _fewest(needed: dict[tuple[str, str], Needed]) -> tuple[str, str, Needed]:
    """The (sampler, spacing) with the smallest point estimate (ties: the sampler first in name order)."""
    (smp, sp), n = min(needed.items(), key=lambda kv: (kv[1].estimate, kv[0][0]))
    return smp, sp, n


def _sentence(a: RunAnswer, s: Settings) -> str:
    if not a.to_own:
        return f"**{a.method}**: no {s.metric} rows."
    smp, sp, n = _fewest(a.to_own)
    if math.isinf(n.estimate):
        head = (f"**{a.method}** never comes within {s.tolerance:.0%} of its converged {s.metric} "
                f"({a.converged:.3g}) on this grid (> {n.grid_max:g} NFE with every sampler)")
    else:
        head = (f"**{a.method}** needs {n} NFE with {smp} ({sp}) to come within {s.tolerance:.0%} of its converged "
                f"{s.metric} ({a.converged:.3g}, its {'reference cell' if a.converged_from == 'reference' else 'best cell'})")
    ddim = best_spacing(a.to_own, "ddim-eta0")
    if ddim is not None and smp != "ddim-eta0":
        head += f"; DDIM (η = 0) needs {ddim[1]}"
    parts = [head]
    if a.to_ddpm:
        smp2, sp2, n2 = _fewest(a.to_ddpm)
        parts.append(f"DDPM's 1000-step {s.metric} is reached at {n2} NFE ({smp2}, {sp2})" if not math.isinf(n2.estimate)
                     else f"DDPM's 1000-step {s.metric} is not reached (> {n2.grid_max:g} NFE)")
    if a.to_error:
        smp3, sp3, n3 = _fewest(a.to_error)
        parts.append(f"solver error ≤ {s.solver_error:g} at {n3} NFE ({smp3}, {sp3})" if not math.isinf(n3.estimate)
                     else f"no solver reaches error ≤ {s.solver_error:g} (> {n3.grid_max:g} NFE)")
    seeds = "one training seed" if a.n_train == 1 else f"{a.n_train} training seeds"
    return "; ".join(parts) + f" ({seeds})."


def several_spacings(answers: Sequence[RunAnswer]) -> bool:
    """Whether the answers span several spacings: only then does a cell name the spacing that needs the fewest NFE."""
    return len({sp for a in answers for _, sp in a.to_own}) > 1


def steps_blocks(df: pd.DataFrame, s: Settings) -> list[Block]:
    """The report's opening section: the table (one row per run, one column per sampler), the same for DDPM's
    target and for the solver error, then one sentence per run and the caveats."""
    answers = answer(df, s)
    if not answers:
        return [Paragraph(f"No {s.metric} rows: the question cannot be answered from this run.")]
    samplers = list(dict.fromkeys(s.samplers or sorted({smp for a in answers for smp, _ in a.to_own})))
    several = several_spacings(answers)

    def table(attr: str, caption: str, only: Sequence[str] | None = None) -> Table:
        use = [smp for smp in samplers if only is None or smp in only]
        rows = tuple((a.method, f"{a.converged:.3g}" + ("" if a.converged_from == "reference" else " (best cell)"),
                      str(a.n_train), *(_cell(a, getattr(a, attr), smp, several) for smp in use)) for a in answers)
        return Table(("run", "converged " + s.metric, "training seeds", *use), rows, caption)

    spacing_note = " (spacing with the fewest NFE in brackets)" if several else ""
    deterministic = [smp for smp in samplers if SamplerSpec.parse(smp).deterministic]
    blocks: list[Block] = [
        table("to_own", f"NFE_δ: NFE needed to come within δ = {s.tolerance:g} of the run's converged {s.metric} "
                        f"(95% bootstrap interval on the NFE grid){spacing_note}"),
    ]
    if any(a.to_ddpm for a in answers):
        blocks.append(table("to_ddpm", f"NFE needed to come within δ = {s.tolerance:g} of DDPM's 1000-step "
                                       f"{s.metric} (one target for every run, DDGAN's fixed T included)"))
    if any(a.to_error for a in answers):
        blocks.append(table("to_error", f"NFE_ε: NFE at which the solver error (RMS distance to the reference ODE "
                                        f"solve from the same x_T, [−1, 1] units) is ≤ ε = {s.solver_error:g}",
                            deterministic))
    blocks.append(Bullets(tuple(_sentence(a, s) for a in answers)))
    blocks.append(Bullets(tuple(caveats(df, answers, s))))
    return blocks


def caveats(df: pd.DataFrame, answers: Sequence[RunAnswer], s: Settings) -> list[str]:
    """What the table cannot say: one training seed, best-cell convergence, unconverged solver references, and
    samplers that do not solve the Gaussian probability flow."""
    notes = []
    single = [a.method for a in answers if a.n_train == 1]
    if single:
        notes.append(f"One training seed for {', '.join(single)}: their intervals are over sampling seeds only and "
                     "do not cover training variation.")
    flagged = [f"{a.method}: {a.converged_from}" for a in answers if a.converged_from != "reference"]
    if flagged:
        notes.append("Converged FID taken from the run's best cell: " + "; ".join(flagged) + ".")
    ref = df[(df["metric"] == SOLVER_REFERENCE) & df["reason"].notna()]
    for m in sorted(set(ref["method"])):
        notes.append(f"{m}: solver-error reference not converged ({text(ref[ref['method'] == m]['reason'].iloc[0])}).")
    seen = set()
    for a in answers:
        for smp in {smp for smp, _ in a.to_own}:
            why = data_law_caveat(smp, options_type(a.family)) if smp != FLOOR_SAMPLER else None
            if why and (a.family, smp) not in seen:
                seen.add((a.family, smp))
                notes.append(f"{a.method} / {smp}: {why}.")
    notes.append(f"Headline metric: {s.metric} (study-internal features; not comparable to published CIFAR-10 "
                 "Inception FID). 'n/a': the sampler does not apply to the family (a generator fixed at its T samples only "
                 "its own chain); '—': not run.")
    return notes


def settings_from_config(cfg: Any, metric: str = "fid") -> Settings:
    """:class:`Settings` from a :class:`~diffsteps.config.StudyConfig`."""
    sn, ref = cfg.evaluation.steps_needed, cfg.sampling.reference
    own = (type(cfg.method_config[run]).own_sampler for run in cfg.methods)
    samplers = tuple(dict.fromkeys((*cfg.sampling.samplers, ref.sampler, *(s for s in own if s is not None))))
    return Settings(sn.tolerance, sn.solver_error, sn.bootstrap, sn.seed, ref.sampler, ref.spacing, ref.budget,
                    metric, samplers)
