"""Recording in dvc.lock what a Snakemake run built (:func:`dvc_sync`, the Snakefile's ``onsuccess``), so that
``dvc status`` agrees with Snakemake, in a time that does not grow with the lock file.

DVC writes a lock entry by parsing the whole dvc.lock with ruamel.yaml's round-trip loader, updating it and dumping
it again: on the default study's 311 KB lock (59 stages of about 40 code dependencies each) that is 4.3 s of a
7.0 s sync, for one stage. :func:`write_lock` writes the same bytes in a fraction of that: it dumps only the changed
entries, with DVC's own dumper, into the text of the others, and checks the result by parsing it with libyaml
(benchmarks/dvc_sync.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .io import atomic_write_text


def _stage_blocks(lines: list[str]) -> tuple[int, dict[str, tuple[int, int]]] | None:
    """Where each entry of ``stages:`` lies in a lock file's lines: (the line after the mapping,
    {name: (first, after)}), or None when the text is not laid out as DVC writes it (a top-level
    ``stages:`` whose entries are keys indented by two spaces)."""
    try:
        start = lines.index("stages:\n") + 1
    except ValueError:
        return None
    blocks: dict[str, tuple[int, int]] = {}
    name, first, end = None, start, len(lines)
    for i in range(start, len(lines)):
        line = lines[i]
        indent = len(line) - len(line.lstrip(" "))
        if line.strip() and indent < 2:  # the next top-level key ends the mapping
            end = i
            break
        if indent == 2 and line.rstrip().endswith(":"):
            if name is not None:
                blocks[name] = (first, i)
            name, first = line.strip()[:-1], i
    if name is not None:
        blocks[name] = (first, end)
    return end, blocks


def write_lock(path: Path, entries: dict[str, dict[str, Any]]) -> bool:
    """Set these stages' entries of the lock file at ``path`` (DVC's lock entries, ``stage.serialize.to_lockfile``)
    and return whether the file changed. Every other line stays as it was; each entry is dumped by DVC's dumper at
    its place in the file (so its line breaks fall where DVC's would), and the result must parse to the old content
    with these entries set, else the whole content is dumped by DVC's dumper, as DVC would write it."""
    import yaml
    from dvc.utils.serialize._yaml import dumps_yaml

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    old = yaml.load(text, Loader=yaml.CSafeLoader) if text else None
    data: dict[str, Any] = old if isinstance(old, dict) else {"schema": "2.0"}
    data = {**data, "stages": {**(data.get("stages") or {}), **entries}}
    if data == old:
        return False
    new = None
    lines = text.splitlines(keepends=True)
    found = _stage_blocks(lines) if text.endswith("\n") else None
    if found is not None:
        end, blocks = found
        added = []
        for name, entry in entries.items():
            dumped = dumps_yaml({"stages": {name: entry}}).splitlines(keepends=True)[1:]  # without "stages:"
            if name in blocks:
                first, after = blocks[name]
                lines[first:after] = ["".join(dumped)] + [""] * (after - first - 1)  # same length: the others stay put
            else:
                added.extend(dumped)
        lines[end:end] = added
        new = "".join(lines)
        if yaml.load(new, Loader=yaml.CSafeLoader) != data:
            new = None
    atomic_write_text(path, new if new is not None else dumps_yaml(data))
    return True


class DVCSyncError(RuntimeError):
    """Snakemake built outputs of a DVC project but their stages could not be recorded in dvc.lock."""


def dvc_sync(built: set[str], root: Path = Path(".")) -> list[str]:
    """After a successful Snakemake run, record in dvc.lock the DVC stages whose outputs this run built (``built``:
    the outputs of the jobs it ran), so that ``dvc status`` agrees with Snakemake. Other stages are left alone:
    committing an output Snakemake did not build could mark it current when DVC knows it is stale. Skipped when
    DVC itself runs Snakemake (it holds its lock and records the stage afterwards), when the run built nothing, or
    when the project has no DVC repository.

    The stages are committed in this process and dvc.lock is written once for all of them (:func:`write_lock`):
    DVC parses and rewrites the whole lock file (a round trip through ruamel.yaml) for each ``dvc commit`` target,
    so naming k stages to ``dvc commit`` costs k times that (dvc#10629; benchmarks/dvc_sync.py). DVC is imported
    from the interpreter that runs Snakemake, never found through PATH. When it cannot be imported there, or the
    commit fails, :class:`DVCSyncError` says what to run; the sync never skips silently.
    """
    import importlib.util
    import sys
    import time

    if os.environ.get("DIFFSTEPS_UNDER_DVC") or not built or not (root / ".dvc").is_dir():
        return []
    fix = (f"the outputs are built; to record them run `{sys.executable} -m dvc commit --force` in {root.resolve()} "
           "(else `dvc status` calls every stage changed)")
    if importlib.util.find_spec("dvc") is None:
        raise DVCSyncError(f"dvc.lock not updated: DVC is not installed for {sys.executable} (pip install "
                           f"'dvc>=3.50,<4', the 'workflow' extra); {fix}")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage.serialize import to_lockfile

    start = time.perf_counter()
    with Repo(str(root)) as repo:
        every = list(repo.index.stages)
        stages = [s for s in every if s.outs and all(os.path.relpath(o.fs_path, repo.root_dir) in built for o in s.outs)]
        if not stages:
            return []
        # committing moves each output into the cache and copies it back, giving it a new mtime; the content is
        # unchanged, so put Snakemake's timestamps back (else its mtime order breaks)
        times = {o.fs_path: os.stat(o.fs_path).st_mtime_ns for s in stages for o in s.outs}
        try:
            with repo.lock:
                for stage in stages:
                    stage.save()
                    stage.commit()
                for path in sorted({stage.dvcfile.path for stage in stages}):
                    group = [stage for stage in stages if stage.dvcfile.path == path]
                    lock = Path(os.path.splitext(path)[0] + ".lock")  # DVC's own name for a dvc.yaml's lock file
                    entries = {name: data for stage in group for name, data in to_lockfile(stage).items()}
                    if write_lock(lock, entries):
                        repo.scm_context.track_file(os.path.relpath(lock, repo.root_dir))
        except DvcException as exc:
            raise DVCSyncError(f"dvc.lock not updated: {type(exc).__name__}: {exc}; {fix}") from exc
    for p, ns in times.items():
        os.utime(p, ns=(ns, ns))
    print(f"dvc.lock: {len(stages)} of {len(every)} stages recorded in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    return [s.addressing for s in stages]
