"""Feature-space distances between generated features Φ_g (N, D) and reference features Φ_r (n, D), at the cost
of their maths. Each equals torch-fidelity's own result on the same features (tests/metrics/test_distances.py):

    FID = ‖μ_g − μ_r‖² + tr Σ_g + tr Σ_r − 2 tr (Σ_g Σ_r)^{1/2}
    KID = mean and std over S subsets of m features a side of the unbiased MMD² with k(x, y) = (xᵀy / D + 1)³:
          MMD²_j = (Σ_{a≠b ∈ I_j} k(x_a, x_b) + Σ_{a≠b ∈ J_j} k(y_a, y_b)) / (m(m − 1)) − 2 Σ_{I_j × J_j} k / m²
    P/R = k-NN manifold precision (generated inside a reference k-NN ball) and recall (reference inside a generated
          one), Kynkäänniemi et al. 2019
    NN  = each generated feature's nearest reference feature (the memorisation share)

Where the cost goes, and why it is lower than torch-fidelity's:

* FID: Σ_g = FᵀF with F = (Φ_g − μ_g)/√(N − 1) (N, D), so Σ_g Σ_r has the nonzero eigenvalues of the symmetric
  N×N matrix F Σ_r Fᵀ. For N ≤ D that replaces a D×D non-symmetric eigenproblem (D = 2048 for Inception).
  For N > D it is the D×D symmetric Lᵀ Σ_g L, with Σ_r = L Lᵀ factored once per reference.
* Pairwise: one Gram matrix per pair of sides (generated × generated, generated × reference), streamed in row
  blocks, gives at once the k-NN radii, precision, recall, nearest neighbours and the kernel sums of every KID
  subset (through the subsets' indicator matrices U: Σ_{I_j × J_j} k = (U_Iᵀ K U_J)_jj). Its cost is one pass
  over N × n features, where torch-fidelity computes three m×m kernel blocks per subset and the reference's
  N×n distances twice. The reference side's k-NN radii are stored with the reference statistics, and its KID
  sums are computed once per process for a subset stream.

All arithmetic is float64 on ``device``. torch-fidelity sums float32 kernels, and MMD² is a small difference of
large sums: its float32 result differs by a few 1e-6 relative (benchmarks/scoring.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..errors import MetricInputError

#: the largest k of k-NN precision/recall: the reference statistics store the radii of k = 1..this
PRC_MAX_NEIGHBORHOOD = 10
#: entries of one streamed block of a Gram matrix (32 MiB in float64)
BLOCK_ENTRIES = 1 << 22


def check_features(features: np.ndarray, name: str) -> None:
    """Refuse anything but float32 features (N, D), naming ``name``."""
    if not isinstance(features, np.ndarray) or features.ndim != 2 or features.dtype != np.float32:
        got = f"{type(features).__name__} {getattr(features, 'dtype', '')} {getattr(features, 'shape', '')}"
        raise MetricInputError(f"{name}: expected float32 features shaped (N, D), got {got}")


def as_float64(features: np.ndarray, name: str, device: str | torch.device = "cpu") -> torch.Tensor:
    """float32 features (N, D) → a float64 tensor on ``device``; anything else is refused, naming ``name``."""
    check_features(features, name)
    return torch.from_numpy(features).to(device=device, dtype=torch.float64)


def feature_statistics(features: np.ndarray) -> dict[str, np.ndarray]:
    """float32 (N, D) → {"mu": (D,) float32, "sigma": (D, D) float64 sample covariance}, as torch-fidelity's
    ``fid_features_to_statistics`` computes them (μ in float32, Σ in float64):
    Σ = 1/(N − 1) Σ_i (φ_i − μ)(φ_i − μ)ᵀ."""
    check_features(features, "features")
    return {"mu": np.mean(features, axis=0), "sigma": np.cov(features, rowvar=False)}


def covariance_factor(sigma: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """L (D, D) float64 with Σ = L Lᵀ: V diag(√λ⁺) from Σ's eigendecomposition (rounding's negative λ are 0)."""
    lam, V = torch.linalg.eigh(torch.as_tensor(sigma, dtype=torch.float64, device=device))
    return V * lam.clamp_min(0).sqrt()


def frechet_distance(features: np.ndarray, mu_r: np.ndarray, sigma_r: np.ndarray,
                     factor_r: torch.Tensor | None = None, device: str | torch.device = "cpu") -> float:
    """FID of generated features (N, D) against reference statistics μ_r (D,), Σ_r (D, D).

    tr (Σ_g Σ_r)^{1/2} = Σ_i √λ_i, with λ the eigenvalues of F Σ_r Fᵀ (N×N) when N ≤ D, else of Lᵀ Σ_g L
    (D×D), where Σ_r = L Lᵀ (``factor_r``, :func:`covariance_factor`; computed here when not given).
    """
    phi = as_float64(features, "features", device)
    N, D = phi.shape
    if N < 2:
        raise MetricInputError(f"FID needs at least 2 generated features for a covariance, got N = {N}")
    if np.shape(sigma_r) != (D, D) or np.shape(mu_r) != (D,):
        raise MetricInputError(f"reference statistics have shapes {np.shape(mu_r)}, {np.shape(sigma_r)}; the "
                               f"features have D = {D}")
    mu_g = phi.mean(0)
    F = (phi - mu_g) / (N - 1) ** 0.5
    S_r = torch.as_tensor(sigma_r, dtype=torch.float64, device=device)
    if N <= D:
        M = F @ S_r @ F.T
    else:
        L = covariance_factor(sigma_r, device) if factor_r is None else factor_r.to(device)
        M = L.T @ (F.T @ F) @ L
    lam = torch.linalg.eigvalsh((M + M.T) / 2).clamp_min(0)
    diff = mu_g - torch.as_tensor(mu_r, dtype=torch.float64, device=device)
    return float(diff @ diff + (F * F).sum() + S_r.trace() - 2 * lam.sqrt().sum())


def kid_subsets(n_gen: int, n_ref: int, m: int, subsets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The KID subsets (S, m) of generated and of reference indices: torch-fidelity's stream, numpy
    RandomState(seed) drawing m of N then m of n without replacement, subset by subset."""
    if not 2 <= m <= min(n_gen, n_ref):
        raise MetricInputError(f"KID subset size {m} is invalid: must lie in [2, min(n = {n_gen}, n_ref = {n_ref})]")
    if subsets < 1:
        raise MetricInputError(f"KID subsets = {subsets} is invalid: must be ≥ 1")
    rng = np.random.RandomState(seed)
    draws = [(rng.choice(n_gen, m, replace=False), rng.choice(n_ref, m, replace=False)) for _ in range(subsets)]
    return np.stack([g for g, _ in draws]), np.stack([r for _, r in draws])


