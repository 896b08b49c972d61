"""``evaluate`` (one sample cell) and ``floor`` (the held-out real split), through torch-fidelity.

Each generated set is scored per feature extractor at the N its floor has, and (domain features) also at
its own N when that differs, so that cells and the floor are compared at equal N. Every row is labelled
with its extractor and weights (sha256). Inception rows exist for the cells ``evaluation.inception``
selects; without weights they say "not computed". The evaluate stage also keeps the closest
(sample, training image) pairs of each extractor for the report's memorisation grid.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.datasets import load_split
from ..io import atomic_save_npz, atomic_write_json, read_json
from ..features.extract import DOMAIN_EXTRACTOR, INCEPTION_EXTRACTOR, weights_sha256
from ..metrics.refstats import RefStats, load_reference_stats
from ..metrics.fidelity import (closest_pairs, floor_rows, inception_score_row, not_available_rows, not_computed_rows,
                                score)
from ..rows import FLOOR_SAMPLER, IDENTITY_COLUMNS, make_row
from .common import add_common, record, resolve_device, run_cell, setup

CELL_KEYS = tuple(c for c in IDENTITY_COLUMNS if c not in ("dataset", "metric"))  # what a sample.json names
SECTIONS = ("data", "train", "evaluation")  # train: its device
INCEPTION_PREFIX = "inception_"


def register(sub) -> None:
    for name, func, help_ in (
            ("evaluate", run_evaluate, "FID/KID/precision/recall/memorisation of the cells of one sampling job"),
            ("floor", run_floor, "the real-data floor: held-out split against the training statistics")):
        p = sub.add_parser(name, help=help_)
        add_common(p)
        p.add_argument("--stats", required=True, type=Path, help="domain-feature statistics of the training split")
        p.add_argument("--inception-stats", required=True, type=Path)
        p.add_argument("--weights", required=True, type=Path, help="the domain extractor checkpoint")
        p.add_argument("--inception-weights", required=True, type=Path, help="the inception-weights stage's file")
        p.add_argument("--inception-meta", required=True, type=Path, help="the inception-weights stage's record")
        p.add_argument("--data-meta", required=True, type=Path, help="data.json of the split the statistics belong to")
        p.add_argument("--domain-meta", required=True, type=Path, help="extractor.json of the domain classifier")
        if name == "evaluate":
            p.add_argument("--train", required=True, type=Path, help="the training split (for the closest pairs)")
            p.add_argument("--cell", required=True, action="append", nargs=2, type=Path,
                           metavar=("SAMPLES_DIR", "OUT_DIR"),
                           help="one cell (repeatable): the sample cell's folder, and the folder to write its "
                                "metrics.json and closest pairs (pairs.npz) to")
        else:
            p.add_argument("--heldout", required=True, type=Path)
            p.add_argument("--out", required=True, type=Path)
        p.set_defaults(func=func)


@dataclass(frozen=True)
class Extractor:
    """One feature space a cell is scored in: its metric-name prefix, weights, statistics and the N of its
    floor (None: the whole held-out split), or why it has no numbers (``status``, ``reason``)."""

    prefix: str
    name: str
    weights: Path
    stats: Path
    floor_n: int | None
    status: str = "ok"
    reason: str | None = None

    @functools.cache
    def ref(self, split_sha256: str) -> RefStats:
        """The reference statistics, read once per job."""
        return load_reference_stats(self.stats, split_sha256, weights_sha256(self.name, self.weights), self.name)


def _extractors(cfg, args) -> list[Extractor]:
    """The domain extractor and the Inception network, as this run configured them."""
    domain = read_json(args.domain_meta)
    inception = read_json(args.inception_meta)
    return [Extractor("", DOMAIN_EXTRACTOR, args.weights, args.stats, None, domain["status"], domain["error"]),
            Extractor(INCEPTION_PREFIX, INCEPTION_EXTRACTOR, args.inception_weights, args.inception_stats,
                      cfg.evaluation.inception.n, inception["status"], inception["error"])]


def _prefixed(rows: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [{**r, "metric": prefix + r["metric"]} for r in rows]


def _unscored(ex: Extractor, cfg, n: int | None) -> list[dict[str, Any]]:
    if ex.name == DOMAIN_EXTRACTOR:
        return not_available_rows(ex.reason, cfg.data.dataset, n)
    return _prefixed(not_computed_rows(ex.reason, n, cfg.evaluation.inception.precision), ex.prefix)


def _cell_rows(images: np.ndarray, train: np.ndarray, cfg, extractors: list[Extractor], split_sha: str, device,
               ident: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Rows of every extractor that scores this cell, and the arrays of its closest pairs."""
    rows: list[dict[str, Any]] = []
    pairs: dict[str, np.ndarray] = {}
    for ex in extractors:
        if ex.name == INCEPTION_EXTRACTOR and not cfg.evaluation.inception.scores(ident["sampler"], ident["nfe"]):
            continue  # not one of the cells evaluation.inception selects: no rows at all
        floor_n = min(len(images), ex.floor_n or cfg.data.n_heldout)
        sizes = [floor_n] if ex.floor_n else sorted({len(images), floor_n}, reverse=True)
        if ex.status != "ok":
            rows += [r for n in sizes for r in _unscored(ex, cfg, n)]
            continue
        ref = ex.ref(split_sha)
        for i, n in enumerate(sizes):
            scores = score(images, ref, ex.name, ex.weights, cfg.evaluation, device, ident["seed"], n)
            rows += _prefixed(scores.rows, ex.prefix)
            if i > 0:
                continue
            # the largest scored set keeps its closest pairs, and (Inception) its Inception Score at the same N
            sample_idx, train_idx, distance = closest_pairs(scores.nearest, cfg.evaluation.memorisation.pairs)
            pairs.update({f"{ex.prefix}sample": images[sample_idx], f"{ex.prefix}train": train[train_idx],
                          f"{ex.prefix}distance": distance,
                          f"{ex.prefix}tau": np.array(ref.tau(cfg.evaluation.memorisation.quantile))})
            if ex.name == INCEPTION_EXTRACTOR:
                scored = images[scores.nearest.scored_index]
                rows += _prefixed([inception_score_row(scored, ex.weights, cfg.evaluation, device, ident["seed"])],
                                  ex.prefix)
    return rows, pairs


