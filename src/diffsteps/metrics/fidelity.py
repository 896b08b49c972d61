"""Sample quality as tidy rows: FID, KID, precision/recall and memorisation against cached reference statistics.

Reference statistics are computed once per (split, feature extractor, weights, N) and keyed by content:
the npz stores the split's sha256, the extractor, the weights' sha256 and N (and the same for the held-out
features of the floor), and :func:`load_reference_stats` refuses a file whose keys do not match, so stale
statistics are never used.

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
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

from ..config import EvaluationConfig
from ..io import atomic_save_npz, sha256_file
from .classifier import MetricInputError, check_images, domain_label
from .features import (INCEPTION_EXTRACTOR, INCEPTION_LABEL, extract_features, extract_layers, extractor_label,
                       feature_statistics, frechet_distance, kernel_distance, precision_recall, resolve_weights)
from .inception_weights import NO_LOGITS, has_logits, load_state

METRICS = ("fid", "kid", "precision", "recall", "memorisation")
ROW_KEYS = ("metric", "value", "std", "n", "n_ref", "feature_extractor", "weights_sha256", "status", "reason")
NO_INCEPTION = "not computed: no Inception weights"
#: Inception Score: only with weights that have a real classifier (the converted weights do not).
IS_METRIC, IS_SPLITS = "is", 10


class StaleReferenceStats(MetricInputError):
    """Reference statistics were computed from another split, extractor or set of weights."""


@dataclass(frozen=True)
class RefStats:
    """Reference features (n, D) float32 with their FID statistics and ``index`` (n,) into the training split,
    the floor's held-out features (m, D), their nearest-training distances (m,) and ``heldout_index`` (m,)
    into the held-out split, plus the content keys.

    ``meta``: split_sha256, heldout_sha256, extractor, weights_sha256, n, n_split, n_heldout, seed,
    feature_dim, feature_extractor (label).
    """

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    index: np.ndarray
    heldout_features: np.ndarray
    heldout_distance: np.ndarray
    heldout_index: np.ndarray
    meta: dict[str, Any]

    @property
    def n(self) -> int:
        return len(self.features)

    @property
    def stats(self) -> dict[str, np.ndarray]:
        return {"mu": self.mu, "sigma": self.sigma}

    def tau(self, quantile: float) -> float:
        """The memorisation threshold τ at ``quantile`` of the held-out nearest-training distances."""
        return memorisation_threshold(self.heldout_distance, quantile)


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


def nearest_neighbours(query: np.ndarray, reference: np.ndarray, device: str | torch.device = "cpu",
                       chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance (n,) float64 from each query feature (n, D) to its nearest reference feature
    (m, D), and that neighbour's index (n,) into ``reference``.

    Exact pairwise differences (not the ‖a‖² + ‖b‖² − 2aᵀb expansion), so a copy is at distance 0.
    """
    ref = torch.from_numpy(reference).to(device)
    dist, idx = [], []
    for start in range(0, len(query), chunk):
        q = torch.from_numpy(query[start:start + chunk]).to(device)
        d = torch.cdist(q[None], ref[None], compute_mode="donot_use_mm_for_euclid_dist")[0]
        best = d.min(dim=1)
        dist.append(best.values.double().cpu())
        idx.append(best.indices.cpu())
    return torch.cat(dist).numpy(), torch.cat(idx).numpy()


def memorisation_threshold(heldout_distance: np.ndarray, quantile: float) -> float:
    """τ: the ``quantile`` of the held-out split's nearest-training distances (the 'typical' one at 0.5)."""
    if not 0 < quantile < 1:
        raise MetricInputError(f"memorisation quantile {quantile} is invalid: must lie in (0, 1)")
    return float(np.quantile(heldout_distance, quantile))


def memorisation_share(distance: np.ndarray, tau: float) -> tuple[float, float]:
    """(p, s.e.): the share of images nearer their nearest training image than τ, and √(p(1 − p)/n)."""
    p = float(np.mean(distance < tau))
    return p, float(np.sqrt(p * (1 - p) / len(distance)))