def _indicator(index: np.ndarray, n: int, device: str | torch.device) -> torch.Tensor:
    """U (n, S) float64: U[i, j] = 1 when feature i is in subset j (rows of ``index`` (S, m))."""
    U = torch.zeros(n, len(index), dtype=torch.float64, device=device)
    U[torch.as_tensor(index.T, device=device), torch.arange(len(index), device=device)] = 1.0
    return U


def _kernel(gram: torch.Tensor, D: int) -> torch.Tensor:
    """k(x, y) = (xᵀy / D + 1)³ from the Gram matrix xᵀy."""
    return (gram / D + 1.0) ** 3


def _row_blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    step = max(1, BLOCK_ENTRIES // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _distances(gram: torch.Tensor, sq_rows: torch.Tensor, sq_cols: torch.Tensor) -> torch.Tensor:
    """Euclidean distances from a Gram block: √max(‖a‖² + ‖b‖² − 2aᵀb, 0)."""
    return (sq_rows[:, None] + sq_cols[None, :] - 2 * gram).clamp_min(0).sqrt()


def kid_reference_sums(ref: torch.Tensor, index: np.ndarray) -> np.ndarray:
    """Σ_{a≠b ∈ J_j} k(y_a, y_b) (S,) for the reference subsets ``index`` (S, m) of ``ref`` (n, D) float64:
    the reference block of every KID subset, computed subset by subset (S·m² kernels, not n²)."""
    D = ref.shape[1]
    sums = []
    for rows in index:
        y = ref[torch.as_tensor(rows, device=ref.device)]
        K = _kernel(y @ y.T, D)
        sums.append(float(K.sum() - K.diagonal().sum()))
    return np.array(sums)


def knn_radii(features: torch.Tensor, k_max: int) -> np.ndarray:
    """(n, k_max) float64: column k − 1 holds each feature's distance to its k-th nearest feature in the same set,
    the feature itself counted as its 0-th (torch-fidelity's kthvalue(k + 1) of the distance row)."""
    n = len(features)
    if not 1 <= k_max < n:
        raise MetricInputError(f"k-NN radii up to k = {k_max} need more than {k_max} features, got {n}")
    sq = (features * features).sum(1)
    out = []
    for rows in _row_blocks(n, n):
        d = _distances(features[rows] @ features.T, sq[rows], sq)
        out.append(d.topk(k_max + 1, dim=1, largest=False).values[:, 1:])
    return torch.cat(out).cpu().numpy()


def nearest_neighbours(query: torch.Tensor, ref: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Each query feature's (n_q, D) nearest reference feature (n, D): its Euclidean distance (n_q,) float64 and
    index (n_q,) into ``ref``, found from Gram blocks (argmin_b ‖b‖² − 2aᵀb)."""
    sq_r = (ref * ref).sum(1)
    index = torch.cat([(sq_r[None, :] - 2 * query[rows] @ ref.T).argmin(1)
                       for rows in _row_blocks(len(query), len(ref))])
    return _exact_distance(query, ref, index), index.cpu().numpy()


def _exact_distance(query: torch.Tensor, ref: torch.Tensor, index: torch.Tensor) -> np.ndarray:
    """‖a − b‖ from the difference itself, not the Gram expansion: a copy is at distance 0, not at √rounding."""
    return (query - ref[index]).norm(dim=1).cpu().numpy()


@dataclass(frozen=True)
class Pairwise:
    """The pairwise statistics of one generated set against the reference: k-NN ``precision`` and ``recall``,
    the KID estimates ``mmd2`` (S,) (one per subset) and the nearest reference feature of each generated one."""

    precision: float
    recall: float
    mmd2: np.ndarray
    nearest_distance: np.ndarray
    nearest_index: np.ndarray

    @property
    def kid(self) -> tuple[float, float]:
        """(mean, std) of the subsets' MMD², std over subsets with ddof 0 (torch-fidelity's)."""
        return float(np.mean(self.mmd2)), float(np.std(self.mmd2))


def pairwise(gen: torch.Tensor, ref: torch.Tensor, ref_radii: np.ndarray, neighborhood: int,
             gen_index: np.ndarray, ref_index: np.ndarray, ref_sums: np.ndarray) -> Pairwise:
    """Precision/recall at k = ``neighborhood``, KID over the subsets ``gen_index``/``ref_index`` (S, m) and
    nearest neighbours, from one streamed pass over each Gram matrix.

    ``gen`` (N, D) and ``ref`` (n, D) are float64 on one device; ``ref_radii`` (n, ≥ k) are the reference's
    :func:`knn_radii`; ``ref_sums`` (S,) its :func:`kid_reference_sums` over ``ref_index``.
    """
    (N, D), n = gen.shape, len(ref)
    if min(N, n) <= neighborhood:
        raise MetricInputError(f"precision/recall with prc_neighborhood = {neighborhood} needs more than "
                               f"{neighborhood} images on each side, got n = {N}, n_ref = {n}")
    if ref_radii.shape[1] < neighborhood:
        raise MetricInputError(f"prc_neighborhood = {neighborhood} is invalid: the reference statistics store "
                               f"k-NN radii up to k = {ref_radii.shape[1]}")
    device, m = gen.device, gen_index.shape[1]
    U_g, U_r = _indicator(gen_index, N, device), _indicator(ref_index, n, device)
    sq_g, sq_r = (gen * gen).sum(1), (ref * ref).sum(1)

    # generated × generated: the generated k-NN radii and each subset's generated kernel block
    radius_g = torch.empty(N, dtype=torch.float64, device=device)
    S_xx = -(U_g.T @ _kernel(sq_g, D))  # the diagonal k(x_a, x_a) is not part of the unbiased sum
    for rows in _row_blocks(N, N):
        gram = gen[rows] @ gen.T
        radius_g[rows] = _distances(gram, sq_g[rows], sq_g).kthvalue(neighborhood + 1, dim=1).values
        S_xx += (U_g[rows] * (_kernel(gram, D) @ U_g)).sum(0)

    # generated × reference: precision, recall, nearest neighbours and each subset's cross kernel block
    radius_r = torch.as_tensor(ref_radii[:, neighborhood - 1], device=device)
    inside_r = torch.zeros(N, dtype=torch.bool, device=device)
    inside_g = torch.zeros(n, dtype=torch.bool, device=device)
    nearest = torch.empty(N, dtype=torch.long, device=device)
    S_xy = torch.zeros(len(gen_index), dtype=torch.float64, device=device)
    for rows in _row_blocks(N, n):
        gram = gen[rows] @ ref.T
        d = _distances(gram, sq_g[rows], sq_r)
        inside_r[rows] = (d <= radius_r[None, :]).any(1)
        inside_g |= (d <= radius_g[rows, None]).any(0)
        nearest[rows] = d.argmin(1)
        S_xy += (U_g[rows] * (_kernel(gram, D) @ U_r)).sum(0)

    mmd2 = ((S_xx.cpu().numpy() + ref_sums) / (m * (m - 1)) - 2 * S_xy.cpu().numpy() / m**2)
    return Pairwise(float(inside_r.double().mean()), float(inside_g.double().mean()), mmd2,
                    _exact_distance(gen, ref, nearest), nearest.cpu().numpy())
