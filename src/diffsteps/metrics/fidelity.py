"""Sample quality as tidy rows: FID, KID, precision/recall and memorisation (:mod:`.distances`) against cached
reference statistics (:mod:`diffsteps.metrics.refstats`, which refuses stale statistics).

Every metric comes back as one row (see :data:`ROW_KEYS`; the names follow ``rows.py``)::

    {"metric": "fid" | "kid" | "precision" | "recall" | "memorisation", "value": float | None,
     "std": float | None, "n": images scored, "n_ref": reference images, "feature_extractor": label,
     "weights_sha256": str | None, "status": "ok" | "not_computed" | "not_available", "reason": None | why}

``kid`` carries the mean over subsets in ``value`` and the standard deviation over subsets in ``std``.
``memorisation`` is the share of images whose nearest training image (Euclidean, in the same features)
is nearer than τ, the ``quantile`` of the held-out split's own nearest-training distances; ``std`` is its
binomial standard error √(p(1 − p)/n). Fresh draws from the data distribution score ≈ quantile; copies of
training images push it towards 1.
Rows of both extractors use the same metric names; the ``feature_extractor`` label tells them apart.
The real-data floor (:func:`floor_rows`) is the held-out features stored with the statistics, scored alike.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import EvaluationConfig
from ..features.classifier import check_images, domain_label
from ..features.extract import (INCEPTION_EXTRACTOR, check_precision, extract_features, extract_layers, extractor_label,
                                inception_label, weights_key, weights_sha256)
from ..features.inception_weights import NO_LOGITS, has_logits, load_state
from .refstats import RefStats, StaleReferenceStats, subset
from .distances import as_float64, frechet_distance, kid_subsets, pairwise

METRICS = ("fid", "kid", "precision", "recall", "memorisation")
ROW_KEYS = ("metric", "value", "std", "n", "n_ref", "feature_extractor", "weights_sha256", "status", "reason")
NO_INCEPTION = "not computed: no Inception weights"
#: Inception Score: only with weights that have a real classifier (the converted weights do not).
IS_METRIC, IS_SPLITS = "is", 10


@dataclass(frozen=True)
class Nearest:
    """Each scored image's nearest reference image: Euclidean ``distance`` (n,) and ``split_index`` (n,)
    into the training split (not into the reference subset)."""

    distance: np.ndarray
    split_index: np.ndarray
    #: which of the images given to :func:`score` were scored (all of them, or the seeded subset of n)
    scored_index: np.ndarray | None = None


@dataclass(frozen=True)
class Scores:
    """The rows of one scored set and its nearest training images (for the closest-pairs grid)."""

    rows: list[dict[str, Any]]
    nearest: Nearest


def memorisation_share(distance: np.ndarray, tau: float) -> tuple[float, float]:
    """(p, s.e.): the share of images nearer their nearest training image than τ, and √(p(1 − p)/n)."""
    p = float(np.mean(distance < tau))
    return p, float(np.sqrt(p * (1 - p) / len(distance)))


def _row(metric: str, value: float | None, std: float | None, n: int | None, n_ref: int | None, label: str,
         weights_sha256: str | None, status: str = "ok", reason: str | None = None) -> dict[str, Any]:
    return dict(zip(ROW_KEYS, (metric, value, std, n, n_ref, label, weights_sha256, status, reason)))


def score_features(features: np.ndarray, ref: RefStats, label: str, weights_sha256: str, cfg: EvaluationConfig,
                   device: str | torch.device, seed: int) -> Scores:
    """FID, KID, precision/recall and memorisation of features (N, D) against ``ref``
    (:mod:`.distances`; what depends on the reference alone is computed once per process, on ``ref``).

    KID uses subsets of min(cfg.kid_subset_size, n, n_ref) images, cfg.kid_subsets times, drawn with ``seed``.
    """
    n, n_ref = len(features), ref.n
    factor = ref.sigma_factor(device) if n > features.shape[1] else None  # FID's D×D form needs Σ_r's factor
    fid = frechet_distance(features, ref.mu, ref.sigma, factor, device)
    gen_index, ref_index = kid_subsets(n, n_ref, min(cfg.kid_subset_size, n, n_ref), cfg.kid_subsets, seed)
    pair = pairwise(as_float64(features, "features", device), ref.on(device), ref.radii, cfg.prc_neighborhood,
                    gen_index, ref_index, ref.kid_sums(ref_index, device))
    share, share_se = memorisation_share(pair.nearest_distance, ref.tau(cfg.memorisation.quantile))
    values = ((fid, None), pair.kid, (pair.precision, None), (pair.recall, None), (share, share_se))  # METRICS order
    rows = [_row(metric, value, std, n, n_ref, label, weights_sha256)
            for metric, (value, std) in zip(METRICS, values)]
    return Scores(rows, Nearest(pair.nearest_distance, ref.index[pair.nearest_index]))


def _check_ref(ref: RefStats, source: str | Path, **expected: str) -> None:
    """Refuse statistics whose ``meta`` differs from ``expected`` (key: value) as stale, naming ``source``."""
    for key, value in expected.items():
        if ref.meta.get(key) != value:
            raise StaleReferenceStats(f"reference statistics have {key} = {ref.meta.get(key)!r} but the images are "
                                      f"scored with {value!r} ({source}); recompute the statistics")


def score(generated: np.ndarray, ref: RefStats, extractor: str, weights_path: str | Path, cfg: EvaluationConfig,
          device: str | torch.device, seed: int, n: int | None = None) -> Scores:
    """:func:`score_features` of ``generated`` (uint8 (N, C, H, W)), or of a seeded subset of ``n`` of them
    (to compare with the floor at its N), Inception at ``cfg.inception.precision``. Raises
    :class:`StaleReferenceStats` when ``ref`` belongs to another extractor, other weights or another precision."""
    check_images(generated, "generated")
    sha = weights_sha256(extractor, weights_path)
    precision = check_precision(extractor, cfg.inception.precision)
    _check_ref(ref, weights_path, extractor=extractor, weights_sha256=sha, precision=precision)
    images, index = subset(generated, n, seed, "generated images")
    features = extract_features(images, extractor, weights_path, cfg.batch_size, device, precision)
    scores = score_features(features, ref, extractor_label(extractor, weights_path, precision), sha, cfg, device,
                            seed)
    return Scores(scores.rows, dataclasses.replace(scores.nearest, scored_index=index))


def floor_rows(ref: RefStats, cfg: EvaluationConfig, device: str | torch.device, seed: int) -> list[dict[str, Any]]:
    """The real-data floor: the held-out features stored with ``ref``, scored against the training statistics.

    It is the best a generator can do at this N (FID is biased upwards at small N), so generated sets are
    compared with it at the same N. Its memorisation share is ≈ the quantile by construction: the level of
    fresh data.
    """
    # the held-out features are the statistics' own: only the precision asked for can differ from theirs
    _check_ref(ref, "the floor", precision=check_precision(ref.meta["extractor"], cfg.inception.precision))
    return score_features(ref.heldout_features, ref, ref.meta["feature_extractor"], ref.meta["weights_sha256"],
                          cfg, device, seed).rows


def _placeholder_rows(status: str, reason: str, label: str, n: int | None) -> list[dict[str, Any]]:
    """One row per metric with no value: a reason is always written, never a blank or a zero."""
    return [_row(metric, None, None, n, None, label, None, status, reason) for metric in METRICS]


def not_computed_rows(reason: str = NO_INCEPTION, n: int | None = None, precision: str = "float32"
                      ) -> list[dict[str, Any]]:
    """Inception rows when there are no weights (status ``not_computed``)."""
    return _placeholder_rows("not_computed", reason, inception_label(precision), n)


def closest_pairs(nearest: Nearest, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k scored images nearest their training neighbour: (index into the scored input, index into the
    training split, distance), nearest first."""
    order = np.argsort(nearest.distance, kind="stable")[:k]
    scored = order if nearest.scored_index is None else nearest.scored_index[order]
    return scored, nearest.split_index[order], nearest.distance[order]


