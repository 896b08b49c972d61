"""Published claims and the one rule that judges them against this run.

STUDY.md's rule: a claim is *supported* when the difference has the claimed sign and its 95%
interval excludes zero; *contradicted* when the opposite holds; *inconclusive* otherwise. "Matches" is an
equivalence test: supported when the 95% interval of the difference lies inside ±δ, δ = ``match_margin`` × the
reference side's mean; contradicted when it lies wholly outside ±δ; inconclusive otherwise (overlapping
intervals would get easier as seeds get fewer). The interval on the difference of means is Welch's t interval,
because the two sides need not share a variance (a deterministic and a stochastic sampler rarely do).

The unit of replication follows the claim (:attr:`Claim.unit`): a claim about a *method* is judged over training
runs, each contributing its mean over sampling seeds, and with one training seed it is "not testable: one
training seed" (the comparison of the two trained networks over sampling seeds is shown beside it, as
description only); a claim about a *sampler* on one trained network is judged over sampling seeds, one
comparison per training seed.

Claims are data: a :class:`Claim` names a metric, two row selectors and the columns on which the
two sides must agree. Later methods append to :data:`CLAIMS`; nothing else changes. A claim the run
cannot evaluate is reported as "not evaluated: <reason>", never dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..rows import CONTEXT_COLUMNS, SEED_COLUMNS
from .limits import EXCESS_METRIC
from .summary import excluded_note, extractor_label, in_every_feature_space, missing, sort_key, text, variant_label

RELATIONS = ("less", "greater", "matches")
UNITS = ("method", "sampler")
CONFIDENCE = 0.95
#: δ of a "matches" claim as a share of the reference side's mean (``evaluation.claims.match_margin``)
DEFAULT_MATCH_MARGIN = 0.1
NOT_TESTABLE = "not testable: one training seed"

#: Selects the rows of one side of a claim (a boolean mask); :class:`Where` is the usual one.
Selector = Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Verdict:
    """The judgement of one comparison. ``diff_mean`` and the interval are for mean(a) − mean(b)."""

    label: str  # supported | contradicted | inconclusive
    diff_mean: float
    ci_low: float
    ci_high: float
    n_a: int
    n_b: int
    note: str = ""


def _finite(values: Sequence[float], side: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"verdict: {side} values {arr.tolist()} must be finite (a failed seed is excluded, not NaN)")
    return arr


@dataclass(frozen=True)
class Estimate:
    """One side of a comparison: a mean, the variance of that mean, and the degrees of freedom of
    that variance (n − 1 for n independent values)."""

    mean: float
    var: float
    dof: int
    n: int

    @classmethod
    def of_values(cls, values: np.ndarray) -> "Estimate":
        """The mean of n independent values (seeds)."""
        return cls(float(values.mean()), float(values.var(ddof=1)) / len(values), len(values) - 1, len(values))

    @classmethod
    def of_row(cls, value: float, standard_error: float, n: int) -> "Estimate":
        """A row that is itself a mean over n independent units (images) with its standard error."""
        return cls(float(value), float(standard_error) ** 2, n - 1, n)

    def interval(self) -> tuple[float, float]:
        """The 95% t interval of the mean."""
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, self.dof) * math.sqrt(self.var)
        return self.mean - half, self.mean + half


def welch_estimate_interval(a: Estimate, b: Estimate) -> tuple[float, float]:
    """The 95% Welch t interval of a.mean − b.mean (Welch–Satterthwaite degrees of freedom)."""
    diff = a.mean - b.mean
    se = math.sqrt(a.var + b.var)
    if se == 0.0:  # no spread on either side: the interval collapses to the observed difference
        return diff, diff
    dof = (a.var + b.var) ** 2 / (a.var ** 2 / a.dof + b.var ** 2 / b.dof)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * se
    return diff - half, diff + half


def judge(a: Estimate, b: Estimate, claim: str, match_margin: float = DEFAULT_MATCH_MARGIN) -> Verdict:
    """Judge "a is less than / greater than / matches b" by STUDY.md's rule (see the module docstring);
    ``b`` is the reference side of a "matches" claim."""
    if claim not in RELATIONS:
        raise ValueError(f"verdict: claim = {claim!r} is invalid: expected one of {list(RELATIONS)}")
    low, high = welch_estimate_interval(a, b)
    diff = a.mean - b.mean
    if claim == "matches":
        delta = match_margin * abs(b.mean)
        label = ("supported" if -delta < low and high < delta else
                 "contradicted" if low > delta or high < -delta else "inconclusive")
        note = f"equivalence margin ±δ = ±{delta:.4g} ({match_margin:g} × the reference mean {b.mean:.4g})"
        return Verdict(label, diff, low, high, a.n, b.n, note)
    # 'less' claims a negative difference, 'greater' a positive one.
    claimed, opposite = (high < 0, low > 0) if claim == "less" else (low > 0, high < 0)
    label = "supported" if claimed else "contradicted" if opposite else "inconclusive"
    return Verdict(label, diff, low, high, a.n, b.n, "")


def verdict(a_values: Sequence[float], b_values: Sequence[float], claim: str,
            match_margin: float = DEFAULT_MATCH_MARGIN) -> Verdict:
    """Judge "a is less than / greater than / matches b" over seeds: each value is one seed's."""
    if claim not in RELATIONS:
        raise ValueError(f"verdict: claim = {claim!r} is invalid: expected one of {list(RELATIONS)}")
    a, b = _finite(a_values, "a"), _finite(b_values, "b")
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return Verdict("inconclusive", diff, math.nan, math.nan, len(a), len(b), "too few seeds")
    return judge(Estimate.of_values(a), Estimate.of_values(b), claim, match_margin)


