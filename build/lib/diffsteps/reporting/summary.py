"""Small shared pieces of the report: labels, seed summaries, exclusion counts and the Pareto front.

The figures, the tables and the claims all need the same answers to "which rows may be averaged",
"what is this line called" and "what was left out"; they live here once.
"""

from __future__ import annotations

import math
import re
from numbers import Number
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..rows import FLOOR_SAMPLER

#: Display names of metrics (axis labels, table headers).
METRIC_LABELS: dict[str, str] = {
    "fid": "FID", "kid": "KID", "precision": "precision", "recall": "recall",
    "inception_fid": "Inception FID", "inception_kid": "Inception KID",
    "inception_precision": "Inception precision", "inception_recall": "Inception recall",
    "memorisation": "memorised share", "inception_memorisation": "Inception memorised share",
    "inception_is": "Inception Score",
    "nll_total": "NLL total (bits/dim)", "nll_prior": "NLL prior (bits/dim)", "nll_recon": "NLL recon (bits/dim)",
    "nll_diffusion": "NLL diffusion (bits/dim)", "sampling_seconds_per_image": "sampling s/image",
    "sampling_peak_memory_mb": "sampling peak memory (MB)", "training_seconds": "training s",
    "training_peak_memory_mb": "training peak memory (MB)", "train_loss_final": "final training loss",
    "domain_accuracy": "domain classifier held-out accuracy",
}
#: metric-name prefix of each feature space → its name in captions: the same quality metric exists in each
#: (``fid`` on domain features, ``inception_fid`` on Inception's), told apart by the rows' extractor label
FEATURE_SPACES: dict[str, str] = {"": "domain features", "inception_": "Inception features"}
#: The metrics every feature space scores (``metrics.fidelity.METRICS``), without a prefix.
SPACE_METRICS: tuple[str, ...] = ("fid", "kid", "precision", "recall", "memorisation")
#: The quality metrics of the headline table, in column order (the Inception Score needs a classifier).
QUALITY_METRICS: tuple[str, ...] = (*(p + m for p in FEATURE_SPACES for m in SPACE_METRICS), "inception_is")
#: Metrics biased in N: their label carries N ("FID@5k"), and they are compared only at equal N.
N_BIASED: tuple[str, ...] = ("fid", "kid", "inception_fid", "inception_kid")
#: The terms of the NLL bound, in table order (the total last).
NLL_TERMS: tuple[str, ...] = ("nll_prior", "nll_recon", "nll_diffusion", "nll_total")
#: The columns that name one curve of a figure / one row of a table (a "variant" of a method).
VARIANT_COLUMNS: tuple[str, ...] = ("method", "sampler", "spacing", "noise")


def in_every_feature_space(metric: str) -> tuple[str, ...]:
    """``fid`` → (``fid``, ``inception_fid``): a quality metric named in one feature space, in all of them;
    any other metric (``nll_total``) alone."""
    return tuple(prefix + metric for prefix in FEATURE_SPACES) if metric in SPACE_METRICS else (metric,)


def metric_label(metric: str, n: Any = None) -> str:
    """The display name; with ``n``, metrics biased in N carry it: ``Inception FID@5k``."""
    label = METRIC_LABELS.get(metric, metric)
    return f"{label}@{n_label(n)}" if metric in N_BIASED and not missing(n) else label


