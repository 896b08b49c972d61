"""The tidy result row: the single definition of every column the study reports.

Every metric stage writes its numbers as rows built by :func:`make_row` (the report reads them as a frame:
:func:`diffsteps.reporting.schema.to_frame`), so that one CSV
(``reports/results.csv``) can hold FID, KID, NLL terms, timings and failures side by side. One row
is one (dataset, method, sampler, spacing, variance/η, noise parameters, NFE, train seed, sampling
seed, metric) — plus what produced it (feature extractor and weights hash, git commit, versions,
device), because numbers from different extractors or code versions must never be pooled silently.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np



class SchemaError(ValueError):
    """A result row does not follow the schema; the message names the key, the value and what is allowed."""


#: Column name → (pandas dtype, meaning). The order here is the column order of results.csv.
COLUMN_SPEC: dict[str, tuple[str, str]] = {
    "dataset": ("object", "data set name, e.g. digits"),
    "method": ("object", "the run, as named in params.yaml methods (e.g. ddpm, ddgm_skewed); None for the floor"),
    "family": ("object", "the run's method family (ddpm, ddgm, mixture, ...); None for the real-data floor"),
    "sampler": ("object", "sampler id (diffsteps.sampler_registry), 'real-data' for the floor, None for training rows"),
    "spacing": ("object", "time discretisation of the step budget (diffsteps.spacing)"),
    # the samplers' parameters: each named group of a sampler's grammar fills the column of its name
    "eta": ("float64", "DDIM η; None for other samplers"),
    "variance": ("object", "reverse variance of an ancestral chain: betatilde or beta; None otherwise"),
    "noise": ("object", "noise family and parameters, e.g. gaussian or gamma(theta0=0.001)"),
    "nfe": ("Int64", "number of network evaluations"),
    "train_seed": ("Int64", "training seed of the model"),
    "seed": ("Int64", "sampling (or evaluation) seed"),
    "metric": ("object", "fid, kid, precision, recall, inception_fid, nll_total, sampling_seconds_per_image, ..."),
    "value": ("float64", "the number; None unless status is ok"),
    "std": ("float64", "the row's own spread: KID std over subsets, NLL standard error over images, ..."),
    "n": ("Int64", "sample size the value used (images scored or evaluated)"),
    "draws": ("Int64", "Monte-Carlo draws per image behind a stochastic estimate (NLL: of x_t per step of a "
                       "K-step chain, of (t, ε) for VDM); std is then the standard error over the n images"),
    "n_ref": ("Int64", "size of the reference set a distance was computed against (training split features)"),
    "feature_extractor": ("object", "label of the features a quality metric was computed on"),
    "weights_sha256": ("object", "sha256 of the feature extractor (or model) weights"),
    "status": ("object", "ok | failed | not_defined | not_computed | not_available"),
    "reason": ("object", "why there is no value: the error of a failed cell, or why a metric is not "
                         "defined / computed / available"),
    "device": ("object", "device that produced the row"),
    "git_commit": ("object", "code version that produced the row"),
    "versions": ("object", "compact package versions, e.g. 'diffsteps=0.1.0 torch=2.11.0'"),
    "source": ("object", "the JSON record the row was read from (filled by aggregate.collect)"),
}
COLUMNS: tuple[str, ...] = tuple(COLUMN_SPEC)

#: The columns that identify what was measured (everything but the measurement and its provenance).
IDENTITY_COLUMNS: tuple[str, ...] = ("dataset", "method", "family", "sampler", "spacing", "eta", "variance", "noise",
                                     "nfe", "train_seed", "seed", "metric")
#: Rows that differ only in these columns may be averaged (they are repeats over seeds).
SEED_COLUMNS: tuple[str, ...] = ("train_seed", "seed")
#: Quality numbers are only comparable within one of these contexts (same features, same N).
CONTEXT_COLUMNS: tuple[str, ...] = ("dataset", "feature_extractor", "weights_sha256", "n")
PROVENANCE_COLUMNS: tuple[str, ...] = ("device", "git_commit", "versions")

STATUSES: tuple[str, ...] = ("ok", "failed", "not_defined", "not_computed", "not_available")
#: Sampler id of the real-data floor row (held-out split scored against the training statistics).
FLOOR_SAMPLER = "real-data"
#: Sampler id of a continuous-time (T = ∞) bound: it belongs to no K-step chain, so its NFE is empty.
CONTINUOUS_SAMPLER = "continuous"

_INT_COLUMNS = frozenset(c for c, (dtype, _) in COLUMN_SPEC.items() if dtype == "Int64")
_FLOAT_COLUMNS = frozenset(c for c, (dtype, _) in COLUMN_SPEC.items() if dtype == "float64")


def versions_string(versions: Mapping[str, Any] | str | None) -> str | None:
    """Package versions as one compact, sorted string (``name=version`` separated by spaces).

    A CSV cell cannot hold a mapping, and a sorted string compares equal exactly when the versions do.
    """
    if versions is None or isinstance(versions, str):
        return versions
    if not isinstance(versions, Mapping):
        raise SchemaError(f"versions = {versions!r} is invalid: expected a mapping of package → version or a string")
    return " ".join(f"{name}={versions[name]}" for name in sorted(versions))


def is_missing(value: Any) -> bool:
    """None, NaN, or pandas' NA (recognised by its type's name: every stage writes rows, and pandas' import
    is the report's cost, not theirs)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ == "NAType"


def _coerce(key: str, value: Any) -> Any:
    """Convert one value to its column's type; None (or NaN/NA) stays None."""
    if is_missing(value):
        return None
    if key in _INT_COLUMNS:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)) \
                or float(value) != int(value):
            raise SchemaError(f"row key {key!r} = {value!r} is invalid: expected an integer or None")
        return int(value)
    if key in _FLOAT_COLUMNS:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise SchemaError(f"row key {key!r} = {value!r} is invalid: expected a number or None")
        return float(value)
    if key == "versions":
        return versions_string(value)
    if not isinstance(value, str):
        raise SchemaError(f"row key {key!r} = {value!r} is invalid: expected a string or None")
    return value


def make_row(**kw: Any) -> dict[str, Any]:
    """One result row with every schema column: missing keys are None, unknown keys are an error.

    ``status`` defaults to ``"ok"``. A row with status ok must carry a finite value; any other status
    must carry no value (so that a failed or undefined metric can never be read as a zero) and should
    say why in ``reason``. ``versions`` may be given as a mapping and is stored as
    :func:`versions_string`.
    """
    unknown = sorted(set(kw) - set(COLUMNS))
    if unknown:
        raise SchemaError(f"row key {unknown[0]!r} = {kw[unknown[0]]!r} is unknown: allowed keys are {list(COLUMNS)}")
    row = {key: _coerce(key, kw.get(key)) for key in COLUMNS}
    if row["status"] is None:
        row["status"] = "ok"
    if row["status"] not in STATUSES:
        raise SchemaError(f"row key 'status' = {row['status']!r} is invalid: expected one of {list(STATUSES)}")
    if row["status"] == "ok" and (row["value"] is None or not math.isfinite(row["value"])):
        raise SchemaError(f"row key 'value' = {row['value']!r} is invalid for status 'ok' "
                          f"(metric {row['metric']!r}): expected a finite number; record a non-finite result as "
                          f"status 'failed' with a reason")
    if row["status"] != "ok" and row["value"] is not None:
        raise SchemaError(f"row key 'value' = {row['value']!r} is invalid for status {row['status']!r} "
                          f"(metric {row['metric']!r}): only ok rows carry a value")
    return row
