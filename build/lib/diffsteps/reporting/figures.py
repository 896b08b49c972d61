"""What every figure shares: matplotlib's headless backend, atomic PNG writing and footnotes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless pipeline stage: never ask for a display

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from ..io import atomic_path  # noqa: E402

_DPI = 110


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        # No "Software" stamp: the bytes should not change with the matplotlib patch version alone.
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return path


def footnote(fig: plt.Figure, *lines: str) -> None:
    """Grey notes under the figure; wrapped, so that a long list of runs does not stretch it sideways."""
    body = "\n".join(textwrap.fill(line, 170, subsequent_indent="  ") for line in lines if line)
    if body:
        fig.text(0.01, -0.02, body, ha="left", va="top", fontsize=7, color="0.35")
