"""``train-domain``: the domain classifier, the study's own feature extractor for domain FID/KID/PR."""

from __future__ import annotations

from pathlib import Path

from ..data.datasets import load_split
from ..io import atomic_torch_save, atomic_write_json
from ..features.classifier import train_domain_classifier
from .common import add_common, record, resolve_device, setup

SECTIONS = ("data", "train", "evaluation")  # train: its device

NO_LABELS = "not available: the data set has no labels, so no domain classifier can be trained"


def register(sub) -> None:
    p = sub.add_parser("train-domain", help="train the domain classifier used as a torch-fidelity feature extractor")
    add_common(p)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = setup(args, SECTIONS)
    device = resolve_device(cfg.train.device)
    train_x, train_y = load_split(args.data_dir / "train.npz")
    held_x, held_y = load_split(args.data_dir / "heldout.npz")
    if train_y is None:
        atomic_torch_save(args.out_dir / "extractor.pt", {"status": "not_available", "reason": NO_LABELS})
        atomic_write_json(args.out_dir / "extractor.json", record(cfg, args, status="not_available", error=NO_LABELS))
        return 0
    result = train_domain_classifier(train_x, train_y, held_x, held_y, cfg.evaluation.domain,
                                     args.out_dir / "extractor.pt", dataset=cfg.data.dataset, device=device)
    atomic_write_json(args.out_dir / "extractor.json", record(cfg, args, device=device, result=result))
    return 0