def reference_stats(split_images: np.ndarray, split_sha256: str, heldout_images: np.ndarray, heldout_sha256: str,
                    extractor: str, weights_path: str | Path, out_path: str | Path, *, n: int | None,
                    n_heldout: int | None, seed: int, batch_size: int,
                    device: str | torch.device = "cpu") -> RefStats:
    """Features of (a seeded subset of n images of) the training split, and of (n_heldout images of) the
    held-out split for the floor and the memorisation threshold; written atomically to ``out_path``.
    The threshold's quantile is applied when scoring (:meth:`RefStats.tau`), so editing it recomputes nothing here.

    The npz holds ``features`` (n, D) float32, ``mu`` (D,), ``sigma`` (D, D), ``index`` (n,) into the
    split, ``heldout_features`` (m, D), ``heldout_distance`` (m,) and ``meta`` (a JSON string with the
    content keys and τ). Returns them as a :class:`RefStats`, whose ``meta`` the stage's record carries.
    """
    check_images(split_images, "split_images")
    check_images(heldout_images, "heldout_images")
    images, index = _subset(split_images, n, seed, "reference statistics")
    held, heldout_index = _subset(heldout_images, n_heldout, seed, "held-out (floor) images")
    features = extract_features(images, extractor, weights_path, batch_size, device)
    heldout_features = extract_features(held, extractor, weights_path, batch_size, device)
    heldout_distance, _ = nearest_neighbours(heldout_features, features, device)
    stats = feature_statistics(features)
    meta = {"split_sha256": split_sha256, "heldout_sha256": heldout_sha256, "extractor": extractor,
            "weights_sha256": sha256_file(weights_path), "n": len(index), "n_split": len(split_images),
            "n_heldout": len(held), "seed": seed, "feature_dim": int(features.shape[1]),
            "feature_extractor": extractor_label(extractor, weights_path)}
    atomic_save_npz(out_path, features=features, mu=stats["mu"], sigma=stats["sigma"], index=index,
                    heldout_features=heldout_features, heldout_distance=heldout_distance, heldout_index=heldout_index,
                    meta=np.array(json.dumps(meta, sort_keys=True)))
    return RefStats(features, stats["mu"], stats["sigma"], index, heldout_features, heldout_distance, heldout_index,
                    meta)


def load_reference_stats(path: str | Path, expect_split_sha256: str, expect_weights_sha256: str,
                         expect_extractor: str | None = None, expect_n: int | None = None) -> RefStats:
    """Load statistics written by :func:`reference_stats`, refusing them if any content key differs.

    Raises :class:`StaleReferenceStats` naming the file, the key, the stored and the expected value.
    """
    path = Path(path)
    if not path.is_file():
        raise MetricInputError(f"reference statistics {path} do not exist (the refstats stage writes them)")
    arrays = ("features", "mu", "sigma", "index", "heldout_features", "heldout_distance", "heldout_index")
    with np.load(path, allow_pickle=False) as z:
        missing = sorted({*arrays, "meta"} - set(z.files))
        if missing:
            raise MetricInputError(f"{path}: not a reference-statistics file, missing arrays {missing}; "
                                   "recompute it (rerun the refstats stage)")
        ref = RefStats(*(z[k] for k in arrays), meta=json.loads(str(z["meta"])))
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


def score_features(features: np.ndarray, ref: RefStats, label: str, weights_sha256: str, cfg: EvaluationConfig,
                   device: str | torch.device, seed: int) -> Scores:
    """FID, KID, precision/recall and memorisation of features (N, D) against ``ref``.

    KID uses subsets of min(cfg.kid_subset_size, n, n_ref) images, cfg.kid_subsets times, drawn with ``seed``.
    """
    n, n_ref = len(features), ref.n
    fid = frechet_distance(feature_statistics(features), ref.stats)
    kid_mean, kid_std = kernel_distance(features, ref.features, min(cfg.kid_subset_size, n, n_ref),
                                        cfg.kid_subsets, seed)
    precision, recall = precision_recall(features, ref.features, cfg.prc_neighborhood, device)
    distance, nearest = nearest_neighbours(features, ref.features, device)
    share, share_se = memorisation_share(distance, ref.tau(cfg.memorisation.quantile))
    values = ((fid, None), (kid_mean, kid_std), (precision, None), (recall, None), (share, share_se))  # METRICS order
    rows = [_row(metric, value, std, n, n_ref, label, weights_sha256)
            for metric, (value, std) in zip(METRICS, values)]
    return Scores(rows, Nearest(distance, ref.index[nearest]))