# ---------------------------------------------------------------------------------------------
# the claims table


@dataclass(frozen=True)
class AtMost:
    """Column predicate ``value ≤ limit`` that can describe itself in the report."""

    limit: float

    def __call__(self, column: pd.Series) -> pd.Series:
        return column <= self.limit

    def __str__(self) -> str:
        return f"≤ {self.limit:g}"


class Where:
    """A row selector: each named column equals the given value or satisfies the given predicate.

    Its ``str`` (``sampler = ddim-eta0, nfe ≤ 20``) tells the reader which rows a claim needed.
    """

    def __init__(self, **conditions: Any):
        self.conditions = conditions

    def __call__(self, df: pd.DataFrame) -> pd.Series:
        mask = pd.Series(True, index=df.index)
        for col, cond in self.conditions.items():
            hit = cond(df[col]) if callable(cond) else df[col] == cond
            mask &= hit.fillna(False).astype(bool)
        return mask

    def __str__(self) -> str:
        return ", ".join(f"{c} {cond}" if callable(cond) else f"{c} = {cond}" for c, cond in self.conditions.items())


@dataclass(frozen=True)
class Claim:
    """A published claim: "<a> is <relation> <b> on <metric>".

    ``a`` and ``b`` select rows of one metric; ``match_on`` names the columns that must agree between
    the two sides of one comparison (one comparison per shared value, e.g. per NFE). ``per`` names
    columns of side ``a`` only that split it into separate comparisons against the same ``b`` (e.g.
    each Gamma run, one per θ0, against the one Gaussian baseline). Quality metrics are always
    compared within one feature extractor, weights and N.

    ``unit``: ``method`` (a claim about a method, judged over training runs: each contributes its mean over
    sampling seeds) or ``sampler`` (about samplers on one trained network, judged over its sampling seeds:
    one comparison per training seed).

    ``row_error``: the metric's rows are themselves means over independent units with a standard
    error (the NLL bound: a mean over held-out images). A side with a single row is then described by that
    standard error over its n units, and the note says so.
    """

    text: str
    source: str
    metric: str
    relation: str
    a: Selector
    b: Selector
    match_on: tuple[str, ...] = ()
    per: tuple[str, ...] = ()
    row_error: bool = False
    unit: str = "method"

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"Claim {self.text!r}: relation = {self.relation!r} is invalid: expected one of "
                             f"{list(RELATIONS)}")
        if self.unit not in UNITS:
            raise ValueError(f"Claim {self.text!r}: unit = {self.unit!r} is invalid: expected one of {list(UNITS)}")

    @property
    def keys(self) -> tuple[str, ...]:
        """The columns one comparison fixes: ``match_on``, and the trained network for a sampler claim."""
        return (*self.match_on, "train_seed") if self.unit == "sampler" else self.match_on


