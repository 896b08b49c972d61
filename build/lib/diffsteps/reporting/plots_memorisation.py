"""The memorisation grid: per run, the generated images nearest to a training image, beside that image.

FID against the training statistics rewards copying on small data sets; the memorisation score (the share
of samples nearer their nearest training image than the held-out split's typical distance) says how much,
and this grid shows what the closest pairs look like. One figure per feature space, because "nearest" is
measured in the features the metrics use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .figures import footnote, save_figure
from .summary import FEATURE_SPACES, ok_rows, slug, text


def _image(ax: plt.Axes, img: np.ndarray) -> None:
    """uint8 (C, H, W) → the axis, grey or RGB, without ticks."""
    ax.imshow(img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0)), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def _load(path: str | Path, prefix: str) -> dict[str, np.ndarray] | None:
    with np.load(path, allow_pickle=False) as z:
        if f"{prefix}sample" not in z.files:
            return None  # the cell failed, or this extractor did not score it
        return {"cell": json.loads(str(z["cell"])), **{k: z[f"{prefix}{k}"] for k in
                                                          ("sample", "train", "distance", "tau")}}


def most_memorised(df: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Per run, the scored cell (largest N) with the highest memorisation share: the rows to draw."""
    rows = ok_rows(df[(df["metric"] == f"{prefix}memorisation") & df["method"].notna()])
    if rows.empty:
        return rows
    rows = rows[rows["n"] == rows.groupby("method")["n"].transform("max")]
    return rows.sort_values(["value", "nfe"], ascending=[False, True]).groupby("method", sort=True).head(1)


def plot_closest_pairs(df: pd.DataFrame, pairs_files: Iterable[str | Path], out_dir: str | Path
                       ) -> dict[str, Path]:
    """One figure per feature space: for each run's most memorised cell, its closest (sample, training
    image) pairs, nearest first, with their distances against τ."""
    by_cell = {}
    for path in pairs_files:
        with np.load(path, allow_pickle=False) as z:
            cell = json.loads(str(z["cell"]))
        by_cell[(cell["method"], cell["sampler"], cell["spacing"], cell["nfe"], cell["train_seed"], cell["seed"])] = path
    figures: dict[str, Path] = {}
    for prefix, space in FEATURE_SPACES.items():
        chosen = []
        for _, row in most_memorised(df, prefix).iterrows():
            key = (row["method"], row["sampler"], row["spacing"], int(row["nfe"]), int(row["train_seed"]),
                   int(row["seed"]))
            pairs = _load(by_cell[key], prefix) if key in by_cell else None
            if pairs is not None:
                chosen.append((row, pairs))
        if not chosen:
            continue
        k = max(len(p["distance"]) for _, p in chosen)
        fig, axes = plt.subplots(2 * len(chosen), k, figsize=(0.9 * k + 1.8, 2.0 * len(chosen)), squeeze=False,
                                 gridspec_kw={"hspace": 0.35})
        for i, (row, pairs) in enumerate(chosen):
            for j in range(k):
                top, bottom = axes[2 * i, j], axes[2 * i + 1, j]
                if j >= len(pairs["distance"]):
                    top.axis("off")
                    bottom.axis("off")
                    continue
                _image(top, pairs["sample"][j])
                _image(bottom, pairs["train"][j])
                near = pairs["distance"][j] < pairs["tau"]
                top.set_title(f"{pairs['distance'][j]:.3g}" + (" *" if near else ""), fontsize=7,
                              color="tab:red" if near else "0.3")
            axes[2 * i, 0].set_ylabel(
                f"{text(row['method'])}\n{text(row['sampler'])}\nNFE {text(row['nfe'])}, seed {text(row['seed'])}\n"
                f"memorised {row['value']:.1%}\n\nsample", rotation=0, ha="right", va="center", fontsize=7)
            axes[2 * i + 1, 0].set_ylabel("nearest\ntraining\nimage", rotation=0, ha="right", va="center", fontsize=7)
        tau = float(chosen[0][1]["tau"])
        footnote(fig, f"Distances in {space} ({text(chosen[0][0]['feature_extractor'])}), to the nearest of the "
                 f"{text(chosen[0][0]['n_ref'], '?')} training images behind the statistics; * marks a pair nearer "
                 f"than τ = {tau:.3g}, the held-out split's typical nearest-training distance "
                 "(evaluation.memorisation.quantile). Per run, the scored cell with the highest memorisation share.")
        caption = f"Memorisation: closest (sample, training image) pairs in {space}"
        figures[caption] = save_figure(fig, Path(out_dir) / f"closest_pairs_{slug(space)}.png")
    return figures