def _check_ref(ref: RefStats, extractor: str, weights_sha256: str, weights_path: str | Path) -> None:
    for key, value in (("extractor", extractor), ("weights_sha256", weights_sha256)):
        if ref.meta.get(key) != value:
            raise StaleReferenceStats(f"reference statistics have {key} = {ref.meta.get(key)!r} but the images are "
                                      f"scored with {value!r} ({weights_path}); recompute the statistics")


def score(generated: np.ndarray, ref: RefStats, extractor: str, weights_path: str | Path, cfg: EvaluationConfig,
          device: str | torch.device, seed: int, n: int | None = None) -> Scores:
    """:func:`score_features` of ``generated`` (uint8 (N, C, H, W)), or of a seeded subset of ``n`` of them
    (to compare with the floor at its N). Raises :class:`StaleReferenceStats` when ``ref`` belongs to
    another extractor or other weights than ``extractor``/``weights_path``."""
    check_images(generated, "generated")
    weights_sha256 = sha256_file(resolve_weights(extractor, weights_path))
    _check_ref(ref, extractor, weights_sha256, weights_path)
    images, index = _subset(generated, n, seed, "generated images")
    features = extract_features(images, extractor, weights_path, cfg.batch_size, device)
    scores = score_features(features, ref, extractor_label(extractor, weights_path), weights_sha256, cfg, device, seed)
    return Scores(scores.rows, dataclasses.replace(scores.nearest, scored_index=index))


def floor_rows(ref: RefStats, cfg: EvaluationConfig, device: str | torch.device, seed: int) -> list[dict[str, Any]]:
    """The real-data floor: the held-out features stored with ``ref``, scored against the training statistics.

    It is the best a generator can do at this N (FID is biased upwards at small N), so generated sets are
    compared with it at the same N. Its memorisation share is ≈ the quantile by construction: the level of
    fresh data.
    """
    return score_features(ref.heldout_features, ref, ref.meta["feature_extractor"], ref.meta["weights_sha256"],
                          cfg, device, seed).rows


def _placeholder_rows(status: str, reason: str, label: str, n: int | None) -> list[dict[str, Any]]:
    """One row per metric with no value: a reason is always written, never a blank or a zero."""
    return [_row(metric, None, None, n, None, label, None, status, reason) for metric in METRICS]


def not_computed_rows(reason: str = NO_INCEPTION, n: int | None = None) -> list[dict[str, Any]]:
    """Inception rows when there are no weights (status ``not_computed``)."""
    return _placeholder_rows("not_computed", reason, INCEPTION_LABEL, n)


def closest_pairs(nearest: Nearest, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k scored images nearest their training neighbour: (index into the scored input, index into the
    training split, distance), nearest first."""
    order = np.argsort(nearest.distance, kind="stable")[:k]
    scored = order if nearest.scored_index is None else nearest.scored_index[order]
    return scored, nearest.split_index[order], nearest.distance[order]


def not_available_rows(reason: str, dataset: str, n: int | None = None) -> list[dict[str, Any]]:
    """Domain rows for a data set without labels, where no classifier can be trained (``not_available``)."""
    return _placeholder_rows("not_available", reason, domain_label(dataset), n)


def inception_score_row(images: np.ndarray, weights_path: str | Path, cfg: EvaluationConfig,
                        device: str | torch.device, seed: int) -> dict[str, Any]:
    """The Inception Score (mean ± std over min(10, N) splits) from the logits of ``weights_path``.

    Weights without a classifier (the converted FID weights: a NaN placeholder) are refused with
    :data:`NO_LOGITS`, never computed: they have no ImageNet logits.
    """
    sha = sha256_file(resolve_weights(INCEPTION_EXTRACTOR, weights_path))
    if not has_logits(load_state(weights_path)):
        return _row(IS_METRIC, None, None, len(images), None, INCEPTION_LABEL, sha, "not_available", NO_LOGITS)
    layer = "logits_unbiased"
    logits = extract_layers(images, INCEPTION_EXTRACTOR, weights_path, (layer,), cfg.batch_size, device)[layer]
    out = isc_features_to_metric(torch.from_numpy(logits), splits=min(IS_SPLITS, len(images)), shuffle=True,
                                 rng_seed=seed)
    return _row(IS_METRIC, out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD], len(images), None, INCEPTION_LABEL, sha)
