"""``evaluate`` (one sample cell) and ``floor`` (the held-out real split), through torch-fidelity.

Each generated set is scored at its own N and, when that differs, also at the N of the real-data
floor, so that cells and the floor can be compared at equal N. Domain metrics are labelled with the
extractor; Inception rows say "not computed" unless weights are configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.datasets import load_split
from ..io import atomic_write_json, read_json, sha256_file
from ..metrics.features import DOMAIN_EXTRACTOR
from ..metrics.fidelity import inception_rows, load_reference_stats, not_available_rows, score
from ..reporting.schema import FLOOR_SAMPLER, make_row
from .common import add_common, record, resolve_device, run_cell, setup

CELL_KEYS = ("method", "family", "sampler", "spacing", "variance", "eta", "noise", "nfe", "train_seed", "seed")


def register(sub) -> None:
    for name, images, func, help_ in (
            ("evaluate", "--samples-dir", run_evaluate, "FID/KID/precision/recall of one sample cell"),
            ("floor", "--heldout", run_floor, "the real-data floor: held-out split against the training statistics")):
        p = sub.add_parser(name, help=help_)
        add_common(p)
        p.add_argument(images, required=True, type=Path)
        p.add_argument("--stats", required=True, type=Path, help="domain-feature statistics of the training split")
        p.add_argument("--inception-stats", required=True, type=Path)
        p.add_argument("--weights", required=True, type=Path, help="the domain extractor checkpoint")
        p.add_argument("--data-meta", required=True, type=Path, help="data.json of the split the statistics belong to")
        p.add_argument("--domain-meta", required=True, type=Path, help="extractor.json of the domain classifier")
        p.add_argument("--out", required=True, type=Path)
        p.set_defaults(func=func)


def _fidelity_rows(images: np.ndarray, cfg, args, device, seed: int, sizes: list[int]) -> list[dict[str, Any]]:
    """Domain and Inception rows at each N in ``sizes``; the statistics must belong to the current
    training split and extractor weights (checked by content hash)."""
    stats, weights = args.stats, args.weights
    domain = read_json(args.domain_meta)
    split_sha = read_json(args.data_meta)["sha256"]["train"]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        if domain["status"] != "ok":
            rows += not_available_rows(domain["error"], cfg.data.dataset, n)
        else:
            ref = load_reference_stats(stats, split_sha, sha256_file(weights), DOMAIN_EXTRACTOR)
            rows += score(images, ref, DOMAIN_EXTRACTOR, weights, cfg.evaluation, device, seed, n)
        rows += [{**r, "metric": f"inception_{r['metric']}"} for r in
                 inception_rows(images, args.inception_stats, split_sha, cfg.evaluation, device, seed, n)]
    return rows


def _as_rows(raw_rows: list[dict[str, Any]], ident: dict[str, Any]) -> list[dict[str, Any]]:
    """Metric rows from the fidelity functions, with the cell identity."""
    return [make_row(**ident, **r) for r in raw_rows]


def run_evaluate(args) -> int:
    cfg = setup(args)
    device = resolve_device(cfg.train.device)
    meta = read_json(args.samples_dir / "sample.json")
    ident = {"dataset": cfg.data.dataset, **{k: meta["cell"].get(k) for k in CELL_KEYS}}
    if ident["nfe"] is None:
        ident["nfe"] = meta["cell"].get("budget")

    def work() -> None:
        if meta["status"] != "ok":
            raise RuntimeError(f"sampling failed: {meta['error']}")
        images, _ = load_split(args.samples_dir / "samples.npz")
        sizes = sorted({len(images), min(len(images), cfg.data.n_heldout)}, reverse=True)
        rows = _as_rows(_fidelity_rows(images, cfg, args, device, ident["seed"], sizes), ident)
        res = meta["result"]
        rows += [make_row(**ident, metric=m, value=res[k], n=res["n"], status="ok") for m, k in (
            ("sampling_seconds_per_image", "seconds_per_image"), ("sampling_peak_memory_mb", "peak_memory_mb"))]
        atomic_write_json(args.out, record(cfg, "evaluate", device=device, cell=ident, rows=rows,
                                      sample_device=meta["provenance"]["device"]))

    def failed(message: str) -> None:
        atomic_write_json(args.out, record(cfg, "evaluate", status="failed", error=message, device=device, cell=ident,
                                      rows=[make_row(**ident, metric="fid", status="failed", reason=message)]))

    return run_cell(work, failed)


def run_floor(args) -> int:
    cfg = setup(args)
    device = resolve_device(cfg.train.device)
    images, _ = load_split(args.heldout)
    ident = {"dataset": cfg.data.dataset, "method": None, "sampler": FLOOR_SAMPLER, "seed": 0}
    rows = _as_rows(_fidelity_rows(images, cfg, args, device, 0, [len(images)]), ident)
    domain = read_json(args.domain_meta)
    if domain["status"] == "ok":
        res = domain["result"]
        rows.append(make_row(**ident, metric="domain_accuracy", value=res["heldout_accuracy"], n=len(images),
                             status="ok", feature_extractor=rows[0]["feature_extractor"],
                             weights_sha256=rows[0]["weights_sha256"],
                             reason=None if res["accuracy_ok"] else
                             f"unreliable: held-out accuracy {res['heldout_accuracy']:.3f} < "
                             f"evaluation.domain.min_accuracy {res['min_accuracy']}"))
    atomic_write_json(args.out, record(cfg, "floor", device=device, cell=ident, rows=rows))
    return 0
