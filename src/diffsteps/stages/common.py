"""What every stage shares: loading params, choosing the device, recording results, failed cells."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Any, Callable

import torch

from ..config import StudyConfig, load_config, to_plain
from ..io import provenance
from ..workflow import params_slice

log = logging.getLogger("diffsteps")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="the study parameters (default: params.yaml)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")


def setup(args: argparse.Namespace) -> StudyConfig:
    """Validate params first (bad input stops before any expensive work), then set threads."""
    cfg = load_config(args.params)
    if args.threads:
        torch.set_num_threads(args.threads)
    return cfg


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device = 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def run_stage(cfg: StudyConfig, stage: str, run: str) -> str:
    """The workflow stage a cell of ``run`` belongs to: ``<stage>_fixed_T`` for a fixed-T run (DDGAN), whose
    cells read other params (no noise.*), else ``stage``; its params slice is what the record saves."""
    options = cfg.method_config.get(run)
    return f"{stage}_fixed_T" if options is not None and options.fixed_T else stage


def record(cfg: StudyConfig, stage: str, method: str | None = None, *, status: str = "ok", error: str | None = None,
           device: Any = None, **extra: Any) -> dict[str, Any]:
    """The JSON record written beside every artifact: status, the params slice used (with the run's
    own options when the stage belongs to a run), provenance."""
    return {"stage": stage, "status": status, "error": error, "config": params_slice(to_plain(cfg), stage, method),
            "provenance": provenance(device), **extra}


def run_cell(work: Callable[[], None], on_failure: Callable[[str], None]) -> int:
    """Run one cell; a runtime failure is recorded (``on_failure`` writes the failed outputs) and the
    command exits 0, so that the other cells and the report complete and show this cell as failed.
    Bad input (``ValueError`` raised while validating, before work starts) is not caught here."""
    try:
        work()
    except (RuntimeError, FloatingPointError, MemoryError, OSError) as exc:
        message = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
        log.error("cell failed: %s", message)
        on_failure(message)
    return 0
