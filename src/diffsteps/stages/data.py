"""``prepare-data`` (train and held-out uint8 splits with content hashes) and ``download-data``."""

from __future__ import annotations

from pathlib import Path

from ..data import datasets
from .common import add_common, setup

SECTIONS = ("data",)


def register(sub) -> None:
    p = sub.add_parser("prepare-data", help="write train/held-out splits as uint8 arrays with content hashes")
    add_common(p)
    p.add_argument("--out-dir", required=True, type=Path)
    p.set_defaults(func=run_prepare)
    p = sub.add_parser("download-data", help="download a torchvision data set into data.raw_dir (online machines only)")
    p.add_argument("--dataset", required=True, choices=sorted(datasets.TORCHVISION))
    p.add_argument("--raw-dir", default="data/raw", type=Path)
    p.set_defaults(func=run_download)


def run_prepare(args) -> int:
    cfg = setup(args, SECTIONS)
    datasets.prepare(cfg.data, args.out_dir)  # writes data.json last, with content hashes and provenance
    return 0


def run_download(args) -> int:
    datasets.download(args.dataset, args.raw_dir)
    return 0
