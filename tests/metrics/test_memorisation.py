"""The memorisation score: nearest training neighbours in feature space against the held-out split's level."""

from __future__ import annotations

import numpy as np
import pytest

from diffsteps.features.classifier import MetricInputError
from diffsteps.metrics.refstats import memorisation_threshold
from diffsteps.metrics.distances import as_float64
from diffsteps.metrics.distances import nearest_neighbours as nn
from diffsteps.metrics.fidelity import Nearest, closest_pairs, memorisation_share


def features(n: int, seed: int, d: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def nearest_neighbours(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return nn(as_float64(query, "query"), as_float64(ref, "ref"))


def test_threshold_and_share():
    heldout = np.arange(1.0, 101.0)
    assert memorisation_threshold(heldout, 0.5) == pytest.approx(50.5)
    share, se = memorisation_share(np.array([0.0, 0.0, 60.0, 70.0]), 50.5)
    assert share == 0.5 and se == pytest.approx(np.sqrt(0.25 / 4))
    with pytest.raises(MetricInputError, match=r"must lie in \(0, 1\)"):
        memorisation_threshold(heldout, 1.0)


def test_score_flags_copies_of_training_images_and_not_a_fresh_heldout_set():
    """Fresh draws from the data distribution score ≈ the quantile; a set with copies scores well above it."""
    train, heldout, fresh = features(2000, 0), features(400, 1), features(400, 2)
    tau = memorisation_threshold(nearest_neighbours(heldout, train)[0], 0.5)
    fresh_share, fresh_se = memorisation_share(nearest_neighbours(fresh, train)[0], tau)
    copies = fresh.copy()
    copies[:120] = train[:120]  # 30% copies
    copied_share, copied_se = memorisation_share(nearest_neighbours(copies, train)[0], tau)
    assert abs(fresh_share - 0.5) < 3 * fresh_se  # the level of fresh data: the quantile
    # the copies are all below τ (distance 0); the rest are the fresh images they did not replace
    rest, _ = memorisation_share(nearest_neighbours(fresh[120:], train)[0], tau)
    assert copied_share == pytest.approx(0.3 + 0.7 * rest, abs=1e-12)
    assert copied_share > 0.5 + 4 * copied_se


def test_closest_pairs_index_the_scored_input_and_the_training_split():
    nearest = Nearest(distance=np.array([3.0, 0.5, 2.0, 0.0]), split_index=np.array([7, 8, 9, 10]),
                      scored_index=np.array([40, 41, 42, 43]))
    scored, train, distance = closest_pairs(nearest, 2)
    assert list(scored) == [43, 41] and list(train) == [10, 8] and list(distance) == [0.0, 0.5]
