"""Where a training cell keeps its resumable state, and who may write it.

One folder per training cell (data set, model, training seed), outside DVC's outputs (DVC deletes those before it
runs a stage)::

    .cache/resume/<dataset>/<model>/train<seed>/
        lock        held (``fcntl.flock``) by the one process that trains this cell, for its whole job; holds its PID
        <key>/      the state of one (params slice, training data, code) of the cell: checkpoint.pt, config.json

``key`` hashes everything that determines the trained weights: the params slice the cell reads, the run, its
seed (and T), the training split's content hash and the *code digest*, the sha256 of every package module the train
command has loaded when training starts (:func:`loaded_code_digest`: its imports, which the suite checks are within
what the workflow declares as the job's code; the launcher, which only dispatches and differs between a warm and a
cold start, is left out). So a killed job resumes only into the state its own code and params wrote, an
edit of any module in training's code closure starts from step 0, and a run that finished removes its state
(:meth:`ResumeState.finished`): a forced rerun (``snakemake -f``, ``dvc repro -f``) retrains.

The lock is the kernel's: a process that dies for any reason (SIGKILL included) releases it, so a lock left behind
never blocks; a second process for the same cell fails at once with :class:`ResumeLocked`, naming the PID that holds
it, before it has written anything.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

RESUME_ROOT = Path(".cache/resume")
LOCK_NAME = "lock"
#: the modules that start a command (a warm worker imports cli alone, a cold start __main__ and warm too): they only
#: dispatch it, so the digest leaves them out and a run killed warm resumes cold
LAUNCHER = ("cli", "warm", "__main__")

log = logging.getLogger(__name__)


class ResumeLocked(BlockingIOError):
    """Another live process trains the same cell: its PID is in the message (the CLI exits with EX_TEMPFAIL)."""


def loaded_code_digest(package: str = __name__.split(".")[0]) -> str:
    """sha256 over the package-relative path and the bytes on disk of every module of ``package`` loaded in this
    process but the :data:`LAUNCHER`: the code that runs. (A warm worker imports the package fresh from disk, so
    this is the code on disk.)"""
    root = Path(sys.modules[package].__file__).parent
    launcher = {f"{package}.{m}" for m in LAUNCHER}
    files = sorted(Path(m.__file__) for name, m in list(sys.modules.items())
                   if (name == package or name.startswith(package + ".")) and name not in launcher
                   and getattr(m, "__file__", None))
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class ResumeState:
    """The resumable state of one training cell: ``cell`` is its folder under :data:`RESUME_ROOT` (data set, model,
    seed), ``key`` the hash of what determines its weights (params, data, code)."""

    def __init__(self, cell: Path, key: str, root: Path = RESUME_ROOT):
        self.cell = root / cell
        self.key = key

    @property
    def dir(self) -> Path:
        """The folder of this key's checkpoint (created by the training loop)."""
        return self.cell / self.key

    @contextlib.contextmanager
    def hold(self) -> Iterator["ResumeState"]:
        """Take the cell's lock for the block (raise :class:`ResumeLocked` at once when a live process holds it),
        and drop the states other keys of this cell left behind (older code or params: they can never resume)."""
        self.cell.mkdir(parents=True, exist_ok=True)
        path = self.cell / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise ResumeLocked(errno.EWOULDBLOCK, f"{self.cell} is being trained by process {holder} (it holds "
                                   f"{path}); wait for it to end, or stop it, then run this again") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            for other in self.cell.iterdir():
                if other.is_dir() and other.name != self.key:
                    log.info("dropping the resume state %s (written by other code or params)", other)
                    shutil.rmtree(other, ignore_errors=True)
            yield self
        finally:
            os.close(fd)  # releases the lock

    def finished(self) -> None:
        """The run's outputs are written: its state is of no further use (a rerun retrains from step 0)."""
        shutil.rmtree(self.dir, ignore_errors=True)