def n_label(n: Any) -> str:
    """5000 → ``5k``, 360 → ``360``."""
    n = int(n)
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def missing(value: Any) -> bool:
    """True for None, NaN and pd.NA: the one test for an absent cell value."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def text(value: Any, empty: str = "—") -> str:
    """A cell value as display text; integers stored as floats lose their ``.0``."""
    if missing(value):
        return empty
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def sort_key(value: Any) -> tuple:
    """Numbers numerically, then strings, then missing values: NFE 10 < 20 < 100, not '10' < '100' < '20'."""
    if missing(value):
        return (2, 0.0, "")
    if isinstance(value, Number):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def variant_label(row: Mapping[str, Any]) -> str:
    """``method / sampler / spacing`` plus the noise parameters when they are not plain Gaussian."""
    if row.get("sampler") == FLOOR_SAMPLER:
        return "real data (held-out)"
    parts = [text(row.get(c), "") for c in ("sampler", "spacing")]
    return " / ".join([run_label(row), *(p for p in parts if p)])


def run_label(row: Mapping[str, Any]) -> str:
    """``method`` plus its noise parameters when they are not plain Gaussian: one curve per run."""
    label, noise = text(row.get("method"), "?"), row.get("noise")
    return label if missing(noise) or noise == "gaussian" else f"{label} [{noise}]"


def extractor_label(feature_extractor: Any, n: Any) -> str:
    """``<extractor>, N=<n>``: the context a quality number belongs to."""
    return f"{text(feature_extractor, 'no extractor')}, N={text(n, '?')}"


def slug(*parts: Any) -> str:
    """A file-name-safe identifier built from display values."""
    joined = "_".join(text(p, "none") for p in parts)
    return re.sub(r"[^A-Za-z0-9.=-]+", "-", joined).strip("-").lower()


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def excluded_counts(df: pd.DataFrame) -> dict[str, int]:
    """How many rows of ``df`` have each status other than ok (excluded from curves and means)."""
    counts = df.loc[df["status"] != "ok", "status"].value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def excluded_note(df: pd.DataFrame) -> str:
    """``excluded (status not ok): 3 (failed 1, not_computed 2)``, or an empty string."""
    counts = excluded_counts(df)
    if not counts:
        return ""
    detail = ", ".join(f"{k} {v}" for k, v in counts.items())
    return f"excluded (status not ok): {sum(counts.values())} ({detail})"


def seed_summary(df: pd.DataFrame, by: Iterable[str]) -> pd.DataFrame:
    """Mean, sd and count of the ok values per group of ``by``: the spread over seeds.

    Groups keep missing keys (``dropna=False``) because a None spacing or variance is a real value
    here, not an absent one. The sd is NaN for a single seed.
    """
    by = list(by)
    ok = ok_rows(df)
    if ok.empty:
        return pd.DataFrame(columns=by + ["mean", "sd", "count", "row_std"])
    grouped = ok.groupby(by, dropna=False, sort=True)
    out = grouped["value"].agg(["mean", "std", "count"]).rename(columns={"std": "sd"})
    # The row's own uncertainty (e.g. NLL standard error over images), used when there is one seed.
    out["row_std"] = grouped["std"].mean()
    return out.reset_index()


def format_estimate(mean: Any, sd: Any = None, count: int = 1, row_std: Any = None, digits: int = 3) -> str:
    """``mean ± sd`` over seeds; with one seed ``value ± row_std`` when the row carries one, else ``value``."""
    if missing(mean):
        return "—"
    spread = sd if count > 1 else row_std
    if missing(spread):
        return f"{mean:.{digits}g}"
    if abs(spread) < 1e-9 * abs(mean):
        spread = 0.0  # rounding residue of identical values (sd 1e-17), not a real spread
    return f"{mean:.{digits}g} ± {spread:.2g}"


def pareto_front(cost: Any, quality: Any) -> np.ndarray:
    """Boolean mask of the points no other point dominates, when both cost and quality are minimised.

    A point is dominated when another is at least as good on both axes and strictly better on one;
    exact duplicates do not dominate each other, so both stay on the front.
    """
    cost, quality = np.asarray(cost, dtype=float), np.asarray(quality, dtype=float)
    if cost.shape != quality.shape or cost.ndim != 1:
        raise ValueError(f"pareto_front: cost {cost.shape} and quality {quality.shape} must be 1-D of equal length")
    no_worse = (cost[None, :] <= cost[:, None]) & (quality[None, :] <= quality[:, None])
    better = (cost[None, :] < cost[:, None]) | (quality[None, :] < quality[:, None])
    return ~np.any(no_worse & better, axis=1)
