"""Sample quality as tidy rows: FID, KID and precision/recall against cached reference statistics.

Reference statistics are computed once per (split, feature extractor, weights, N) and keyed by content:
the npz stores the split's sha256, the extractor, the weights' sha256 and N, and
:func:`load_reference_stats` refuses a file whose keys do not match, so stale statistics are never used.

Every metric comes back as one row (see :data:`ROW_KEYS`; the names follow ``reporting/schema.py``)::

    {"metric": "fid" | "kid" | "precision" | "recall", "value": float | None, "std": float | None,
     "n": images scored, "n_ref": reference images, "feature_extractor": label, "weights_sha256": str | None,
     "status": "ok" | "not_computed" | "not_available", "reason": None | why there is no value}

``kid`` carries the mean over subsets in ``value`` and the standard deviation over subsets in ``std``.
Rows of both extractors use the same metric names; the ``feature_extractor`` label tells them apart.
The real-data floor (:func:`floor_rows`) is the same scoring applied to the held-out split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import EvaluationConfig
from ..io import atomic_save_npz, sha256_file
from .classifier import MetricInputError, check_images, domain_label
from .features import (INCEPTION_EXTRACTOR, INCEPTION_LABEL, extract_features, extractor_label,
                       feature_statistics, frechet_distance, kernel_distance, precision_recall, resolve_weights)

METRICS = ("fid", "kid", "precision", "recall")
ROW_KEYS = ("metric", "value", "std", "n", "n_ref", "feature_extractor", "weights_sha256", "status", "reason")
NO_INCEPTION = "not computed: no Inception weights"


class StaleReferenceStats(MetricInputError):
    """Reference statistics were computed from another split, extractor or set of weights."""


@dataclass(frozen=True)
class RefStats:
    """Reference features (n, D) float32 with their FID statistics and the content keys they belong to.

    ``meta``: split_sha256, extractor, weights_sha256, n, n_split, seed, feature_dim, feature_extractor (label).
    """

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    meta: dict[str, Any]

    @property
    def n(self) -> int:
        return len(self.features)

    @property
    def stats(self) -> dict[str, np.ndarray]:
        return {"mu": self.mu, "sigma": self.sigma}


def _subset(images: np.ndarray, n: int | None, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The first n images of a seeded random subset (all of them, in order, when n is None or len)."""
    total = len(images)
    n = total if n is None else n
    if not 2 <= n <= total:
        raise MetricInputError(f"{name}: n = {n} is invalid: must lie in [2, {total}] (the images available; "
                               "a covariance needs at least 2)")
    if n == total:
        index = np.arange(total)
    else:
        index = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    return images[index], index


def reference_stats(split_images: np.ndarray, split_sha256: str, extractor: str, weights_path: str | Path,
                    n: int | None, out_path: str | Path, seed: int, *, batch_size: int,
                    device: str | torch.device = "cpu") -> RefStats:
    """Extract features of (a seeded subset of n images of) a split and write them atomically to ``out_path``.

    The npz holds ``features`` (n, D) float32, ``mu`` (D,), ``sigma`` (D, D), ``index`` (n,) into the
    split, and ``meta`` (a JSON string with the content keys). Returns them as a :class:`RefStats`, whose
    ``meta`` is what the stage's JSON record should carry.
    """
    check_images(split_images, "split_images")
    images, index = _subset(split_images, n, seed, "reference statistics")
    features = extract_features(images, extractor, weights_path, batch_size, device)
    stats = feature_statistics(features)
    meta = {"split_sha256": split_sha256, "extractor": extractor, "weights_sha256": sha256_file(weights_path),
            "n": len(index), "n_split": len(split_images), "seed": seed, "feature_dim": int(features.shape[1]),
            "feature_extractor": extractor_label(extractor, weights_path)}
    atomic_save_npz(out_path, features=features, mu=stats["mu"], sigma=stats["sigma"], index=index,
                    meta=np.array(json.dumps(meta, sort_keys=True)))
    return RefStats(features=features, mu=stats["mu"], sigma=stats["sigma"], meta=meta)


def load_reference_stats(path: str | Path, expect_split_sha256: str, expect_weights_sha256: str,
                         expect_extractor: str | None = None, expect_n: int | None = None) -> RefStats:
    """Load statistics written by :func:`reference_stats`, refusing them if any content key differs.

    Raises :class:`StaleReferenceStats` naming the file, the key, the stored and the expected value.
    """
    path = Path(path)
    if not path.is_file():
        raise MetricInputError(f"reference statistics {path} do not exist (the refstats stage writes them)")
    with np.load(path, allow_pickle=False) as z:
        missing = sorted({"features", "mu", "sigma", "meta"} - set(z.files))
        if missing:
            raise MetricInputError(f"{path}: not a reference-statistics file, missing arrays {missing}")
        ref = RefStats(features=z["features"], mu=z["mu"], sigma=z["sigma"], meta=json.loads(str(z["meta"])))
    expected = {"split_sha256": expect_split_sha256, "weights_sha256": expect_weights_sha256}
    if expect_extractor is not None:
        expected["extractor"] = expect_extractor
    if expect_n is not None:
        expected["n"] = expect_n
    for key, want in expected.items():
        if ref.meta.get(key) != want:
            raise StaleReferenceStats(f"{path}: stale reference statistics: {key} is {ref.meta.get(key)!r} but "
                                      f"{want!r} is expected; recompute them (rerun the refstats stage)")
    return ref


