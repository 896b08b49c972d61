"""Which ready job starts first: each job's Snakemake ``priority`` is the estimated seconds of compute on the
longest path from its start to the end of the study (its *bottom level*), so that ready jobs start longest path
first (list scheduling by bottom level).

Without it, Snakemake starts ready jobs in no useful order. On the default study (2 cores) the DDPM runs, whose
1000-step reference chain is the study's longest job, trained last: the chain then ran alone for 7.6 of the study's
33 minutes with the other core idle, and the 11-second domain classifier that every scoring job waits for ran only
after it.

A job's compute is its stage's :class:`~.resources.Needs` estimate (:meth:`~.resources.Needs.seconds`: per job where
the stage's jobs differ in size, the stage's largest job otherwise); which jobs follow which comes from the stage
table (a stage reads what another writes: :func:`feeds`) and the jobs' cells (a training run's sampling jobs are
those whose cells read its model). The figures only order jobs: a wrong estimate costs wall time, never a result.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from . import cells
from .config import StudyConfig
from .workflow import STAGE, STAGES, Stage


def feeds(upstream: Stage, downstream: Stage) -> bool:
    """Whether ``downstream`` reads a path that ``upstream`` writes (the report, which reads whole folders, is
    every job's last and changes no job's order)."""
    return not set(upstream.outputs.values()).isdisjoint(downstream.inputs.values())


def cuda_visible() -> bool:
    """Whether this machine shows an NVIDIA device to its processes, without importing torch (the Snakemake process
    never does): a heuristic, enough to order jobs."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1")
    return not hidden and os.path.exists("/dev/nvidiactl")


class Priorities:
    """The bottom level of every job of a study (seconds), computed on first use and kept for the Snakemake run."""

    def __init__(self, study: StudyConfig, cfg: Mapping[str, Any]):
        if study.train.device == "auto" and not cuda_visible():
            # the jobs of an "auto" study run on the CPU here: order them by CPU rates, where Inception costs a
            # thousand UNet forwards of the cpu preset instead of a few
            study = dataclasses.replace(study, train=dataclasses.replace(study.train, device="cpu"))
        self.study, self.cfg = study, cfg
        self._jobs: dict[str, list[tuple[tuple[str, ...], dict[str, Any], list[dict[str, Any]]]]] = {}
        self._level: dict[tuple[str, tuple[str, ...]], float] = {}

    def _key(self, stage: str, wildcards: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(str(wildcards[n]) for n in cells.job_wildcards(stage))

    def jobs(self, stage: str) -> list[tuple[tuple[str, ...], dict[str, Any], list[dict[str, Any]]]]:
        if stage not in self._jobs:
            self._jobs[stage] = [(self._key(stage, wc), wc, found) for wc, found in cells.iter_jobs(self.cfg, stage)]
        return self._jobs[stage]

    def level(self, stage: str, wildcards: Mapping[str, Any]) -> float:
        """Seconds of compute from the start of this job to the end of the longest chain of jobs that need it."""
        key = self._key(stage, wildcards)
        if (stage, key) in self._level:
            return self._level[stage, key]
        named = dict(zip(cells.job_wildcards(stage), key))
        found = next((c for k, _, c in self.jobs(stage) if k == key), [dict(named)])
        after = 0.0
        for down in STAGES:
            if not feeds(STAGE[stage], down):
                continue
            for _, wc, down_cells in self.jobs(down.name):
                # a job needs this one when one of its cells agrees with it on every wildcard that names it
                if any(all(str(c.get(n, v)) == v for n, v in named.items()) for c in down_cells):
                    after = max(after, self.level(down.name, wc))
        self._level[stage, key] = level = STAGE[stage].needs.seconds(self.study, found) + after
        return level

    def of(self, stage: str):
        """Snakemake's ``priority:`` of a rule: a function of the job's wildcards (seconds)."""
        return lambda wildcards: self.level(stage, dict(wildcards.items()))