_DDIM_T1 = "DDIM (arXiv 2010.02502), Table 1, CIFAR-10"
_S = {"unit": "sampler"}  # DDIM's claims compare samplers on one trained network
_SAME_CHAIN = ("method", "noise", "spacing", "nfe")
#: a noise family against the Gaussian baseline: same sampler, chain and NFE, one comparison per run
_TWIN = ("sampler", "spacing", "nfe")
_PER_RUN = ("method", "noise")

CLAIMS: list[Claim] = [
    # DDIM's claims are about Gaussian DDPM, so they are judged on the ddpm family's runs
    Claim("DDIM (η=0) has lower FID than ancestral sampling with σ²=β̃ (η=1) at ≤ 20 NFE",
          f"{_DDIM_T1}: 13.36 vs 41.07 at 10 NFE, 6.84 vs 18.36 at 20", "fid", "less",
          Where(family="ddpm", sampler="ddim-eta0", nfe=AtMost(20)),
          Where(family="ddpm", sampler="ancestral-betatilde", nfe=AtMost(20)), _SAME_CHAIN, **_S),
    Claim("DDIM (η=0) has lower FID than large-variance ancestral sampling (σ²=β, the σ̂ of DDIM) at ≤ 20 NFE",
          f"{_DDIM_T1}: 13.36 vs 367.43 at 10 NFE, 6.84 vs 133.37 at 20", "fid", "less",
          Where(family="ddpm", sampler="ddim-eta0", nfe=AtMost(20)),
          Where(family="ddpm", sampler="ancestral-beta", nfe=AtMost(20)), _SAME_CHAIN, **_S),
    Claim("Ancestral sampling with σ²=β has higher FID than with σ²=β̃ at ≤ 100 NFE",
          f"{_DDIM_T1}: σ̂ vs η=1 — 367.43 vs 41.07 at 10 NFE … 9.99 vs 5.78 at 100", "fid", "greater",
          Where(family="ddpm", sampler="ancestral-beta", nfe=AtMost(100)),
          Where(family="ddpm", sampler="ancestral-betatilde", nfe=AtMost(100)), _SAME_CHAIN, **_S),
    Claim("1000-step DDPM (σ²=β) has FID ≤ DDIM (η=0) at 100 NFE",
          f"{_DDIM_T1}: 3.17 (σ̂, 1000 steps) vs 4.16", "fid", "less",
          Where(family="ddpm", sampler="ancestral-beta", nfe=1000),
          Where(family="ddpm", sampler="ddim-eta0", nfe=100, spacing="uniform"), ("method", "noise"), **_S),
    Claim("DDIM (η=0) at 100 NFE has lower FID than 1000-step ancestral sampling with σ²=β̃ (η=1)",
          f"{_DDIM_T1}: 4.16 vs 4.73", "fid", "less",
          Where(family="ddpm", sampler="ddim-eta0", nfe=100, spacing="uniform"),
          Where(family="ddpm", sampler="ancestral-betatilde", nfe=1000), ("method", "noise"), **_S),
    Claim("Gamma noise beats Gaussian at ≤ 20 NFE (lower FID, same network, budget, sampler and chain; per θ0)",
          "DDGM (arXiv 2110.05948), CelebA-64: Gamma-DDIM 11.64 at 10 NFE, 6.83 at 20, against Gaussian rows "
          "copied from DDIM (not retrained)", "fid", "less",
          Where(family="ddgm", nfe=AtMost(20)), Where(family="ddpm", nfe=AtMost(20)), _TWIN, _PER_RUN),
    Claim("Gaussian-mixture noise beats Gaussian at ≤ 20 NFE (lower FID, same network, budget, sampler and chain)",
          "Non-Gaussian DDM (arXiv 2106.07582): mixture noise proposed for better few-step generation", "fid", "less",
          Where(family="mixture", nfe=AtMost(20)), Where(family="ddpm", nfe=AtMost(20)), _TWIN, _PER_RUN),
    # VDM's K-step bound (its model has the posterior variance β̃) against each of DDPM's K-step bounds:
    # DDPM's σ² = β bound is the tighter one at few steps, and a claim judged against the looser one only
    # would be a straw man
    *(Claim(f"VDM has lower bits/dim than DDPM at equal network, training budget and K (DDPM's bound with "
            f"σ² = {label})", "VDM (arXiv 2107.00630): 2.65 bits/dim (its T = ∞ bound) on CIFAR-10 against DDPM's "
            "≤ 3.75 (1000 steps); judged here at each K both evaluate, VDM's T = ∞ bound is in the NLL table",
            "nll_total", "less", Where(family="vdm", variance="betatilde"), Where(family="ddpm", variance=variance),
            ("spacing", "nfe"), _PER_RUN, row_error=True)
      for variance, label in (("betatilde", "β̃"), ("beta", "β"))),
    # DDGAN's model at T = 4 against DDPM's 1000-step reference cell (ancestral, the sampler DDPM's paper used)
    Claim("DDGAN at T = 4 matches 1000-step DDPM (FID; \"matches\": the 95% interval of the difference lies within "
          "± match_margin × DDPM's FID)",
          "Denoising Diffusion GAN (arXiv 2112.07804), Table 1, CIFAR-10: FID 3.75 at NFE 4 against DDPM's 3.21 at "
          "1000; 14.6 at T = 1", "fid", "matches",
          Where(family="ddgan", nfe=4), Where(family="ddpm", sampler="ancestral-betatilde", nfe=1000), (), _PER_RUN),
    # each run's best solver at 10 NFE against its own ODE limit (|FID/FID_ODE∞ − 1|, paired by seed;
    # reporting.steps.excess_rows), over training runs: a run's own limit, so a method with a worse network is not
    # "fast" by converging early to a worse FID, and two-sided, so undershooting the limit is no credit
    Claim("Flow matching keeps its quality at 10 NFE where DDPM does not (its best solver's FID at 10 NFE lies "
          "nearer its own converged ODE limit: |FID/FID_ODE∞ − 1| is smaller)",
          "arXiv 2511.19379, MNIST, one shared U-Net: flow matching keeps its quality at 10 NFE where diffusion "
          "collapses; trajectory curvature 1.02 (flow matching) against 3.45 (diffusion), by its own measure",
          EXCESS_METRIC, "less", Where(family="flow", nfe=10), Where(family="ddpm", nfe=10), (), _PER_RUN),
]

