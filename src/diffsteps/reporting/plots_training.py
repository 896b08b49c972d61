"""Training figures: the loss of every model, the diagnostics some learners log besides it (DDGAN's
discriminator loss, R1, discriminator accuracy, the domain-FID probe) and the noise schedules."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .aggregate import ReportInputError
from .figures import footnote as _footnote
from .figures import save_figure

#: the columns of every loss.csv; anything after them is a learner's diagnostic
LOSS_COLUMNS = ("step", "images_seen", "loss", "lr", "seconds")
DIAGNOSTIC_LABELS = {"loss": "generator loss softplus(−D(fake))", "d_loss": "discriminator loss (real + fake)",
                     "r1": "R1 penalty (lazy; applied steps)", "d_accuracy": "discriminator accuracy",
                     "probe_fid": "domain-FID probe (EMA model)"}


def read_loss_csv(path: str | Path) -> pd.DataFrame:
    """A training ``loss.csv`` (columns step, images_seen, loss, lr, seconds)."""
    path = Path(path)
    if not path.exists():
        raise ReportInputError(f"{path}: the training loss log does not exist")
    log = pd.read_csv(path)
    missing_cols = [c for c in LOSS_COLUMNS if c not in log.columns]
    if missing_cols:
        raise ReportInputError(f"{path}: missing columns {missing_cols}; a loss log has columns {list(LOSS_COLUMNS)}")
    return log


def plot_training_curves(loss_csvs: Mapping[str, str | Path], out_path: str | Path) -> Path:
    """Training loss vs images seen for each ``{label: loss.csv}``: raw points and a running mean."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    palette = sns.color_palette(n_colors=max(1, len(loss_csvs)))
    positive = True
    for color, label in zip(palette, sorted(loss_csvs)):
        log = read_loss_csv(loss_csvs[label])
        if log.empty:
            continue
        positive &= bool((log["loss"] > 0).all())
        window = max(1, len(log) // 20)  # smooth over ~5% of the run, whatever its length
        ax.plot(log["images_seen"], log["loss"], color=color, alpha=0.25, lw=0.8)
        ax.plot(log["images_seen"], log["loss"].rolling(window, center=True, min_periods=1).mean(), color=color, lw=1.6,
                label=f"{label} (running mean of {window})")
    if positive and ax.lines:
        ax.set_yscale("log")  # diffusion losses fall by orders of magnitude early on
    ax.set_xlabel("images seen")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    if ax.lines:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no logged steps", ha="center", va="center", transform=ax.transAxes)
    return save_figure(fig, Path(out_path))


def plot_training_diagnostics(loss_csvs: Mapping[str, str | Path], out_path: str | Path,
                              probes: Mapping[str, Mapping[str, list[float]]] | None = None) -> Path | None:
    """One panel per value a learner logs besides the loss (and the loss itself, beside them), over
    images seen, for every log that has such values (DDGAN: ``d_loss``, ``r1``, ``d_accuracy``), with the probe
    stage's ``probe_fid`` points of a model (``probes``: its curve under the label of its log); None when no log has
    any. A run stopped as collapsed or diverged has its curves up to the failure, which is how a reader sees what
    went wrong."""
    logs = {label: read_loss_csv(loss_csvs[label]) for label in sorted(loss_csvs)}
    for label, curve in (probes or {}).items():
        if label in logs:  # the probe's points join the log rows at their images seen (the others: nan)
            logs[label] = logs[label].merge(pd.DataFrame(curve)[["images_seen", "probe_fid"]], on="images_seen",
                                            how="outer").sort_values("images_seen")
    logs = {label: log for label, log in logs.items() if set(log.columns) - set(LOSS_COLUMNS) and not log.empty}
    if not logs:
        return None
    order = list(DIAGNOSTIC_LABELS)
    extra = {c for log in logs.values() for c in log.columns if c not in LOSS_COLUMNS}
    columns = ["loss", *sorted(extra, key=lambda c: (order.index(c) if c in order else len(order), c))]
    fig, axes = plt.subplots(1, len(columns), figsize=(3.4 * len(columns), 3.3), squeeze=False)
    palette = dict(zip(logs, sns.color_palette(n_colors=len(logs))))
    for ax, column in zip(axes[0], columns):
        for label, log in logs.items():
            if column not in log.columns:
                continue
            shown = log[log[column].notna()]  # the probe scores every probe_every steps only
            ax.plot(shown["images_seen"], shown[column], color=palette[label], lw=1.2, label=label,
                    marker="o" if column == "probe_fid" else None, ms=3)
        if column == "d_accuracy":
            ax.axhline(1.0, color="k", ls="--", lw=0.8)
            ax.set_ylim(-0.02, 1.05)
        if column == "probe_fid" and ax.lines:
            ax.set_yscale("log")
        ax.set_title(DIAGNOSTIC_LABELS.get(column, column), fontsize=8)
        ax.set_xlabel("images seen")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)
    fig.suptitle("Training diagnostics: mean of each logging interval")
    _footnote(fig, "discriminator accuracy: share of real and generated pairs D classifies correctly; a run whose D "
                   "stays at 1 (dashed) for collapse_steps steps is stopped and shown as failed, with its curves up "
                   "to that point")
    return save_figure(fig, Path(out_path))


