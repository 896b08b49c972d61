"""What every stage shares: loading params, choosing the device, recording results, failed cells."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..config import StudyConfig, config_slice, read_config
from ..io import provenance

if TYPE_CHECKING:
    import torch

log = logging.getLogger("diffsteps")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="the study parameters (default: params.yaml)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    # what the workflow passes (the stage table is the workflow's, never imported by a stage): the record saves
    # these values, so it says exactly which parameters produced the artifact
    parser.add_argument("--stage", default=None, help="the workflow stage this cell belongs to (default: the command)")
    parser.add_argument("--keys", nargs="+", default=None, metavar="KEY",
                        help="the dotted params.yaml keys this cell reads (default: every section)")


def setup(args: argparse.Namespace, sections: Sequence[str]) -> StudyConfig:
    """Read and check this command's slice of params first (bad input stops before any expensive work): the
    ``sections`` it reads (the whole file was validated where the DAG was built; a command of a run adds its run's
    options with :func:`diffsteps.families.with_runs`); then set threads."""
    cfg = read_config(args.params, sections)
    if args.threads:
        import torch  # here, not at the top: the report and the planning commands never need torch

        torch.set_num_threads(args.threads)
    _work_clock[:] = [time.perf_counter()]
    return cfg


#: when the work of the record to be written next began: set by :func:`setup`, moved on by each :func:`record`
_work_clock: list[float] = []


def _work_seconds() -> float | None:
    """Seconds since :func:`setup` or the previous record: the work this record stands for. A job's records sum to
    its wall time less its start-up (interpreter, imports) and exit, which is the job's overhead
    (benchmarks/default_study.py)."""
    if not _work_clock:
        return None
    now = time.perf_counter()
    seconds, _work_clock[0] = now - _work_clock[0], now
    return round(seconds, 3)


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device = 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def cell_config(cfg: StudyConfig, args: argparse.Namespace) -> dict[str, Any]:
    """The params this cell read: the values of ``--keys`` (the workflow stage's slice, with the run's own
    ``method_config.<run>`` for a run's cells), keyed by dotted name; every section without ``--keys``."""
    return config_slice(cfg, args.keys)


def record(cfg: StudyConfig, args: argparse.Namespace, *, status: str = "ok", error: str | None = None,
           device: Any = None, **extra: Any) -> dict[str, Any]:
    """The JSON record written beside every artifact: its stage, status, the params slice used
    (:func:`cell_config`), provenance, and the seconds of work it stands for (:func:`_work_seconds`)."""
    return {"stage": args.stage or args.command, "status": status, "error": error, "config": cell_config(cfg, args),
            "provenance": provenance(device), **gpu_peak_memory(device), "work_seconds": _work_seconds(), **extra}


def gpu_peak_memory(device: Any) -> dict[str, float]:
    """On a CUDA device, the job's peak tensor memory there (MiB, ``torch.cuda.max_memory_allocated``; the CUDA
    context, about 0.5 GiB a process, comes on top): what the GPU check reads to size each rule's ``gpu_mem_mb``
    (:mod:`diffsteps.resources`). Nothing on the CPU, so CPU records keep their bytes."""
    if device is None or str(device).split(":")[0] != "cuda":
        return {}
    import torch

    return {"gpu_peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}


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
