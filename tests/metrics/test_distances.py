"""Feature-space distances: closed forms, and torch-fidelity's own results on the same features (≤ 1e-6 relative)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

from diffsteps.errors import MetricInputError
from diffsteps.metrics import distances
from diffsteps.metrics.distances import (PRC_MAX_NEIGHBORHOOD, as_float64, covariance_factor, feature_statistics,
                                         frechet_distance, kid_reference_sums, kid_subsets, knn_radii,
                                         nearest_neighbours, pairwise)

RTOL = 1e-6  # the bar: each result agrees with torch-fidelity's to this, relative
#: where the scoring jobs compute: the CPU, and the GPU when there is one (the gpu-marked cases run there)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def gaussian(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n).astype(np.float32)


def random_cov(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def fid(a: np.ndarray, b: np.ndarray) -> float:
    st = feature_statistics(b)
    return frechet_distance(a, st["mu"], st["sigma"])


def features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Correlated, non-centred features, like a network's: x = z A + shift."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).normal(size=(d, d)) / d ** 0.5
    return (rng.normal(size=(n, d)) @ mix + shift).astype(np.float32)


def all_pairwise(gen: np.ndarray, ref: np.ndarray, k: int, m: int, subsets: int, seed: int,
                 device: str = "cpu") -> distances.Pairwise:
    G, R = as_float64(gen, "gen", device), as_float64(ref, "ref", device)
    gi, ri = kid_subsets(len(gen), len(ref), m, subsets, seed)
    return pairwise(G, R, knn_radii(R, PRC_MAX_NEIGHBORHOOD), k, gi, ri, kid_reference_sums(R, ri))


def test_frechet_distance_matches_scipy_sqrtm():
    d = 6
    a = gaussian(3000, np.zeros(d), random_cov(d, 1), seed=2)
    b = gaussian(2000, np.full(d, 0.5), random_cov(d, 3), seed=4)
    mu1, mu2 = a.mean(0, dtype=np.float64), b.mean(0, dtype=np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert fid(a, b) == pytest.approx(direct, rel=1e-5)
    # and close to the population distance of the two Gaussians the features came from
    c1, c2 = random_cov(d, 1), random_cov(d, 3)
    population = d * 0.25 + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert fid(a, b) == pytest.approx(population, rel=0.1)


def test_fid_of_one_gaussian_shrinks_with_n():
    d = 8
    cov = random_cov(d, 0)
    fids = [fid(gaussian(n, np.zeros(d), cov, seed=10), gaussian(n, np.zeros(d), cov, seed=11))
            for n in (50, 200, 1000, 5000)]
    assert all(a > b for a, b in zip(fids, fids[1:])), fids
    assert fids[-1] < 0.05 * fids[0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n_gen", [40, 300], ids=["N<D: the NxN form", "N>D: the DxD form"])
def test_fid_agrees_with_torch_fidelity(n_gen, device):
    d = 128
    gen, ref = features(n_gen, d, 0, shift=0.2), features(500, d, 1)
    st_g, st_r = (fid_features_to_statistics(torch.from_numpy(x)) for x in (gen, ref))
    theirs = fid_statistics_to_metric(st_g, st_r, verbose=False)[KEY_METRIC_FID]
    ours = frechet_distance(gen, st_r["mu"], st_r["sigma"], device=device)
    assert ours == pytest.approx(theirs, rel=RTOL)
    # the D×D form with the reference's factor given (as RefStats passes it) is the same number
    assert frechet_distance(gen, st_r["mu"], st_r["sigma"], covariance_factor(st_r["sigma"], device), device) == \
        pytest.approx(ours, rel=1e-12)


def test_fid_refuses_one_feature_and_a_foreign_dimension():
    st = feature_statistics(features(50, 8, 0))
    with pytest.raises(MetricInputError, match="at least 2 generated features"):
        frechet_distance(features(1, 8, 1), st["mu"], st["sigma"])
    with pytest.raises(MetricInputError, match="the features have D = 4"):
        frechet_distance(features(10, 4, 1), st["mu"], st["sigma"])
    with pytest.raises(MetricInputError, match="expected float32 features shaped"):
        frechet_distance(features(10, 8, 1).astype(np.float64), st["mu"], st["sigma"])


def unbiased_poly_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (aᵀb / D + 1)³: off-diagonal means of Kxx and Kyy minus 2·mean Kxy."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    m, d = x.shape
    k = lambda p, q: (p @ q.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * k(x, y).mean()


def test_kernel_distance_matches_numpy_unbiased_mmd():
    d, m, subsets, seed = 16, 50, 4, 7
    x = gaussian(300, np.zeros(d), np.eye(d), seed=0)
    y = gaussian(200, np.full(d, 0.3), np.eye(d), seed=1)
    rng = np.random.RandomState(seed)  # the subset stream torch-fidelity draws from
    direct = []
    for _ in range(subsets):
        ix, iy = rng.choice(len(x), m, replace=False), rng.choice(len(y), m, replace=False)
        direct.append(unbiased_poly_mmd2(x[ix], y[iy]))
    np.testing.assert_allclose(all_pairwise(x, y, 3, m, subsets, seed).mmd2, direct, rtol=1e-10)
    with pytest.raises(MetricInputError, match="KID subset size 201"):
        kid_subsets(300, 200, 201, 1, 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("m", [50, 120], ids=["m<N", "m=N: every subset is the whole set"])
def test_kid_agrees_with_torch_fidelity(m, device):
    gen, ref = features(120, 64, 0, shift=0.1), features(400, 64, 1)
    # torch-fidelity in float64 (the features cast, nothing else): its float32 sums are its own rounding
    theirs = kid_features_to_metric(torch.from_numpy(gen).double(), torch.from_numpy(ref).double(), kid_subsets=20,
                                    kid_subset_size=m, rng_seed=5, verbose=False)
    mean, std = all_pairwise(gen, ref, 3, m, 20, 5, device).kid
    assert mean == pytest.approx(theirs[KEY_METRIC_KID_MEAN], rel=RTOL)
    assert std == pytest.approx(theirs[KEY_METRIC_KID_STD], rel=RTOL)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 3, PRC_MAX_NEIGHBORHOOD])
def test_precision_recall_agree_with_torch_fidelity(k, device):
    gen, ref = features(150, 32, 0, shift=0.15), features(400, 32, 1)
    theirs = prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(ref), prc_neighborhood=k,
                                    prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    ours = all_pairwise(gen, ref, k, 100, 2, 0, device)
    assert 0 < ours.precision < 1 and 0 < ours.recall < 1  # neither extreme: the balls decide
    assert ours.precision == pytest.approx(theirs[KEY_METRIC_PRECISION], rel=RTOL)
    assert ours.recall == pytest.approx(theirs[KEY_METRIC_RECALL], rel=RTOL)


def test_precision_recall_extremes_and_refusals():
    x = gaussian(200, np.zeros(4), np.eye(4), seed=0)
    same = all_pairwise(x, x.copy(), 3, 50, 2, 0)
    assert (same.precision, same.recall) == (1.0, 1.0)
    far = all_pairwise(x, x + 100.0, 3, 50, 2, 0)
    assert (far.precision, far.recall) == (0.0, 0.0)
    X = as_float64(x, "x")
    gi, ri = kid_subsets(4, 200, 2, 1, 0)
    with pytest.raises(MetricInputError, match="prc_neighborhood = 4 needs more than 4"):
        pairwise(X[:4], X, knn_radii(X, 5), 4, gi, ri, kid_reference_sums(X, ri))
    with pytest.raises(MetricInputError, match="radii up to k = 2"):
        pairwise(X, X, knn_radii(X, 2), 3, gi, ri, kid_reference_sums(X, ri))


def test_knn_radii_are_the_kth_value_of_each_distance_row():
    x = features(60, 8, 3)
    x[5] = x[6]  # a duplicate: its own zero and its twin's both count, as kthvalue counts them
    full = torch.cdist(torch.from_numpy(x).double(), torch.from_numpy(x).double())
    expected = torch.stack([full.kthvalue(k + 1, dim=1).values for k in range(1, 6)], dim=1).numpy()
    np.testing.assert_allclose(knn_radii(as_float64(x, "x"), 5), expected, rtol=1e-9, atol=1e-6)
    with pytest.raises(MetricInputError, match="need more than 60 features"):
        knn_radii(as_float64(x, "x"), 60)


def test_streamed_blocks_give_the_unstreamed_numbers(monkeypatch):
    gen, ref = features(90, 16, 0, shift=0.1), features(130, 16, 1)
    whole = all_pairwise(gen, ref, 3, 40, 6, 1)
    monkeypatch.setattr(distances, "BLOCK_ENTRIES", 500)  # a few rows a block
    blocks = all_pairwise(gen, ref, 3, 40, 6, 1)
    np.testing.assert_allclose(blocks.mmd2, whole.mmd2, rtol=1e-12)
    assert (blocks.precision, blocks.recall) == (whole.precision, whole.recall)
    np.testing.assert_array_equal(blocks.nearest_index, whole.nearest_index)


def test_nearest_neighbours_match_brute_force_and_copies_are_at_zero():
    query, ref = features(300, 16, 0), features(500, 16, 1)
    query[:10] = ref[100:110]  # exact copies
    distance, index = nearest_neighbours(as_float64(query, "q"), as_float64(ref, "r"))
    full = scipy.spatial.distance.cdist(query.astype(np.float64), ref.astype(np.float64))
    np.testing.assert_allclose(distance, full.min(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(index, full.argmin(axis=1))
    assert np.all(distance[:10] == 0.0) and list(index[:10]) == list(range(100, 110))
    # the pairwise pass finds the same neighbours
    p = all_pairwise(query, ref, 3, 50, 2, 0)
    np.testing.assert_array_equal(p.nearest_index, index)
    np.testing.assert_array_equal(p.nearest_distance, distance)


def test_schema_bounds_prc_neighborhood_by_the_stored_radii():
    import yaml

    from diffsteps.config import SCHEMA_PATH

    ev = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["evaluation"]["properties"]
    assert ev["prc_neighborhood"]["maximum"] == PRC_MAX_NEIGHBORHOOD
