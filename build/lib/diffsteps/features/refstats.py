"""Reference statistics of a feature space: the training split's features and FID statistics, plus the floor's
held-out features and their nearest-training distances (the memorisation threshold), computed once per
(split, extractor, weights, N) and keyed by content.

The npz stores the split's sha256, the extractor, the weights' sha256 and N (and the same for the held-out
features of the floor), and :func:`load_reference_stats` refuses a file whose keys do not match, so stale
statistics are never used. Scoring lives in :mod:`diffsteps.metrics.fidelity`; DDGAN's training-time
probe reads these statistics too, so editing the scores never retrains a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_save_npz, sha256_file
from .classifier import MetricInputError, check_images
from .extract import extract_features, extractor_label, feature_statistics


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
    images, index = subset(split_images, n, seed, "reference statistics")
    held, heldout_index = subset(heldout_images, n_heldout, seed, "held-out (floor) images")
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