#: ``run`` is the side-a group of a claim judged per run (``Claim.per``), e.g. ``method=ddgm, noise=gamma(...)``
VERDICT_COLUMNS = ("claim", "source", "run", "context", "verdict", "difference (a − b)", "95% interval", "n_a",
                   "n_b", "note")
LABELS = ("supported", "contradicted", "inconclusive")


def overall_verdict(labels: Sequence[str]) -> str:
    """One statement for a claim over its comparisons (samplers, chains, NFE), each judged by STUDY.md's
    rule: ``supported`` / ``contradicted`` when every evaluated comparison is, ``mixed`` when both
    occur, ``supported in k of n (rest inconclusive)`` (or contradicted) when only some are, and
    ``inconclusive`` otherwise. Comparisons that could not be evaluated are not counted."""
    judged = [label for label in labels if label in LABELS]
    if not judged:
        return NOT_TESTABLE if NOT_TESTABLE in labels else "not evaluated"
    n_sup, n_con = judged.count("supported"), judged.count("contradicted")
    if n_sup and n_con:
        return "mixed"
    for label, k in (("supported", n_sup), ("contradicted", n_con)):
        if k == len(judged):
            return label
        if k:
            return f"{label} in {k} of {len(judged)} (rest inconclusive)"
    return "inconclusive"


def _describe(side: pd.DataFrame) -> str:
    return ", ".join(sorted({variant_label(r) + f" @ {text(r['nfe'])} NFE" for _, r in side.iterrows()}))


def _not_evaluated(side_all: pd.DataFrame, name: str, what: str) -> str:
    """Why one side has no values: nothing selected at all, or only rows that are not ok."""
    note = excluded_note(side_all)
    return f"not evaluated: no ok {what} rows for side {name}" + (f" ({note})" if note else "")


