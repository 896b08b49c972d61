"""Solver error (STUDY.md, "How many steps"): how far a deterministic sampler's K-step endpoint lies from a
reference solve of the same model's ODE, started from the same x_T.

- The reference: DDIM (η = 0) at K = T for a discrete model, which is queried only at integer t, so that is
  the finest solve it has; for a continuous one (VDM), Heun on the ``logsnr`` grid (uniform in λ, where the
  flow is smoothest) at a K doubled until halving the step moves the endpoint by less than
  :data:`CONVERGED_SHARE` of the smallest error reported against it.
- The error of one image is the RMS pixel distance to its reference endpoint, in [−1, 1] units; a cell reports
  the mean over images (and its standard error). The samples are paired, so the mean has little variance.
- On log–log axes against NFE the slope is the solver's empirical order (:func:`fitted_order`).

Everything here is a function of a ``solve(sampler, K, spacing) → endpoints`` callable (N, C, H, W) float,
so it is tested with exact denoisers as well as run on trained networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # only tensor methods are called here: the report imports fitted_order without torch
    import torch

#: the reference of a discrete model (its finest ODE solve) and of a continuous one (refined until converged)
DISCRETE_REFERENCE, CONTINUOUS_REFERENCE = "ddim-eta0", "heun"
#: converged: halving the reference's step moves it by less than this share of the smallest reported error
CONVERGED_SHARE = 0.01
#: where the continuous reference's refinement starts, and its grid (where it gives up is a parameter:
#: ``evaluation.solver_error.max_K``)
CONTINUOUS_START_K, CONTINUOUS_SPACING = 64, "logsnr"

Solve = Callable[[str, int, str], "torch.Tensor"]


def rms_distance(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image RMS pixel distance √(mean_pixels (x − ref)²), (N,) float64, for x, ref (N, C, H, W)."""
    return (x.double() - ref.double()).pow(2).flatten(1).mean(1).sqrt()


@dataclass(frozen=True)
class Reference:
    """The reference endpoints ``x`` (N, C, H, W) and how they were solved: ``sampler`` on the ``spacing`` grid at
    ``K`` steps (``nfe``),
    ``shift`` = mean RMS distance to the same solve at half the steps, and whether that shift is below
    :data:`CONVERGED_SHARE` of the smallest error (``converged``)."""

    x: torch.Tensor
    sampler: str
    spacing: str
    K: int
    nfe: int
    shift: float
    converged: bool


def reference_solve(solve: Solve, nfe_of: Callable[[str, int], int], errors_of: Callable[[torch.Tensor], float], *,
                    continuous: bool, T: int | None, max_K: int = 2048) -> Reference:
    """The reference for the solver error. ``errors_of(ref)`` gives the smallest mean error any reported cell has
    against ``ref``; ``nfe_of(sampler, K)`` the NFE of a solve. A discrete model's reference is DDIM at K = T (its
    shift is against K = T/2, reported, not acted on); a continuous model's (Heun, ``logsnr`` grid) is refined from
    :data:`CONTINUOUS_START_K`, doubling K, until the shift is below :data:`CONVERGED_SHARE` × the smallest error
    or K reaches ``max_K`` (then ``converged`` is False)."""
    if not continuous:
        if T is None:
            raise ValueError("reference_solve: a discrete model needs its T")
        x, half = solve(DISCRETE_REFERENCE, T, "uniform"), solve(DISCRETE_REFERENCE, T // 2, "uniform")
        shift = float(rms_distance(half, x).mean())
        return Reference(x, DISCRETE_REFERENCE, "uniform", T, nfe_of(DISCRETE_REFERENCE, T), shift,
                         shift < CONVERGED_SHARE * errors_of(x))
    K = CONTINUOUS_START_K
    prev = solve(CONTINUOUS_REFERENCE, K, CONTINUOUS_SPACING)
    while True:
        K *= 2
        x = solve(CONTINUOUS_REFERENCE, K, CONTINUOUS_SPACING)
        shift = float(rms_distance(prev, x).mean())
        converged = shift < CONVERGED_SHARE * errors_of(x)
        if converged or K >= max_K:
            return Reference(x, CONTINUOUS_REFERENCE, CONTINUOUS_SPACING, K, nfe_of(CONTINUOUS_REFERENCE, K), shift, converged)
        prev = x


def fitted_order(nfe: Sequence[float], error: Sequence[float]) -> float | None:
    """The slope −d log(error)/d log(NFE) of a least-squares line on log–log axes (the empirical order), or None
    with fewer than two finite positive points."""
    pts = [(math.log(n), math.log(e)) for n, e in zip(nfe, error) if n > 0 and e is not None and e > 0
           and math.isfinite(e)]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    x, y = np.array(pts).T
    return float(-np.polyfit(x, y, 1)[0])


def cell_errors(endpoints: Mapping[tuple[str, str, int], torch.Tensor], ref: torch.Tensor
                ) -> dict[tuple[str, str, int], torch.Tensor]:
    """Per-image errors (N,) of every (sampler, spacing, K) endpoint against ``ref``."""
    return {key: rms_distance(x, ref) for key, x in endpoints.items()}