def _row(metric: str, value: float | None, std: float | None, n: int | None, n_ref: int | None, label: str,
         weights_sha256: str | None, status: str = "ok", reason: str | None = None) -> dict[str, Any]:
    return dict(zip(ROW_KEYS, (metric, value, std, n, n_ref, label, weights_sha256, status, reason)))


def score(generated: np.ndarray, ref: RefStats, extractor: str, weights_path: str | Path, cfg: EvaluationConfig,
          device: str | torch.device, seed: int, n: int | None = None) -> list[dict[str, Any]]:
    """FID, KID and precision/recall of ``generated`` (uint8 (N, C, H, W)) against ``ref``.

    ``n`` (default: all) scores a seeded subset, so a generated set can be compared at the real-data
    floor's N. KID uses subsets of min(cfg.kid_subset_size, n, n_ref) images, cfg.kid_subsets times,
    drawn with ``seed``. Raises :class:`StaleReferenceStats` when ``ref`` belongs to another extractor
    or other weights than ``extractor``/``weights_path``.
    """
    check_images(generated, "generated")
    weights_sha256 = sha256_file(resolve_weights(extractor, weights_path))
    for key, value in (("extractor", extractor), ("weights_sha256", weights_sha256)):
        if ref.meta.get(key) != value:
            raise StaleReferenceStats(f"reference statistics have {key} = {ref.meta.get(key)!r} but the images are "
                                      f"scored with {value!r} ({weights_path}); recompute the statistics")
    images, _ = _subset(generated, n, seed, "generated images")
    features = extract_features(images, extractor, weights_path, cfg.batch_size, device)
    n, n_ref = len(features), ref.n
    fid = frechet_distance(feature_statistics(features), ref.stats)
    kid_mean, kid_std = kernel_distance(features, ref.features, min(cfg.kid_subset_size, n, n_ref),
                                        cfg.kid_subsets, seed)
    precision, recall = precision_recall(features, ref.features, cfg.prc_neighborhood, device)
    label = extractor_label(extractor, weights_path)
    values = ((fid, None), (kid_mean, kid_std), (precision, None), (recall, None))  # in the order of METRICS
    return [_row(metric, value, std, n, n_ref, label, weights_sha256)
            for metric, (value, std) in zip(METRICS, values)]


def floor_rows(heldout: np.ndarray, ref: RefStats, extractor: str, weights_path: str | Path, cfg: EvaluationConfig,
               device: str | torch.device, seed: int) -> list[dict[str, Any]]:
    """The real-data floor: the whole held-out split scored against the training statistics.

    It is the best a generator can do at this N (FID is biased upwards at small N), so generated
    sets should be compared with it at the same N (``score(..., n=len(heldout))``).
    """
    return score(heldout, ref, extractor, weights_path, cfg, device, seed)


def _placeholder_rows(status: str, reason: str, label: str, n: int | None) -> list[dict[str, Any]]:
    """One row per metric with no value: a reason is always written, never a blank or a zero."""
    return [_row(metric, None, None, n, None, label, None, status, reason) for metric in METRICS]


def not_computed_rows(reason: str = NO_INCEPTION, n: int | None = None) -> list[dict[str, Any]]:
    """Inception rows when the weights are absent (status ``not_computed``)."""
    return _placeholder_rows("not_computed", reason, INCEPTION_LABEL, n)


def not_available_rows(reason: str, dataset: str, n: int | None = None) -> list[dict[str, Any]]:
    """Domain rows for a data set without labels, where no classifier can be trained (``not_available``)."""
    return _placeholder_rows("not_available", reason, domain_label(dataset), n)


def inception_available(weights_path: str | Path | None) -> tuple[bool, str]:
    """Whether Inception FID can be computed: (True, "") or (False, reason). Never downloads anything."""
    if weights_path is None:
        return False, NO_INCEPTION
    if not Path(weights_path).is_file():
        return False, f"{NO_INCEPTION} (evaluation.inception_weights = {str(weights_path)!r} does not exist)"
    return True, ""


def inception_rows(generated: np.ndarray, ref_path: str | Path, split_sha256: str, cfg: EvaluationConfig,
                   device: str | torch.device, seed: int, n: int | None = None) -> list[dict[str, Any]]:
    """Inception-v3 rows for ``generated``: scored when cfg.inception_weights exists, else ``not_computed``.

    Without weights neither the network nor the statistics file is touched.
    """
    ok, reason = inception_available(cfg.inception_weights)
    if not ok:
        return not_computed_rows(reason, len(generated) if n is None else n)
    ref = load_reference_stats(ref_path, split_sha256, sha256_file(cfg.inception_weights), INCEPTION_EXTRACTOR)
    return score(generated, ref, INCEPTION_EXTRACTOR, cfg.inception_weights, cfg, device, seed, n)
