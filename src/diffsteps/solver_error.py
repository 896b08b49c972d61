"""Solver error (STUDY.md, "How many steps"): how far a deterministic sampler's K-step endpoint lies from a
reference solve of the same model's ODE, started from the same x_T.

- The ODE: for a discrete-time model, the one with log ᾱ piecewise linear in t and the network queried at real t
  (DPM-Solver's discrete-time wrapper), from t = T to t = 1, then the final denoising x_0 = x̂_0(x_1) with which
  every solver of the study ends; integer-time samplers discretise it, since the interpolation is exact at the
  integers. A continuous-time model (VDM) has its ODE on t ∈ [0, 1] already.
- The reference: classical RK4 (:func:`diffsteps.samplers.rk4`, not one of the compared solvers) on a grid uniform
  in λ (:data:`~diffsteps.spacing.EXACT_LOGSNR`), its steps doubled until its Richardson error estimate is at most
  :data:`RESOLUTION` × the smallest error reported against it, or its steps reach ``evaluation.solver_error.max_K``.
- The estimate: with endpoints x_M, x_2M, x_4M at M, 2M and 4M steps, the observed order p = log2(‖x_2M − x_M‖ /
  ‖x_4M − x_2M‖) (clamped to [0.25, 4]) and the error of x_4M ≈ ‖x_4M − x_2M‖/(2^p − 1), mean RMS over images.
- A cell is *resolved* when the estimate is at most :data:`RESOLUTION` × its error (:func:`resolves`); the report
  shows only resolved cells and marks the rest.
- The error of one image is the RMS pixel distance to its reference endpoint, in [−1, 1] units; a cell reports
  the mean over images (and its standard error). The samples are paired, so the mean has little variance.
- On log–log axes against NFE the slope is the solver's empirical order (:func:`fitted_order`).
- Why some runs need fewer steps (STUDY.md, "How many steps", *Why*): the reference solve traces its trajectories
  (:func:`diffsteps.samplers.rk4`), and each one's excess length, (path length)/‖x_0 − x_T‖ − 1 in the family's own
  coordinates (:func:`excess_length`), says how far it is from a straight line (0).

Everything here is a function of a ``solve(M) → endpoints`` callable (N, C, H, W) float, so it is tested with
exact denoisers as well as run on trained networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # only tensor methods are called here: the report imports fitted_order without torch
    import torch

#: the reference trajectories' mean excess length, (path length)/‖x_0 − x_T‖ − 1 (0: straight lines): its row's metric
STRAIGHTNESS_METRIC = "excess_path_length"
#: the reference solver and its grid (named in the reference's row)
REFERENCE_SOLVER, REFERENCE_SPACING = "rk4", "logsnr-exact"
#: a reference resolves an error when its own error estimate is at most this share of it
RESOLUTION = 0.1
#: RK4 steps of the coarsest of the reference's solves (it doubles from there)
START_STEPS = 8
#: the order the Richardson estimate assumes is clamped to this range: RK4's order at most, and well below 1, where
#: an ODE that is rough at the reference's step (a trained ε̂ wiggles over a few units of its 0–1000 time input) converges
#: slowly, so that the estimate stays conservative
ORDER_RANGE = (0.25, 4.0)


def rms_distance(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image RMS pixel distance √(mean_pixels (x − ref)²), (N,) float64, for x, ref (N, C, H, W)."""
    return (x.double() - ref.double()).pow(2).flatten(1).mean(1).sqrt()


def resolves(estimate: float, error: float) -> bool:
    """Whether a reference with error ``estimate`` can show ``error``: estimate ≤ :data:`RESOLUTION` × error."""
    return estimate <= RESOLUTION * error


@dataclass(frozen=True)
class Reference:
    """The reference endpoints ``x`` (N, C, H, W), solved with ``steps`` RK4 steps (``nfe`` network evaluations),
    its Richardson error ``estimate`` (mean RMS, [−1, 1] units) and the ``order`` observed between its last three
    solves; ``converged``: the estimate resolves the smallest reported error."""

    x: torch.Tensor
    steps: int
    nfe: int
    estimate: float
    order: float
    converged: bool


def richardson(coarse: torch.Tensor, mid: torch.Tensor, fine: torch.Tensor) -> tuple[float, float]:
    """(error estimate of ``fine``, observed order) from solves at M, 2M and 4M steps (module docstring)."""
    d1, d2 = float(rms_distance(mid, coarse).mean()), float(rms_distance(fine, mid).mean())
    if d2 == 0.0:
        return 0.0, ORDER_RANGE[1]
    p = min(max(math.log2(d1 / d2) if d1 > 0 else ORDER_RANGE[0], ORDER_RANGE[0]), ORDER_RANGE[1])
    return d2 / (2.0**p - 1.0), p


def reference_solve(solve: Callable[[int], "torch.Tensor"], nfe_of: Callable[[int], int],
                    smallest_error: Callable[["torch.Tensor"], float], *, max_steps: int = 1024,
                    start_steps: int = START_STEPS) -> Reference:
    """The reference of the solver error: ``solve(M)`` gives the endpoints of M RK4 steps, ``nfe_of(M)`` their
    NFE, ``smallest_error(x)`` the smallest mean error of any reported cell against endpoints x. M doubles from
    ``start_steps`` until the Richardson estimate of the finest solve resolves that error, or M reaches
    ``max_steps`` (then ``converged`` is False)."""
    if max_steps < 4 * start_steps:
        raise ValueError(f"evaluation.solver_error.max_K = {max_steps} is invalid: the reference needs at least "
                         f"three solves from {start_steps} steps, so max_K ≥ {4 * start_steps}")
    M = start_steps
    coarse, mid = solve(M), solve(2 * M)
    while True:
        fine = solve(4 * M)
        estimate, order = richardson(coarse, mid, fine)
        converged = resolves(estimate, smallest_error(fine))
        if converged or 8 * M > max_steps:
            return Reference(fine, 4 * M, nfe_of(4 * M), estimate, order, converged)
        coarse, mid, M = mid, fine, 2 * M


def fitted_order(nfe: Sequence[float], error: Sequence[float]) -> float | None:
    """The slope −d log(error)/d log(NFE) of a least-squares line on log–log axes (the empirical order), or None
    with fewer than two finite positive points."""
    pts = [(math.log(n), math.log(e)) for n, e in zip(nfe, error) if n > 0 and e is not None and e > 0
           and math.isfinite(e)]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    x, y = np.array(pts).T
    return float(-np.polyfit(x, y, 1)[0])


def excess_length(path_length: "torch.Tensor", displacement: "torch.Tensor") -> "torch.Tensor":
    """Per-trajectory excess length (path length)/‖x_0 − x_T‖ − 1, float64 (N,): 0 for a straight line."""
    return path_length.double() / displacement.double() - 1.0


def cell_errors(endpoints: Mapping[tuple[str, str, int], torch.Tensor], ref: torch.Tensor
                ) -> dict[tuple[str, str, int], torch.Tensor]:
    """Per-image errors (N,) of every (sampler, spacing, K) endpoint against ``ref``."""
    return {key: rms_distance(x, ref) for key, x in endpoints.items()}