def not_available_rows(reason: str, dataset: str, n: int | None = None) -> list[dict[str, Any]]:
    """Domain rows for a data set without labels, where no classifier can be trained (``not_available``)."""
    return _placeholder_rows("not_available", reason, domain_label(dataset), n)


@functools.lru_cache(maxsize=4)
def _has_logits(key: tuple[str, int, int]) -> bool:
    """Whether the Inception weights have a real classifier, read once per process."""
    return has_logits(load_state(key[0]))


def inception_score_row(images: np.ndarray, weights_path: str | Path, cfg: EvaluationConfig,
                        device: str | torch.device, seed: int) -> dict[str, Any]:
    """The Inception Score (mean ± std over min(10, N) splits) from the logits of ``weights_path``.

    Weights without a classifier (the converted FID weights: a NaN placeholder) are refused with
    :data:`NO_LOGITS`, never computed: they have no ImageNet logits.
    """
    sha = weights_sha256(INCEPTION_EXTRACTOR, weights_path)
    precision, label = cfg.inception.precision, inception_label(cfg.inception.precision)
    if not _has_logits(weights_key(INCEPTION_EXTRACTOR, weights_path)):
        return _row(IS_METRIC, None, None, len(images), None, label, sha, "not_available", NO_LOGITS)
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    layer = "logits_unbiased"
    logits = extract_layers(images, INCEPTION_EXTRACTOR, weights_path, (layer,), cfg.batch_size, device,
                            precision)[layer]
    out = isc_features_to_metric(torch.from_numpy(logits), splits=min(IS_SPLITS, len(images)), shuffle=True,
                                 rng_seed=seed)
    return _row(IS_METRIC, out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD], len(images), None, label, sha)
