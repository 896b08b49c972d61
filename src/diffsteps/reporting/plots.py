"""The study's figures, drawn from the tidy results table with seaborn on matplotlib's Agg backend.

Rules every figure follows:
- quality numbers from different feature extractors, weights or N never share an axis: one figure
  per (dataset, extractor, weights, N);
- every curve carries its uncertainty (mean ± sd over seeds, or the row's own standard error when
  there is a single seed);
- rows whose status is not ok are left out of the curves but counted in the figure's footnote;
- each PNG is written atomically (saved to a temporary path, then renamed).

Training figures (losses, GAN diagnostics, noise schedules) are in :mod:`.plots_training`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from ..families import names, options_type
from .figures import footnote as _footnote
from .figures import save_figure
from .plots_training import plot_log_snr, plot_noise_skewness, plot_training_curves, plot_training_diagnostics
from ..rows import CONTEXT_COLUMNS, CONTINUOUS_SAMPLER, FLOOR_SAMPLER
from .summary import NLL_TERMS, VARIANT_COLUMNS, excluded_note, metric_label, missing, ok_rows, pareto_front, \
    run_label, seed_summary, slug, text, variant_label

__all__ = ["own_chain_family", "plot_all", "plot_log_snr", "plot_nll_vs_nfe", "plot_noise_skewness",
           "plot_quality_vs_cost", "plot_quality_vs_nfe", "plot_training_curves",
           "quality_cost_points", "save_figure"]

#: Metrics drawn against NFE, and how their spread is shown (STUDY.md: a band for FID, bars for KID).
NFE_FIGURES: dict[str, str] = {"fid": "band", "inception_fid": "band", "kid": "bars", "inception_kid": "bars"}


def _log_x(ax: plt.Axes, ticks: pd.Series | None = None) -> None:
    """Log x axis labelled in plain numbers; with ``ticks``, exactly those (the NFE budgets run)."""
    ax.set_xscale("log")
    if ticks is not None:
        values = sorted(set(ticks.astype(float)))
        ax.set_xticks(values, [text(v) for v in values])
        ax.minorticks_off()
    else:
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap over several decades


def _with_variant(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["variant"] = [variant_label(r) for r in out.to_dict("records")]
    out["nfe"] = out["nfe"].astype(float)
    return out


def _context_groups(df: pd.DataFrame):
    """(dataset, extractor, weights, n) groups: the only sets of quality numbers that may share an axis."""
    return df.groupby(list(CONTEXT_COLUMNS), dropna=False, sort=True)


def _context_names(dataset, extractor, weights, n) -> tuple[str, str]:
    """Caption text and file-name stem of one context; the weights hash keeps two extractors apart."""
    short = text(weights)[:8]
    return (f"{text(dataset)}, {text(extractor)} (weights {short}), N={text(n)}",
            slug(dataset, extractor, short, f"N{text(n)}"))


def _floor_for(floors: pd.DataFrame, dataset, extractor, weights, n) -> pd.DataFrame:
    """Floor rows on the same features, preferring the same N (generated sets are scored at the floor's N)."""
    same = floors[(floors["dataset"] == dataset)
                  & (floors["feature_extractor"].fillna("") == ("" if missing(extractor) else extractor))
                  & (floors["weights_sha256"].fillna("") == ("" if missing(weights) else weights))]
    at_n = same[same["n"] == n] if not missing(n) else same.iloc[0:0]
    return at_n if not at_n.empty else same


def _quality_axis(metric: str, n: Any, extractor: Any) -> str:
    """``Inception FID@100`` over its feature extractor, on two lines: a long extractor name on one line
    would run past a single panel's height."""
    return f"{metric_label(metric, n)}\n({text(extractor, 'unknown features')})"


def own_chain_family(family: Any) -> bool:
    """Whether rows of this method family come from runs that sample only a chain of their own (DDGAN: one model
    per T, its own sampler, NFE = T)."""
    return not missing(family) and family in names() and options_type(family).own_sampler is not None


def _floor_line(ax: plt.Axes, floor_ok: pd.DataFrame) -> None:
    """The real-data floor of one context as a dashed horizontal line labelled with its N."""
    if not floor_ok.empty:
        ax.axhline(floor_ok["value"].mean(), color="k", ls="--", lw=1,
                   label=f"real-data floor (held-out, N={text(floor_ok['n'].iloc[0], '?')})")


def plot_quality_vs_nfe(df: pd.DataFrame, metric: str, out_dir: str | Path, errors: str = "band") -> dict[str, Path]:
    """``metric`` vs NFE (log x), one figure per context, one panel per (sampler, spacing), one line per
    run: each noise family's curve sits beside its Gaussian twin on the same sampler and chain. A run with a
    chain of its own (DDGAN: one model per T, its own sampler, NFE = T) is drawn on every panel.

    ``errors`` is ``band`` (mean ± sd over seeds as a shaded band) or ``bars`` (error bars). The
    real-data floor is a horizontal line labelled with its N.
    """
    if errors not in ("band", "bars"):
        raise ValueError(f"plot_quality_vs_nfe: errors = {errors!r} is invalid: expected 'band' or 'bars'")
    rows = df[df["metric"] == metric]
    floors, cells = rows[rows["sampler"] == FLOOR_SAMPLER], rows[rows["sampler"] != FLOOR_SAMPLER]
    figures: dict[str, Path] = {}
    for (dataset, extractor, weights, n), group in _context_groups(cells):
        ok = ok_rows(group).dropna(subset=["nfe"])
        if ok.empty:
            continue  # nothing to draw; the failures are listed in the report's tables
        ok = ok.assign(nfe=ok["nfe"].astype(float), run=[run_label(r) for r in ok.to_dict("records")])
        ok["chain"] = ok["sampler"].astype(str) + " / " + ok["spacing"].astype(str)
        # a run with a chain of its own (DDGAN) has one sampler per T: its points go on every panel
        fixed = ok["family"].map(own_chain_family).astype(bool)
        ok.loc[fixed, "run"] = ok.loc[fixed, "run"] + " (one model per T, own sampler)"
        runs = sorted(ok["run"].unique())
        chains = sorted(ok.loc[~fixed, "chain"].unique()) or sorted(ok["chain"].unique())
        palette = dict(zip(runs, sns.color_palette(n_colors=len(runs))))
        ncols = min(3, len(chains))
        nrows = -(-len(chains) // ncols)
        # own y range per panel: σ̂ at few steps can sit an order of magnitude above DDIM and squash it
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
        floor = _floor_for(floors, dataset, extractor, weights, n)
        floor_ok = ok_rows(floor)
        for ax, chain in zip(axes.flat, chains):
            panel = ok[(ok["chain"] == chain) | fixed]
            sns.lineplot(data=panel, x="nfe", y="value", hue="run", hue_order=[r for r in runs if r in set(panel["run"])],
                         palette=palette, errorbar="sd", err_style=errors, marker="o", ax=ax)
            if errors == "band":
                _isolated_point_bars(ax, panel, palette)
            _floor_line(ax, floor_ok)
            _log_x(ax, panel["nfe"])
            ax.set_xlabel("NFE (network evaluations)")
            ax.set_title(chain, fontsize=9)
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        # one legend for the figure, beside the panels: a run keeps its colour in every panel, and a
        # legend inside a panel would hide the few-step points
        legend: dict[str, Any] = {}
        for ax in axes.flat:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        axes.flat[ncols - 1].legend(list(legend.values()), list(legend), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                                    fontsize=7)
        for ax in list(axes.flat)[len(chains):]:
            ax.set_visible(False)
        for ax in axes.flat:  # every panel has its own y range, so every panel says what it shows
            ax.set_ylabel(_quality_axis(metric, n, extractor), fontsize=8)
        fig.suptitle(f"{text(dataset)}: {metric_label(metric)} vs NFE, per sampler and chain")
        spread = "shaded band (error bars for a run at one NFE)" if errors == "band" else "error bars"
        seeds = (f"{ok['seed'].nunique()} sampling seed(s) × {ok['train_seed'].nunique()} training seed(s), pooled "
                 "(the tables keep the two apart)")
        _footnote(fig, f"{spread}: mean ± sd over {seeds}; weights sha256 {text(weights)[:12]}",
                  excluded_note(pd.concat([group, floor])))
        caption, stem = _context_names(dataset, extractor, weights, n)
        figures[f"{metric_label(metric)} vs NFE — {caption}"] = \
            save_figure(fig, Path(out_dir) / f"{metric}_vs_nfe_{stem}.png")
    return figures


def _isolated_point_bars(ax: plt.Axes, panel: pd.DataFrame, palette: Mapping[str, Any]) -> None:
    """Error bars (± sd over seeds) for the runs with one NFE in a panel: a band around a single point has no
    width, so its spread would not show."""
    for run, points in panel.groupby("run"):
        if points["nfe"].nunique() == 1 and len(points) > 1:
            ax.errorbar(points["nfe"].iloc[0], points["value"].mean(), yerr=points["value"].std(ddof=1),
                        color=palette[run], capsize=3, fmt="none")


def _errorbar_series(summary: pd.DataFrame) -> np.ndarray:
    """Spread per point: sd over seeds, or the row's own standard error when there is one seed."""
    return np.where(summary["count"] > 1, summary["sd"], summary["row_std"]).astype(float)


def _undefined_cells(rows: pd.DataFrame) -> str:
    """The runs whose bound is not defined: the run alone when none of its cells is, else with the
    reverse variances that are not (e.g. VDM's σ² = β)."""
    parts = []
    records = rows.assign(run=[run_label(r) for r in rows.to_dict("records")])
    for run, cells in records.groupby("run", sort=True):
        undefined = cells[cells["status"] == "not_defined"]
        if undefined.empty:
            continue
        which = sorted({f"σ² = {text(v)}" for v in undefined["variance"]})
        parts.append(run if len(undefined) == len(cells) else f"{run} ({', '.join(which)})")
    return ", ".join(parts)


def _bound_curve(row: Mapping) -> str:
    """One bound curve: the run, the reverse variance and the spacing of its chain."""
    return f"{text(row['method'], '?')} / σ² = {text(row['variance'], '?')} / {text(row['spacing'], '?')}"


#: line style of each term of the bound in the terms panel
_TERM_STYLES = {"nll_prior": ":", "nll_recon": "-.", "nll_diffusion": "--"}


def plot_nll_vs_nfe(df: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """NLL bound (bits/dim) vs NFE, one figure per dataset: the total of every (run, reverse
    variance, spacing) on one panel, so that every method's bound sits beside DDPM's at equal K, and
    its prior, reconstruction and diffusion terms on a second panel (same colours). Both y axes are
    logarithmic: few-step bounds with σ² = β̃ run to hundreds of bits/dim. A continuous-time bound
    (T = ∞, no NFE) is a dotted horizontal line in its run's colour.
    """
    continuous = ok_rows(df[(df["metric"] == "nll_total") & (df["sampler"] == CONTINUOUS_SAMPLER)])
    rows = df[df["metric"].isin(NLL_TERMS) & df["nfe"].notna()]
    figures: dict[str, Path] = {}
    for dataset, group in rows.groupby("dataset", sort=True):
        ok = ok_rows(group)
        if ok.empty:
            continue
        ok = ok.assign(curve=[_bound_curve(r) for r in ok.to_dict("records")], nfe=ok["nfe"].astype(float))
        summary = seed_summary(ok, ["curve", "metric", "nfe"])
        curves = sorted(ok["curve"].unique())
        palette = dict(zip(curves, sns.color_palette(n_colors=len(curves))))
        fig, (ax_total, ax_terms) = plt.subplots(1, 2, figsize=(12.0, 4.4))
        for (curve, metric), line in summary.groupby(["curve", "metric"]):
            total = metric == "nll_total"
            ax = ax_total if total else ax_terms
            ax.errorbar(line["nfe"], line["mean"], yerr=_errorbar_series(line), color=palette[curve],
                        ls="-" if total else _TERM_STYLES[metric], lw=1.8 if total else 1.1,
                        marker="o" if total else ".", capsize=2, label=curve if total else None)
        for i, (method, limit) in enumerate(continuous[continuous["dataset"] == dataset].groupby("method")["value"]):
            color = next((palette[c] for c in curves if c.split(" / ")[0] == method), f"C{i}")
            ax_total.axhline(limit.mean(), color=color, ls=":", lw=1.4,
                             label=f"{method}: T = ∞ ({limit.mean():.3g}, mean of {len(limit)})")
        for ax in (ax_total, ax_terms):
            _log_x(ax, ok["nfe"])
            ax.set_yscale("log")
            ax.set_xlabel("NFE (steps of the ancestral chain)")
        ax_total.set_ylabel("NLL upper bound (bits/dim, held-out)")
        ax_total.set_title("total bound")
        ax_total.legend(fontsize=7)
        ax_terms.set_title("its terms (colours as on the left)")
        ax_terms.legend(handles=[plt.Line2D([], [], color="0.3", ls=style, label=metric_label(m))
                                 for m, style in _TERM_STYLES.items()], fontsize=7)
        fig.suptitle(f"{text(dataset)}: variational bound vs NFE")
        undefined = _undefined_cells(group)
        _footnote(fig, "error bars: sd over seeds, or the standard error over images for one seed",
                  f"NLL not defined (no bound exists; reasons in the NLL table) for: {undefined}" if undefined else "",
                  excluded_note(group))
        figures[f"NLL vs NFE — {text(dataset)}"] = save_figure(fig, Path(out_dir) / f"nll_vs_nfe_{slug(dataset)}.png")
    return figures


COST_METRIC = "sampling_seconds_per_image"


def quality_cost_points(df: pd.DataFrame, metric: str = "fid") -> pd.DataFrame:
    """Mean quality and mean sampling cost per (context, variant, NFE), with an ``on_front`` column.

    The Pareto front is computed per context: points from different feature extractors are never
    compared.
    """
    keys = ["dataset", *VARIANT_COLUMNS, "nfe"]  # one sampling cell, averaged over seeds
    quality_keys = list(dict.fromkeys([*CONTEXT_COLUMNS, *keys]))
    quality = seed_summary(df[(df["metric"] == metric) & (df["sampler"] != FLOOR_SAMPLER)], quality_keys)
    cost = seed_summary(df[df["metric"] == COST_METRIC], keys)
    if quality.empty or cost.empty:
        return pd.DataFrame(columns=quality_keys + ["quality", "cost", "on_front"])
    merged = quality.merge(cost[keys + ["mean"]].rename(columns={"mean": "cost"}), on=keys, how="inner")
    merged = merged.rename(columns={"mean": "quality"})
    merged["on_front"] = False
    for _, idx in merged.groupby(list(CONTEXT_COLUMNS), dropna=False).groups.items():
        merged.loc[idx, "on_front"] = pareto_front(merged.loc[idx, "cost"], merged.loc[idx, "quality"])
    return merged


def plot_quality_vs_cost(df: pd.DataFrame, out_dir: str | Path, metric: str = "fid") -> dict[str, Path]:
    """Sampling seconds per image vs ``metric`` (both minimised), with the Pareto front and the real-data floor."""
    points = quality_cost_points(df, metric)
    rows = df[df["metric"] == metric]
    floors = rows[rows["sampler"] == FLOOR_SAMPLER]
    figures: dict[str, Path] = {}
    for (dataset, extractor, weights, n), group in _context_groups(points):
        group = _with_variant(group)
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        sns.scatterplot(data=group, x="cost", y="quality", hue="variant", hue_order=sorted(group["variant"].unique()),
                        s=40, ax=ax)
        for _, p in group.iterrows():
            ax.annotate(text(p["nfe"]), (p["cost"], p["quality"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        front = group[group["on_front"]].sort_values(["cost", "quality"])
        ax.step(front["cost"], front["quality"], where="post", color="k", lw=1, label="Pareto front")
        _floor_line(ax, ok_rows(_floor_for(floors, dataset, extractor, weights, n)))
        _log_x(ax)
        ax.set_xlabel("sampling seconds per image (mean over seeds)")
        ax.set_ylabel(_quality_axis(metric, n, extractor))
        ax.set_title(f"{text(dataset)}: quality vs sampling cost")
        # beside the axes: one entry per (run, sampler, chain) would cover the points inside them
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        _footnote(fig, "labels: NFE; points are means over seeds; devices as recorded in the cost table")
        caption, stem = _context_names(dataset, extractor, weights, n)
        figures[f"{metric_label(metric)} vs sampling cost — {caption}"] = \
            save_figure(fig, Path(out_dir) / f"{metric}_vs_cost_{stem}.png")
    return figures


def plot_all(df: pd.DataFrame, out_dir: str | Path, loss_csvs: Mapping[str, str | Path] | None = None,
             noise_skewness: Mapping[str, Mapping[str, list[float]]] | None = None,
             log_snr: Mapping[str, Mapping[str, list[float]]] | None = None,
             probes: Mapping[str, Mapping[str, list[float]]] | None = None) -> dict[str, Path]:
    """Every figure the data allows, as ``{caption: png path}`` in report order (``probes``: the probe curve of a
    model, ``{label: {"images_seen": [...], "probe_fid": [...]}}``, labelled as its loss log)."""
    sns.set_theme(style="whitegrid", context="paper")
    out_dir = Path(out_dir)
    figures: dict[str, Path] = {}
    for metric, errors in NFE_FIGURES.items():
        figures.update(plot_quality_vs_nfe(df, metric, out_dir, errors))
    figures.update(plot_nll_vs_nfe(df, out_dir))
    for metric in ("inception_fid", "fid"):  # the headline's front first, where Inception was computed
        figures.update(plot_quality_vs_cost(df, out_dir, metric))
    if loss_csvs:
        figures["Training loss"] = plot_training_curves(loss_csvs, out_dir / "training_loss.png")
        diagnostics = plot_training_diagnostics(loss_csvs, out_dir / "training_diagnostics.png", probes)
        if diagnostics is not None:
            figures["Training diagnostics (adversarial losses, R1, discriminator accuracy, FID probe)"] = diagnostics
    if noise_skewness:
        figures["Noise skewness over t"] = plot_noise_skewness(noise_skewness, out_dir / "noise_skewness.png")
    if log_snr:
        figures["Noise schedules: log-SNR and SNR over t"] = plot_log_snr(log_snr, out_dir / "log_snr.png")
    return figures