def _estimate(side: pd.DataFrame, row_error: bool) -> Estimate | None:
    """A side's estimate: over its rows (seeds) when there are ≥ 2, else, for a ``row_error`` claim,
    from its one row's standard error over n units; None when neither is possible."""
    values = _finite(side["value"].to_numpy(float), "side")
    if len(values) >= 2:
        return Estimate.of_values(values)
    if row_error and len(values) == 1:
        r = side.iloc[0]
        if not missing(r["std"]) and not missing(r["n"]) and int(r["n"]) >= 2:
            return Estimate.of_row(float(values[0]), float(r["std"]), int(r["n"]))
    return None


def _over_rows(claim: Claim, a: pd.DataFrame, b: pd.DataFrame, match_margin: float) -> tuple[Verdict, str]:
    """The comparison over the sides' rows (sampling seeds of the trained networks; a ``row_error`` side with
    one row by its standard error over images), and a note on that unit."""
    estimates = [_estimate(side, claim.row_error) for side in (a, b)]
    if None in estimates:
        v = verdict(a["value"].to_numpy(float), b["value"].to_numpy(float), claim.relation, match_margin)
    else:
        v = judge(*estimates, claim.relation, match_margin)
    singles = [f"{name}: {text(side['n'].iloc[0])}" for name, side in (("a", a), ("b", b)) if len(side) == 1]
    unit_note = ""
    if claim.row_error and singles and None not in estimates:
        unit_note = ("side with one row: its interval is from the standard error over held-out images "
                     f"({', '.join(singles)} images)")
    return v, unit_note


def _per_training_run(side: pd.DataFrame) -> np.ndarray:
    """One value per training run: its mean over sampling seeds (the unit of a method claim)."""
    return side.groupby("train_seed", dropna=False)["value"].mean().to_numpy(float)


def _compare(claim: Claim, a_all: pd.DataFrame, b_all: pd.DataFrame, context: str, run: str,
             match_margin: float) -> dict[str, Any]:
    """One verdict row for one comparison (one context and one value of the claim's keys)."""
    row = {"claim": claim.text, "source": claim.source, "run": run, "context": context}
    a, b = a_all[a_all["status"] == "ok"], b_all[b_all["status"] == "ok"]
    for name, side, side_all in (("a", a, a_all), ("b", b, b_all)):
        if side.empty:
            return {**row, "verdict": _not_evaluated(side_all, name, claim.metric)}
        if side.duplicated(list(SEED_COLUMNS)).any():
            # Pooling two variants as if they were seeds would fake a spread; make the claim say which.
            return {**row, "verdict": f"not evaluated: side {name} holds several rows per seed "
                                      f"({_describe(side)}); narrow the claim's selector or match_on"}
    described, unit_note = _over_rows(claim, a, b, match_margin)
    label, v = described.label, described
    if claim.unit == "sampler":
        unit_note = "; ".join(x for x in ("over the sampling seeds of one trained network", unit_note) if x)
    else:
        ta, tb = _per_training_run(a), _per_training_run(b)
        if len(ta) < 2 or len(tb) < 2:
            label = NOT_TESTABLE
            unit_note = "; ".join(x for x in (
                f"descriptive only (the two trained networks over sampling seeds, not a verdict on the method): "
                f"{described.label}", unit_note) if x)
        else:
            v = verdict(ta, tb, claim.relation, match_margin)
            label = v.label
            unit_note = f"over training runs ({len(ta)} and {len(tb)}; each its mean over sampling seeds)"
    note = "; ".join(x for x in (f"a = {_describe(a)}; b = {_describe(b)}", unit_note, v.note,
                                 excluded_note(pd.concat([a_all, b_all]))) if x)
    return {**row, "verdict": label, "difference (a − b)": v.diff_mean, "95% interval": (v.ci_low, v.ci_high),
            "n_a": v.n_a, "n_b": v.n_b, "note": note}


def _key_label(columns: Sequence[str], key: tuple) -> str:
    return ", ".join(f"{c}={text(v)}" for c, v in zip(columns, key))


