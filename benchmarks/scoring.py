"""Scoring's maths, timed side by side: torch-fidelity's FID, KID and precision/recall against the study's
(`diffsteps.metrics.distances`) on the same features, at the presets' sizes, with their agreement.

One row per size: the seconds of each metric a cell (torch-fidelity's, the study's), their ratio, the study's
once-per-process reference work (the KID subsets' reference blocks; the k-NN radii are computed once per reference
statistics file) and the relative differences. torch-fidelity's KID is also run on float64 features: the study
computes in float64, and the float32 difference is torch-fidelity's own rounding.

    python benchmarks/scoring.py                 # writes benchmarks/results/scoring.json
    python benchmarks/scoring.py --tiny --out X  # toy sizes (the suite runs it so that it cannot rot)
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "results" / "scoring.json"
#: (name, N generated, n reference, D, KID subset size, KID subsets): the presets' Inception and domain cells
SIZES = (("gpu preset, Inception", 500, 4000, 2048, 500, 100),
         ("cpu preset, Inception", 100, 300, 2048, 100, 50),
         ("cpu preset, domain", 360, 1437, 128, 100, 50))
TINY = (("tiny", 40, 120, 64, 30, 5),)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def features(n: int, d: int, seed: int, shift: float) -> np.ndarray:
    """Correlated, non-negative features of a network's kind (post-ReLU pooled activations)."""
    mix = np.random.default_rng(99).normal(size=(d, d)) / d ** 0.5
    z = np.random.default_rng(seed).normal(size=(n, d)) @ mix + shift
    return np.maximum(z, 0).astype(np.float32)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def row(name: str, N: int, n: int, D: int, m: int, S: int, k: int, device: str) -> dict:
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    from diffsteps.metrics.distances import (as_float64, frechet_distance, kid_reference_sums, kid_subsets,
                                             knn_radii, pairwise)

    gen, ref = features(N, D, 0, 0.3), features(n, D, 1, 0.2)
    g_t, r_t = torch.from_numpy(gen), torch.from_numpy(ref)
    st_r = fid_features_to_statistics(r_t)
    theirs, ours = {}, {}
    theirs["fid_s"], fid_tf = timed(lambda: fid_statistics_to_metric(fid_features_to_statistics(g_t), st_r,
                                                                    verbose=False)[KEY_METRIC_FID])
    theirs["kid_s"], kid_tf = timed(kid_features_to_metric, g_t, r_t, kid_subsets=S, kid_subset_size=m, rng_seed=0,
                                    verbose=False)
    kid_tf64 = kid_features_to_metric(g_t.double(), r_t.double(), kid_subsets=S, kid_subset_size=m, rng_seed=0,
                                      verbose=False)
    theirs["prc_s"], prc_tf = timed(prc_features_to_metric, g_t.to(device), r_t.to(device), prc_neighborhood=k,
                                    prc_batch_size=10000, save_cpu_ram=True, verbose=False)

    R = as_float64(ref, "ref", device)
    radii_s, radii = timed(knn_radii, R, k)
    gen_index, ref_index = kid_subsets(N, n, m, S, 0)
    ref_sums_s, ref_sums = timed(kid_reference_sums, R, ref_index)
    ours["fid_s"], fid = timed(frechet_distance, gen, st_r["mu"], st_r["sigma"], None, device)
    ours["pairwise_s"], pair = timed(lambda: pairwise(as_float64(gen, "gen", device), R, radii, k, gen_index,
                                                      ref_index, ref_sums))
    total_tf, total = sum(theirs.values()), sum(ours.values())
    return {"size": name, "N": N, "n_ref": n, "D": D, "kid_subset_size": m, "kid_subsets": S, "prc_neighborhood": k,
            "torch_fidelity_seconds": theirs, "diffsteps_seconds": ours, "seconds_a_cell": [total_tf, total],
            "ratio_a_cell": total_tf / total,
            "once_per_process_seconds": {"kid_reference_blocks": ref_sums_s},
            "once_per_reference_file_seconds": {"knn_radii": radii_s},
            "agreement_rel": {"fid": rel(fid, fid_tf), "kid_vs_float64": rel(pair.kid[0], kid_tf64[KEY_METRIC_KID_MEAN]),
                              "kid_vs_float32": rel(pair.kid[0], kid_tf[KEY_METRIC_KID_MEAN]),
                              "precision": rel(pair.precision, prc_tf[KEY_METRIC_PRECISION]),
                              "recall": rel(pair.recall, prc_tf[KEY_METRIC_RECALL])}}


def main(argv: list[str] | None = None) -> int:
    from diffsteps.io import atomic_write_json, device_name

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes: checks the script, measures nothing")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = [row(*size, k=3, device=args.device) for size in (TINY if args.tiny else SIZES)]
    atomic_write_json(args.out, {"date": datetime.date.today().isoformat(), "device": device_name(args.device),
                                 "threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows})
    for r in rows:
        print(f"{r['size']}: {r['seconds_a_cell'][0]:.2f} s → {r['seconds_a_cell'][1]:.2f} s a cell "
              f"({r['ratio_a_cell']:.1f}x); agreement {r['agreement_rel']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
