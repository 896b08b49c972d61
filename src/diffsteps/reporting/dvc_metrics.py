"""``reports/metrics.json``: the study's answer as DVC metrics, for ``dvc metrics show``/``diff`` and ``dvc exp show``.

A small nested object that DVC flattens into dotted columns (``m`` is the headline metric, e.g. ``fid``)::

    steps_needed.<run>.<sampler>.{nfe, low, high[, spacing]} NFE_δ with its 95% interval, at the spacing
                                                            that needs the fewest NFE (the report's first table;
                                                            the spacing is named where the study has several)
    best_of_solvers.<run>.{nfe, low, high, sampler, spacing} the fewest NFE of any sampler within δ of the ODE limit
    converged_<m>.<run>.{ode, <stochastic sampler>}          the run's limits, NFE_δ's targets (a string where the
                                                            limit was not measured: "no converged limit on this grid")
    <m>.<run>.<sampler>.<spacing>.<NFE>                      each cell's value, mean over training and sampling seeds

An NFE is a number where it lies inside the grid, and the report's censored form where it does not: ``"> 49"``
(never within δ on the grid) or ``"≤ 4"`` (already within at the smallest budget). A sampler that does not apply
to a run's family (the report's "n/a"), or whose limit was not measured, has no entry. The numbers are those of the report: the same frame, the same
bootstrap seed.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from .limits import Limit, Missing
from .steps import Needed, RunAnswer, Settings, answer, best_spacing, quality_rows, several_spacings
from .summary import missing, seed_summary, text


def _nfe(n: Needed, v: float) -> int | str:
    out = n.value(v)
    return out if isinstance(out, str) else int(out)  # the grid's NFE are whole numbers


def _limit(limit: Limit | Missing) -> float | str:
    return limit.value if isinstance(limit, Limit) else str(limit)


def study_metrics(df: pd.DataFrame, s: Settings, answers: Sequence[RunAnswer] | None = None) -> dict[str, Any]:
    """The metrics object of the tidy results frame ``df`` under the steps-needed settings ``s`` (``answers``:
    :func:`~.steps.answer` of them, when the caller has it)."""
    steps: dict[str, dict[str, Any]] = {}
    best: dict[str, dict[str, Any]] = {}
    converged: dict[str, dict[str, float | str]] = {}
    answers = answer(df, s) if answers is None else answers
    several = several_spacings(answers)  # as in the report: a spacing only where it varies
    for a in answers:
        converged[a.method] = {kind: _limit(limit) for kind, limit in (("ode", a.ode), *a.chains.items())}
        if a.best is not None:
            sampler, spacing, n = a.best
            best[a.method] = {"nfe": _nfe(n, n.estimate), "low": _nfe(n, n.low), "high": _nfe(n, n.high),
                              "sampler": sampler, "spacing": spacing}
        row = {}
        for sampler in dict.fromkeys(smp for smp, _ in a.to_own):
            spacing, n = best_spacing(a.to_own, sampler)
            row[sampler] = {"nfe": _nfe(n, n.estimate), "low": _nfe(n, n.low), "high": _nfe(n, n.high),
                            **({"spacing": spacing} if several else {})}
        if row:  # DVC drops an empty object: a run without a limit has no entry (and a string in converged_<m>)
            steps[a.method] = row
    cells: dict[str, Any] = {}
    means = seed_summary(quality_rows(df, s.metric), ["method", "sampler", "spacing", "nfe"])
    for run, sampler, spacing, nfe, mean in zip(means["method"], means["sampler"], means["spacing"], means["nfe"],
                                                means["mean"]):
        if missing(nfe):
            continue
        per_spacing = cells.setdefault(run, {}).setdefault(sampler, {}).setdefault(text(spacing), {})
        per_spacing[f"{float(nfe):g}"] = float(mean)
    out = {"steps_needed": steps, "best_of_solvers": best, f"converged_{s.metric}": converged, s.metric: cells}
    return {k: v for k, v in out.items() if v}  # DVC drops empty objects: leave them out, so the file is what it shows
