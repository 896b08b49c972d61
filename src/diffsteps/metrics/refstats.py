"""Reference statistics of a feature space: the training split's features, FID statistics and k-NN radii, plus the
floor's held-out features and their nearest-training distances (the memorisation threshold), computed once per
(split, extractor, weights, N) and keyed by content.

The npz stores the split's sha256, the extractor, the weights' sha256 and N (and the same for the held-out
features of the floor), and :func:`load_reference_stats` refuses a file whose keys do not match, so stale
statistics are never used. Scoring lives in :mod:`diffsteps.metrics.fidelity`; DDGAN's training-time
probe reads these statistics too, so editing the scores never retrains a model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MetricInputError
from ..io import atomic_save_npz, sha256_file
from .distances import (PRC_MAX_NEIGHBORHOOD, as_float64, covariance_factor, feature_statistics,
                                 kid_reference_sums, knn_radii, nearest_neighbours)
from ..features.classifier import check_images
from ..features.extract import check_precision, extract_features, extractor_label


class StaleReferenceStats(MetricInputError):
    """Reference statistics were computed from another split, extractor or set of weights."""


@dataclass(frozen=True)
class RefStats:
    """Reference features (n, D) float32 with their FID statistics, ``index`` (n,) into the training split and
    ``radii`` (n, k_max): each feature's distance to its k-th nearest reference feature, k = 1..k_max (the balls
    of k-NN precision); the floor's held-out features (m, D), their nearest-training distances (m,) and
    ``heldout_index`` (m,) into the held-out split, plus the content keys.

    ``meta``: split_sha256, heldout_sha256, extractor, weights_sha256, n, n_split, n_heldout, seed,
    feature_dim, precision (Inception's arithmetic: float32 or tf32), feature_extractor (label).

    What scoring derives from the reference alone (its float64 features on a device, the factor of Σ, the KID
    blocks of a subset stream) is computed once per process and kept on the object: a job scores many cells.
    """

    features: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    index: np.ndarray
    radii: np.ndarray
    heldout_features: np.ndarray
    heldout_distance: np.ndarray
    heldout_index: np.ndarray
    meta: dict[str, Any]
    _derived: dict[Any, Any] = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.features)

    @property
    def stats(self) -> dict[str, np.ndarray]:
        return {"mu": self.mu, "sigma": self.sigma}

    def tau(self, quantile: float) -> float:
        """The memorisation threshold τ at ``quantile`` of the held-out nearest-training distances."""
        return memorisation_threshold(self.heldout_distance, quantile)

    def _once(self, key: Any, compute):
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]

    def on(self, device: str | torch.device) -> torch.Tensor:
        """The features as float64 on ``device``."""
        return self._once(("features", str(device)), lambda: as_float64(self.features, "reference", device))

    def sigma_factor(self, device: str | torch.device) -> torch.Tensor:
        """L with Σ = L Lᵀ (FID's square root for N > D)."""
        return self._once(("factor", str(device)), lambda: covariance_factor(self.sigma, device))

    def kid_sums(self, index: np.ndarray, device: str | torch.device) -> np.ndarray:
        """The reference block of every KID subset ``index`` (S, m): :func:`kid_reference_sums`."""
        key = ("kid", hashlib.sha256(np.ascontiguousarray(index)).hexdigest(), index.shape)
        return self._once(key, lambda: kid_reference_sums(self.on(device), index))


def subset(images: np.ndarray, n: int | None, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
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


def memorisation_threshold(heldout_distance: np.ndarray, quantile: float) -> float:
    """τ: the ``quantile`` of the held-out split's nearest-training distances (the 'typical' one at 0.5)."""
    if not 0 < quantile < 1:
        raise MetricInputError(f"memorisation quantile {quantile} is invalid: must lie in (0, 1)")
    return float(np.quantile(heldout_distance, quantile))


def reference_stats(split_images: np.ndarray, split_sha256: str, heldout_images: np.ndarray, heldout_sha256: str,
                    extractor: str, weights_path: str | Path, out_path: str | Path, *, n: int | None,
                    n_heldout: int | None, seed: int, batch_size: int,
                    device: str | torch.device = "cpu", precision: str = "float32") -> RefStats:
    """Features of (a seeded subset of n images of) the training split, and of (n_heldout images of) the
    held-out split for the floor and the memorisation threshold; written atomically to ``out_path``.
    The threshold's quantile is applied when scoring (:meth:`RefStats.tau`), so editing it recomputes nothing here.
    Inception runs at ``precision`` (:func:`~diffsteps.features.extract.check_precision`), which ``meta`` records.

    The npz holds ``features`` (n, D) float32, ``mu`` (D,), ``sigma`` (D, D), ``index`` (n,) into the
    split, ``radii`` (n, min(PRC_MAX_NEIGHBORHOOD, n − 1)), ``heldout_features`` (m, D), ``heldout_distance`` (m,) and ``meta`` (a JSON string with the
    content keys and τ). Returns them as a :class:`RefStats`, whose ``meta`` the stage's record carries.
    """
    check_images(split_images, "split_images")
    check_images(heldout_images, "heldout_images")
    images, index = subset(split_images, n, seed, "reference statistics")
    held, heldout_index = subset(heldout_images, n_heldout, seed, "held-out (floor) images")
    precision = check_precision(extractor, precision)
    features = extract_features(images, extractor, weights_path, batch_size, device, precision)
    heldout_features = extract_features(held, extractor, weights_path, batch_size, device, precision)
    ref = as_float64(features, "reference", device)
    heldout_distance, _ = nearest_neighbours(as_float64(heldout_features, "held-out", device), ref)
    radii = knn_radii(ref, min(PRC_MAX_NEIGHBORHOOD, len(features) - 1))
    stats = feature_statistics(features)
    meta = {"split_sha256": split_sha256, "heldout_sha256": heldout_sha256, "extractor": extractor,
            "weights_sha256": sha256_file(weights_path), "n": len(index), "n_split": len(split_images),
            "n_heldout": len(held), "seed": seed, "feature_dim": int(features.shape[1]),
            "precision": precision, "feature_extractor": extractor_label(extractor, weights_path, precision)}
    atomic_save_npz(out_path, features=features, mu=stats["mu"], sigma=stats["sigma"], index=index, radii=radii,
                    heldout_features=heldout_features, heldout_distance=heldout_distance, heldout_index=heldout_index,
                    meta=np.array(json.dumps(meta, sort_keys=True)))
    return RefStats(features, stats["mu"], stats["sigma"], index, radii, heldout_features, heldout_distance,
                    heldout_index, meta)


def load_reference_stats(path: str | Path, expect_split_sha256: str, expect_weights_sha256: str,
                         expect_extractor: str | None = None, expect_n: int | None = None) -> RefStats:
    """Load statistics written by :func:`reference_stats`, refusing them if any content key differs.

    Raises :class:`StaleReferenceStats` naming the file, the key, the stored and the expected value.
    """
    path = Path(path)
    if not path.is_file():
        raise MetricInputError(f"reference statistics {path} do not exist (the refstats stage writes them)")
    arrays = ("features", "mu", "sigma", "index", "radii", "heldout_features", "heldout_distance", "heldout_index")
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
