"""``reference-stats``: one extractor's statistics of the training split plus the floor's held-out features,
computed once per (split, extractor, weights, N) and keyed by their content hashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.datasets import load_split
from ..io import atomic_save_npz, atomic_write_json, read_json
from ..features.extract import EXTRACTORS, INCEPTION_EXTRACTOR
from ..metrics.refstats import reference_stats
from .common import add_common, record, resolve_device, setup

SECTIONS = ("data", "train", "evaluation")  # train: its device


def register(sub) -> None:
    p = sub.add_parser("reference-stats", help="one extractor's statistics of the training split and the floor's features")
    add_common(p)
    p.add_argument("--extractor", required=True, choices=EXTRACTORS)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--data-meta", required=True, type=Path, help="data.json of the splits")
    p.add_argument("--weights", required=True, type=Path, help="the extractor's weights")
    p.add_argument("--weights-meta", required=True, type=Path, help="the record of the stage that wrote the weights")
    p.add_argument("--out", required=True, type=Path, help="the statistics (npz), or a marker saying why there are none")
    p.add_argument("--meta", required=True, type=Path, help="their record")
    p.set_defaults(func=run)


def run(args) -> int:
    """Statistics of one extractor. The domain features use both whole splits; Inception uses
    evaluation.inception.n_ref training and evaluation.inception.n held-out images (its floor's N)."""
    cfg = setup(args, SECTIONS)
    device = resolve_device(cfg.train.device)
    ev = cfg.evaluation
    weights = read_json(args.weights_meta)
    if weights["status"] != "ok":
        atomic_save_npz(args.out, status=np.array(weights["status"]))
        atomic_write_json(args.meta, record(cfg, args, status=weights["status"], error=weights["error"],
                                            extractor=args.extractor))
        return 0
    train, _ = load_split(args.data_dir / "train.npz")
    heldout, _ = load_split(args.data_dir / "heldout.npz")
    sha = read_json(args.data_meta)["sha256"]
    n, n_heldout = (ev.inception.n_ref, ev.inception.n) if args.extractor == INCEPTION_EXTRACTOR else (None, None)
    ref = reference_stats(train, sha["train"], heldout, sha["heldout"], args.extractor, args.weights, args.out,
                          n=n, n_heldout=n_heldout, seed=0, batch_size=ev.batch_size, device=device,
                          precision=ev.inception.precision)
    atomic_write_json(args.meta, record(cfg, args, device=device, extractor=args.extractor, result=ref.meta))
    return 0
