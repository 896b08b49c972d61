"""The solver's figures.

- Solver error against NFE on log–log axes, one figure per run, one line per (sampler, spacing), with the fitted
  slope (the empirical order) in the legend. Only the errors that the run's reference resolves are drawn as points
  and fitted (:func:`diffsteps.solver_error.resolves`); the rest are marked as open markers on the line of the
  reference's resolution.
- NFE needed against straightness (STUDY.md's *Why*): one point per run, its best of solvers against the excess
  length of its reference trajectories, each with its interval."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import matplotlib.pyplot as plt
from matplotlib import ticker
import pandas as pd

from ..solver_error import RESOLUTION, fitted_order
from .figures import footnote, save_figure
from .limits import SOLVER_ERROR, SolverErrors
from .summary import ok_rows, slug, text

if TYPE_CHECKING:
    from .steps import RunAnswer


def plot_solver_error(df: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """``solver error vs NFE — <run>`` → PNG: the mean over training seeds ± their spread, per (sampler, spacing)."""
    rows = ok_rows(df[df["metric"] == SOLVER_ERROR])
    figures: dict[str, Path] = {}
    for method, run in rows.groupby("method", sort=False):
        errors = SolverErrors.of(df, method)
        floor = None if errors.estimate is None else errors.estimate / RESOLUTION
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (sampler, spacing), part in run.groupby(["sampler", "spacing"], sort=False, dropna=False):
            curve = part.groupby("nfe")["value"].agg(["mean", "std", "count"]).reset_index().sort_values("nfe")
            seen = curve["mean"].map(errors.resolved)
            shown, hidden = curve[seen], curve[~seen]
            order = fitted_order(shown["nfe"].astype(float).tolist(), shown["mean"].tolist())
            label = f"{sampler} / {text(spacing)}" + ("" if order is None else f" (slope {order:.2f})")
            line = ax.errorbar(shown["nfe"].astype(float), shown["mean"], yerr=shown["std"].fillna(0.0), marker="o",
                               ms=3, lw=1, capsize=2, label=label)
            if len(hidden) and floor is not None:
                ax.plot(hidden["nfe"].astype(float), [floor] * len(hidden), ls="none", marker="v", mfc="none",
                        color=line.lines[0].get_color(), label=f"{sampler} / {text(spacing)}: below the resolution")
        if floor is not None:
            ax.axhline(floor, color="0.5", lw=0.8, ls=":", label=f"reference resolution ({floor:.1g})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE (network evaluations)")
        ax.set_ylabel("solver error: RMS distance to the reference solve ([−1, 1] units)")
        ax.set_title(f"{text(method)}: solver error vs NFE")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        footnote(fig, "paired with the RK4 reference solve of the same ODE from the same x_T; only errors "
                      f"≥ {1 / RESOLUTION:g}× its Richardson estimate are drawn and fitted (open markers: below that "
                      "resolution); slope = least-squares −d log error / d log NFE; bars: sd over training seeds")
        figures[f"solver error vs NFE — {text(method)}"] = save_figure(fig, Path(out_dir) / f"solver_error_{slug(method)}.png")
    return figures


def plot_steps_vs_straightness(answers: Sequence["RunAnswer"], out_dir: str | Path) -> dict[str, Path]:
    """``NFE needed vs straightness`` → PNG: one point per run with both a best of solvers and an excess path length,
    x the mean excess length with its 95% t interval over training seeds, y the best of solvers' NFE with its 95%
    bootstrap interval; a censored NFE (never reached, or reached at the smallest NFE) is drawn at the grid's end
    with an arrow marker. Nothing when no run has both."""
    points = [a for a in answers if a.straightness_interval() is not None and a.best is not None]
    if not points:
        return {}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for a in points:
        sampler, spacing, n = a.best
        x, low, high = a.straightness_interval()
        y = n.on_grid(n.estimate)
        marker = "^" if math.isinf(n.estimate) else "v" if n.estimate <= n.grid_min else "o"
        lo, hi = n.on_grid(n.low), n.on_grid(n.high)
        line = ax.errorbar([x], [y], xerr=[[x - low], [high - x]], yerr=[[max(y - lo, 0.0)], [max(hi - y, 0.0)]],
                           marker=marker, ms=6, lw=1, capsize=2, ls="none", label=f"{a.method} ({sampler}, {spacing})")
        ax.annotate(a.method, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7,
                    color=line.lines[0].get_color())
    ax.set_yscale("log")
    # the NFE grid's ends and the points' own values, written as plain numbers
    ends = {v for a in points for v in (a.best[2].grid_min, a.best[2].grid_max, a.best[2].on_grid(a.best[2].estimate))}
    ax.set_yticks(sorted(ends))
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("excess path length of the reference ODE trajectories (0: straight)")
    ax.set_ylabel("NFE needed (best of solvers)")
    ax.set_title("NFE needed vs straightness")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    footnote(fig, "x: mean over images of (path length)/‖x_0 − x_T‖ − 1 of each run's converged RK4 reference solves in "
                  "its own coordinates, 95% t interval over training seeds; y: the fewest NFE at which any sampler and "
                  "spacing stays within ±δ of the run's ODE limit, 95% bootstrap interval on the NFE grid; ▲: not "
                  "reached on the grid (drawn at its largest NFE), ▼: reached at its smallest")
    return {"NFE needed vs straightness": save_figure(fig, Path(out_dir) / "steps_vs_straightness.png")}