def _as_rows(raw_rows: list[dict[str, Any]], ident: dict[str, Any]) -> list[dict[str, Any]]:
    """Metric rows from the fidelity functions, with the cell identity."""
    return [make_row(**ident, **r) for r in raw_rows]


def run_evaluate(args) -> int:
    cfg = setup(args, SECTIONS)
    device = resolve_device(cfg.train.device)
    metas = [read_json(samples_dir / "sample.json") for samples_dir, _ in args.cell]  # every cell's, before any work
    split_sha = read_json(args.data_meta)["sha256"]["train"]
    extractors = _extractors(cfg, args)
    train, _ = load_split(args.train)
    for (samples_dir, out_dir), meta in zip(args.cell, metas):
        _evaluate_cell(cfg, args, device, samples_dir, out_dir, meta, train, extractors, split_sha)
    return 0


def _evaluate_cell(cfg, args, device, samples_dir: Path, out_dir: Path, meta: dict[str, Any], train: np.ndarray,
                   extractors: list[Extractor], split_sha: str) -> None:
    """Score one sample cell into ``out_dir`` (metrics.json, pairs.npz); a failure is written as the cell's."""
    ident = {"dataset": cfg.data.dataset, **{k: meta["cell"].get(k) for k in CELL_KEYS}}
    if ident["nfe"] is None:
        ident["nfe"] = meta["cell"].get("budget")
    metrics, pairs_path = out_dir / "metrics.json", out_dir / "pairs.npz"

    def work() -> None:
        if meta["status"] != "ok":
            raise RuntimeError(f"sampling failed: {meta['error']}")
        images, _ = load_split(samples_dir / "samples.npz")
        raw, pairs = _cell_rows(images, train, cfg, extractors, split_sha, device, ident)
        rows = _as_rows(raw, ident)
        res = meta["result"]
        rows += [make_row(**ident, metric=m, value=res[k], n=res["n"], status="ok") for m, k in (
            ("sampling_seconds_per_image", "seconds_per_image"), ("sampling_peak_memory_mb", "peak_memory_mb"))]
        atomic_save_npz(pairs_path, cell=np.array(json.dumps(ident, sort_keys=True)), **pairs)
        atomic_write_json(metrics, record(cfg, args, device=device, cell=ident, rows=rows,
                                          sample_device=meta["provenance"]["device"]))

    def failed(message: str) -> None:
        atomic_save_npz(pairs_path, cell=np.array(json.dumps(ident, sort_keys=True)))  # no pairs: the cell failed
        atomic_write_json(metrics, record(cfg, args, status="failed", error=message, device=device, cell=ident,
                                          rows=[make_row(**ident, metric="fid", status="failed", reason=message)]))

    run_cell(work, failed)


def run_floor(args) -> int:
    cfg = setup(args, SECTIONS)
    device = resolve_device(cfg.train.device)
    heldout, _ = load_split(args.heldout)
    split_sha = read_json(args.data_meta)["sha256"]["train"]
    ident = {"dataset": cfg.data.dataset, "method": None, "sampler": FLOOR_SAMPLER, "seed": 0}
    raw: list[dict[str, Any]] = []
    for ex in _extractors(cfg, args):
        if ex.status != "ok":
            raw += _unscored(ex, cfg, ex.floor_n or len(heldout))
            continue
        ref = ex.ref(split_sha)
        raw += _prefixed(floor_rows(ref, cfg.evaluation, device, seed=0), ex.prefix)
        if ex.name == INCEPTION_EXTRACTOR:
            raw += _prefixed([inception_score_row(heldout[ref.heldout_index], ex.weights, cfg.evaluation, device, 0)],
                             ex.prefix)
    rows = _as_rows(raw, ident)
    domain = read_json(args.domain_meta)
    if domain["status"] == "ok":
        res = domain["result"]
        rows.append(make_row(**ident, metric="domain_accuracy", value=res["heldout_accuracy"], n=len(heldout),
                             status="ok", feature_extractor=rows[0]["feature_extractor"],
                             weights_sha256=rows[0]["weights_sha256"],
                             reason=None if res["accuracy_ok"] else
                             f"unreliable: held-out accuracy {res['heldout_accuracy']:.3f} < "
                             f"evaluation.domain.min_accuracy {res['min_accuracy']}"))
    atomic_write_json(args.out, record(cfg, args, device=device, cell=ident, rows=rows))
    return 0
