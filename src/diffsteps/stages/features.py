"""``train-domain`` (the domain feature extractor) and ``reference-stats`` (training-split statistics,
computed once per (split, extractor, weights, N) and keyed by their content hashes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.datasets import load_split
from ..io import atomic_save_npz, atomic_torch_save, atomic_write_json, read_json
from ..metrics.classifier import train_domain_classifier
from ..metrics.fidelity import INCEPTION_EXTRACTOR, inception_available, reference_stats
from ..metrics.features import DOMAIN_EXTRACTOR
from .common import add_common, record, resolve_device, setup

NO_LABELS = "not available: the data set has no labels, so no domain classifier can be trained"


def register(sub) -> None:
    p = sub.add_parser("train-domain", help="train the domain classifier used as a torch-fidelity feature extractor")
    add_common(p)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=run_domain)
    p = sub.add_parser("reference-stats", help="feature statistics of the training split")
    add_common(p)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--weights", required=True, type=Path, help="the domain extractor checkpoint")
    p.add_argument("--data-meta", required=True, type=Path, help="data.json of the training split")
    p.add_argument("--domain-meta", required=True, type=Path, help="extractor.json of the domain classifier")
    p.add_argument("--out", required=True, type=Path, help="domain-feature statistics (npz)")
    p.add_argument("--inception-out", required=True, type=Path, help="Inception statistics, or a not-computed marker")
    p.set_defaults(func=run_stats)


def run_domain(args) -> int:
    cfg = setup(args)
    device = resolve_device(cfg.train.device)
    train_x, train_y = load_split(args.data_dir / "train.npz")
    held_x, held_y = load_split(args.data_dir / "heldout.npz")
    if train_y is None:
        atomic_torch_save(args.out_dir / "extractor.pt", {"status": "not_available", "reason": NO_LABELS})
        atomic_write_json(args.out_dir / "extractor.json", record(cfg, "train_domain", status="not_available",
                                                             error=NO_LABELS))
        return 0
    result = train_domain_classifier(train_x, train_y, held_x, held_y, cfg.evaluation.domain,
                                     args.out_dir / "extractor.pt", dataset=cfg.data.dataset, device=device)
    atomic_write_json(args.out_dir / "extractor.json", record(cfg, "train_domain", device=device, result=result))
    return 0


def run_stats(args) -> int:
    cfg = setup(args)
    device = resolve_device(cfg.train.device)
    images, _ = load_split(args.data_dir / "train.npz")
    split_sha = read_json(args.data_meta)["sha256"]["train"]
    domain = read_json(args.domain_meta)
    out = args.out
    metas = {}
    if domain["status"] == "ok":
        ref = reference_stats(images, split_sha, DOMAIN_EXTRACTOR, args.weights, None, out, seed=0,
                              batch_size=cfg.evaluation.batch_size, device=device)
        metas["domain"] = ref.meta
    else:
        atomic_save_npz(out, status=np.array(domain["status"]))
    ok, reason = inception_available(cfg.evaluation.inception_weights)
    inception_path = args.inception_out
    if ok:
        metas["inception"] = reference_stats(images, split_sha, INCEPTION_EXTRACTOR, cfg.evaluation.inception_weights,
                                             None, inception_path, seed=0, batch_size=cfg.evaluation.batch_size,
                                             device=device).meta
    else:
        atomic_save_npz(inception_path, status=np.array("not_computed"))
        metas["inception"] = {"status": "not_computed", "reason": reason}
    atomic_write_json(out.with_name("stats.json"), record(cfg, "reference_stats", device=device, stats=metas))
    return 0
