"""``reports/metrics.json``: the study's answer as DVC metrics, for ``dvc metrics show``/``diff`` and ``dvc exp show``.

A small nested object that DVC flattens into dotted columns (``m`` is the headline metric, e.g. ``fid``)::

    steps_needed.<run>.<sampler>.{nfe, low, high[, spacing]} NFE_δ with its 95% interval, at the spacing
                                                            that needs the fewest NFE (the report's first table;
                                                            the spacing is named where the study has several)
    converged_<m>.<run>                                      the run's converged value, NFE_δ's target
    <m>.<run>.<sampler>.<spacing>.<NFE>                      each cell's value, mean over training and sampling seeds

An NFE is a number where it lies inside the grid, and the report's censored form where it does not: ``"> 49"``
(never within δ on the grid) or ``"≤ 4"`` (already within at the smallest budget). A sampler that does not apply
to a run's family (the report's "n/a") has no entry. The numbers are those of the report: the same frame, the same
bootstrap seed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .steps import Needed, Settings, answer, best_spacing, quality_rows, several_spacings
from .summary import missing, seed_summary, text


def _nfe(n: Needed, v: float) -> int | str:
    out = n.value(v)
    return out if isinstance(out, str) else int(out)  # the grid's NFE are whole numbers


def study_metrics(df: pd.DataFrame, s: Settings) -> dict[str, Any]:
    """The metrics object of the tidy results frame ``df`` under the steps-needed settings ``s``."""
    steps: dict[str, dict[str, Any]] = {}
    converged: dict[str, float] = {}
    answers = answer(df, s)
    several = several_spacings(answers)  # as in the report: a spacing only where it varies
    for a in answers:
        converged[a.method] = a.converged
        row = {}
        for sampler in dict.fromkeys(smp for smp, _ in a.to_own):
            spacing, n = best_spacing(a.to_own, sampler)
            row[sampler] = {"nfe": _nfe(n, n.estimate), "low": _nfe(n, n.low), "high": _nfe(n, n.high),
                            **({"spacing": spacing} if several else {})}
        steps[a.method] = row
    cells: dict[str, Any] = {}
    means = seed_summary(quality_rows(df, s.metric), ["method", "sampler", "spacing", "nfe"])
    for run, sampler, spacing, nfe, mean in zip(means["method"], means["sampler"], means["spacing"], means["nfe"],
                                                means["mean"]):
        if missing(nfe):
            continue
        per_spacing = cells.setdefault(run, {}).setdefault(sampler, {}).setdefault(text(spacing), {})
        per_spacing[f"{float(nfe):g}"] = float(mean)
    return {"steps_needed": steps, f"converged_{s.metric}": converged, s.metric: cells}
