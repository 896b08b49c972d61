"""``inception-weights`` (the Inception weights as a content-hashed pipeline resource), ``train-domain``
(the domain feature extractor) and ``reference-stats`` (training-split statistics plus the floor's
held-out features, computed once per (split, extractor, weights, N) and keyed by their content hashes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.datasets import load_split
from ..io import atomic_save_npz, atomic_torch_save, atomic_write_json, read_json
from ..metrics.classifier import train_domain_classifier
from ..metrics.features import EXTRACTORS, INCEPTION_EXTRACTOR
from ..metrics.fidelity import reference_stats
from ..metrics.inception_weights import build_resource
from .common import add_common, record, resolve_device, setup

NO_LABELS = "not available: the data set has no labels, so no domain classifier can be trained"


def register(sub) -> None:
    p = sub.add_parser("inception-weights", help="build the Inception weights named by evaluation.inception.weights")
    add_common(p)
    p.add_argument("--out", required=True, type=Path, help="the weights file (torch-fidelity inception-v3-compat)")
    p.add_argument("--meta", required=True, type=Path, help="its record: status, source, sha256, has_logits")
    p.set_defaults(func=run_inception_weights)
    p = sub.add_parser("train-domain", help="train the domain classifier used as a torch-fidelity feature extractor")
    add_common(p)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=run_domain)
    p = sub.add_parser("reference-stats", help="one extractor's statistics of the training split and the floor's features")
    add_common(p)
    p.add_argument("--extractor", required=True, choices=EXTRACTORS)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--data-meta", required=True, type=Path, help="data.json of the splits")
    p.add_argument("--weights", required=True, type=Path, help="the extractor's weights")
    p.add_argument("--weights-meta", required=True, type=Path, help="the record of the stage that wrote the weights")
    p.add_argument("--out", required=True, type=Path, help="the statistics (npz), or a marker saying why there are none")
    p.add_argument("--meta", required=True, type=Path, help="their record")
    p.set_defaults(func=run_stats)


def run_inception_weights(args) -> int:
    cfg = setup(args)
    result = build_resource(cfg.evaluation.inception.weights, args.out)
    atomic_write_json(args.meta, record(cfg, "inception_weights", status=result["status"], error=result["reason"],
                                        result=result))
    return 0


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
    """Statistics of one extractor. The domain features use both whole splits; Inception uses
    evaluation.inception.n_ref training and evaluation.inception.n held-out images (its floor's N)."""
    cfg = setup(args)
    device = resolve_device(cfg.train.device)
    ev = cfg.evaluation
    # each extractor's statistics are their own stage, with their own params slice in the record
    stage = "reference_stats_inception" if args.extractor == INCEPTION_EXTRACTOR else "reference_stats"
    weights = read_json(args.weights_meta)
    if weights["status"] != "ok":
        atomic_save_npz(args.out, status=np.array(weights["status"]))
        atomic_write_json(args.meta, record(cfg, stage, status=weights["status"], error=weights["error"],
                                            extractor=args.extractor))
        return 0
    train, _ = load_split(args.data_dir / "train.npz")
    heldout, _ = load_split(args.data_dir / "heldout.npz")
    sha = read_json(args.data_meta)["sha256"]
    n, n_heldout = (ev.inception.n_ref, ev.inception.n) if args.extractor == INCEPTION_EXTRACTOR else (None, None)
    ref = reference_stats(train, sha["train"], heldout, sha["heldout"], args.extractor, args.weights, args.out,
                          n=n, n_heldout=n_heldout, seed=0, batch_size=ev.batch_size, device=device)
    atomic_write_json(args.meta, record(cfg, stage, device=device, extractor=args.extractor, result=ref.meta))
    return 0