def plot_noise_skewness(curves: Mapping[str, Mapping[str, list[float]]], out_path: str | Path) -> Path:
    """|skewness| of the standardised noise ε_t over t (log-log) for each run
    ``{label: {"t": [...], "skewness": [...]}}``; negative skewness is marked in the legend.

    Gamma noise has skewness 2/√k̄_t, from very skewed near t = 1 to nearly Gaussian at t = T (about
    1e-5 at θ0 = 0.001); the mixture's follows from p and φ_t. Gaussian noise (0 everywhere) has no
    point on a log axis and is named in the footnote.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    palette = sns.color_palette(n_colors=max(1, len(curves)))
    symmetric = []
    for color, label in zip(palette, sorted(curves)):
        t, skew = np.asarray(curves[label]["t"], float), np.asarray(curves[label]["skewness"], float)
        if not np.any(skew):
            symmetric.append(label)
            continue
        sign = " (negative)" if np.all(skew <= 0) else " (sign changes)" if np.any(skew < 0) else ""
        ax.plot(t, np.abs(skew), color=color, lw=1.6, label=label + sign)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t (training time step)")
    ax.set_ylabel("|skewness| of ε_t (closed form)")
    ax.set_title("Shape of the training noise over t")
    if ax.lines:
        ax.legend(fontsize=7)
    _footnote(fig, "Gamma: 2/√k̄_t with k̄_t = (1 − ᾱ_t)/(ᾱ_t θ0²); mixture: p·m1³ + (1 − p)·m2³",
              f"skewness 0 at every t (not drawn on a log axis): {', '.join(symmetric)}" if symmetric else "")
    return save_figure(fig, Path(out_path))


def plot_log_snr(curves: Mapping[str, Mapping[str, list[float]]], out_path: str | Path) -> Path:
    """Every run's noise schedule on one time axis t ∈ [0, 1] (``{run: {"t", "gamma"[, "init"]}}``):
    the log-SNR γ(t) = log(σ_t²/α_t²) (left) and SNR(t) = e^{−γ(t)} (right, log scale).

    A discrete schedule is drawn at t = i/T (so DDPM's fixed β schedule and VDM's learned one share
    the axis); a learned schedule's initial curve is dashed. Runs with identical curves share a line.
    """
    groups: dict[tuple, list[str]] = {}
    for label in sorted(curves):
        key = tuple(np.round(np.asarray(curves[label]["gamma"], float), 4))
        groups.setdefault(key, []).append(label)
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.0))
    for color, labels in zip(sns.color_palette(n_colors=max(1, len(groups))), groups.values()):
        curve, name = curves[labels[0]], ", ".join(labels)
        t = np.asarray(curve["t"], float)
        for ax, transform in zip(axes, (lambda g: g, lambda g: np.exp(-g))):
            # a chain of a few steps (DDGAN at T = 1, 4) is a few points: draw them
            ax.plot(t, transform(np.asarray(curve["gamma"], float)), color=color, lw=1.6, label=name,
                    marker="o" if len(t) <= 10 else None, ms=4)
            if "init" in curve:
                ax.plot(t, transform(np.asarray(curve["init"], float)), color=color, lw=1.0, ls="--",
                        label=f"{name} at initialisation")
    axes[0].set_ylabel("log-SNR γ(t) = log(σ²/α²)")
    axes[1].set_ylabel("SNR(t) = α²/σ²")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("t (discrete schedules at t = i/T)")
        ax.legend(fontsize=7)
    fig.suptitle("Noise schedules: fixed (discrete runs) and learned (VDM)")
    _footnote(fig, "VDM learns the endpoints through the bound; a monotone-network interior is learned from the variance "
                   "of the diffusion loss (continuous time) or from the bound (discrete T_train)")
    return save_figure(fig, Path(out_path))


