"""Solver error against NFE on log–log axes, one figure per run, one line per (sampler, spacing), with the
fitted slope (the empirical order) in the legend."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..solver_error import fitted_order
from .figures import footnote, save_figure
from .steps import SOLVER_ERROR
from .summary import ok_rows, slug, text


def plot_solver_error(df: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """``solver error vs NFE — <run>`` → PNG: the mean over training seeds ± their spread, per (sampler, spacing)."""
    rows = ok_rows(df[df["metric"] == SOLVER_ERROR])
    figures: dict[str, Path] = {}
    for method, run in rows.groupby("method", sort=False):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (sampler, spacing), part in run.groupby(["sampler", "spacing"], sort=False, dropna=False):
            curve = part.groupby("nfe")["value"].agg(["mean", "std", "count"]).reset_index().sort_values("nfe")
            order = fitted_order(curve["nfe"].astype(float).tolist(), curve["mean"].tolist())
            label = f"{sampler} / {text(spacing)}" + ("" if order is None else f" (slope {order:.2f})")
            ax.errorbar(curve["nfe"].astype(float), curve["mean"], yerr=curve["std"].fillna(0.0), marker="o",
                        ms=3, lw=1, capsize=2, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE (network evaluations)")
        ax.set_ylabel("solver error: RMS distance to the reference solve ([−1, 1] units)")
        ax.set_title(f"{text(method)}: solver error vs NFE")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        footnote(fig, "paired with the reference ODE solve from the same x_T (DDIM at K = T for a discrete model, "
                      "refined Heun for a continuous one); slope = least-squares −d log error / d log NFE; bars: sd "
                      "over training seeds")
        figures[f"solver error vs NFE — {text(method)}"] = save_figure(fig, Path(out_dir) / f"solver_error_{slug(method)}.png")
    return figures