def _judged_spaces(a: pd.DataFrame, b: pd.DataFrame, claim: Claim) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both sides' rows of the claim's own metric, plus those of the other feature spaces in the comparisons
    (context and ``match_on`` value) where both sides have ok rows: a space that scored a subset of the cells
    (Inception on CPU), or none of them (no weights), has nothing to say about the rest."""
    keys = [*CONTEXT_COLUMNS, *claim.match_on]

    def ok_keys(side: pd.DataFrame) -> set[tuple]:
        return set(_keys(side[(side["metric"] != claim.metric) & (side["status"] == "ok")], keys))

    shared = ok_keys(a) & ok_keys(b)

    def kept(side: pd.DataFrame) -> pd.DataFrame:
        other = np.array([k in shared for k in _keys(side, keys)], dtype=bool)
        return side[(side["metric"] == claim.metric).to_numpy() | other]

    return kept(a), kept(b)


def _plain(key: Sequence[Any]) -> tuple:
    """A key as a plain tuple in which every missing value is None (NaN keys never compare equal)."""
    return tuple(None if missing(v) else v for v in key)


def _keys(df: pd.DataFrame, keys: list[str]) -> list[tuple]:
    """Each row's values of ``keys``, as :func:`_groups` keys them."""
    return [_plain(row) for row in df[keys].itertuples(index=False)]


def _groups(df: pd.DataFrame, keys: list[str]) -> dict[tuple, pd.DataFrame]:
    """Groups keyed by :func:`_plain` tuples."""
    return {_plain(key): group for key, group in df.groupby(keys, dropna=False, sort=False)}


def evaluate_claim(df: pd.DataFrame, claim: Claim, match_margin: float = DEFAULT_MATCH_MARGIN) -> list[dict[str, Any]]:
    """Verdict rows of one claim: one per (context, match_on value) found on either side. A quality claim
    is judged in every feature space that scored both sides (Inception FID as well as domain FID), each
    context on its own."""
    rows = df[df["metric"].isin(in_every_feature_space(claim.metric))]
    a_all, b_all = _judged_spaces(rows[claim.a(rows)], rows[claim.b(rows)], claim)
    if a_all.empty or b_all.empty:
        name, selector = ("a", claim.a) if a_all.empty else ("b", claim.b)
        return [{"claim": claim.text, "source": claim.source, "run": "", "context": "—",
                 "verdict": f"not evaluated: no {claim.metric} rows match side {name} ({selector})"}]
    keys = list(CONTEXT_COLUMNS) + list(claim.keys)
    b_groups = _groups(b_all, keys)
    parts = sorted(_groups(a_all, list(claim.per)).items(), key=lambda kv: tuple(sort_key(v) for v in kv[0])) \
        if claim.per else [((), a_all)]
    empty = rows.iloc[0:0]
    out = []
    for part, a_part in parts:
        a_groups = _groups(a_part, keys)
        run = _key_label(claim.per, part) if claim.per else ""
        for key in sorted(set(a_groups) | set(b_groups), key=lambda k: tuple(sort_key(v) for v in k)):
            context = f"{text(key[0])}; {extractor_label(key[1], key[3])}"
            context += f"; {_key_label(claim.keys, key[4:])}" if claim.keys else ""
            out.append(_compare(claim, a_groups.get(key, empty), b_groups.get(key, empty), context, run,
                                match_margin))
    return out


def evaluate_claims(df: pd.DataFrame, claims: Sequence[Claim] | None = None,
                    match_margin: float = DEFAULT_MATCH_MARGIN) -> pd.DataFrame:
    """Every claim's verdict rows (default: :data:`CLAIMS` as it stands at call time) as a table with
    :data:`VERDICT_COLUMNS`; nothing is dropped. The unit of each claim is its :attr:`Claim.unit`."""
    out = [row for claim in (CLAIMS if claims is None else claims)
           for row in evaluate_claim(df, claim, match_margin)]
    return pd.DataFrame(out, columns=list(VERDICT_COLUMNS))


def format_interval(interval: Any) -> str:
    if not isinstance(interval, tuple) or any(missing(x) for x in interval):
        return "—"
    return f"[{interval[0]:.3g}, {interval[1]:.3g}]"
