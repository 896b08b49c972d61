"""Helpers of the tests that run the study DAG (test_workflow*.py): a throw-away git + DVC repository, the two
tools' views of what is left to do, and the one smoke run that those files share, built once per suite run even
under pytest-xdist (the first worker that asks builds it, under a file lock; another worker waits and reuses it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from filelock import FileLock

from .conftest import ROOT

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
ENV.pop("DIFFSTEPS_UNDER_DVC", None)
#: a user who has not activated the venv: its bin/ is not on PATH (the README's `make study` runs .venv/bin/snakemake)
BARE_ENV = {**ENV, "PATH": os.pathsep.join(p for p in ENV["PATH"].split(os.pathsep) if p and Path(p) != BIN)}
COPY = ("Snakefile", "workflow", "profiles", "dvc.yaml", "src", "pyproject.toml", ".dvc/config", ".dvc/plots",
        ".dvcignore", "Makefile")


def sh(repo: Path, *cmd: str, check: bool = True, timeout: int = 900, env: dict | None = None
       ) -> subprocess.CompletedProcess:
    res = subprocess.run(list(cmd), cwd=repo, env=env or ENV, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def make_repo(dest: Path, preset: str = "smoke") -> Path:
    """A git + DVC repository with the workflow files, the package sources (the code inputs of the
    rules) and the chosen preset as params.yaml."""
    for name in COPY:
        src, dst = ROOT / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    shutil.copy2(ROOT / "src/diffsteps/presets" / f"{preset}.yaml", dest / "params.yaml")
    from diffsteps.config import read_raw
    from diffsteps.workflow import dvc_yaml_text

    (dest / "dvc.yaml").write_text(dvc_yaml_text(read_raw(dest / "params.yaml")))  # the preset's runs' stage groups
    (dest / ".gitignore").write_text("/results/\n/reports/\n/.cache/\n/.snakemake/\n/logs/\n")
    sh(dest, "git", "init", "-q")
    sh(dest, "git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    sh(dest, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    return dest


def dry_run_jobs(repo: Path, *targets: str) -> dict[str, int]:
    """Rule → job count that `snakemake -n` would run (empty when nothing is to do)."""
    out = sh(repo, "snakemake", "-n", "--cores", "1", *targets).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def dvc_status(repo: Path) -> dict[str, list]:
    """`dvc status --json`: full name of each changed stage (e.g. sample-ddpm@...) → what changed in it."""
    return {name.split(":")[-1]: changes
            for name, changes in json.loads(sh(repo, "dvc", "status", "--json").stdout or "{}").items()}


def dvc_changed_stages(repo: Path) -> list[str]:
    """Full names of the stages that `dvc status` reports as changed (e.g. sample-ddpm@...)."""
    return list(dvc_status(repo))


def dvc_changed(repo: Path) -> set[str]:
    """The stage groups (matrix expansions collapsed) that `dvc status` reports as changed."""
    return {name.split("@")[0] for name in dvc_changed_stages(repo)}


def set_param(repo: Path, dotted: str, value) -> None:
    path = repo / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    node = raw
    *head, last = dotted.split(".")
    for part in head:
        node = node[part]
    node[last] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def shared_smoke(tmp_path_factory) -> Path:
    """The repository of one run of the whole smoke DAG, through the README's own command: `make study` with this
    interpreter's venv (its setup counted as done: ``-o``) and that venv's bin/ not on PATH.

    Under pytest-xdist every worker has its own session, so a session fixture alone would build it once per
    worker (about 4 min on 2 cores each). The build lives in the folder all workers share instead; a build that
    failed is not retried by the next worker, which fails with the first one's error."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    repo, done, failed = shared / "smoke-study" / "repo", shared / "smoke-study.done", shared / "smoke-study.failed"
    with FileLock(str(shared / "smoke-study.lock")):
        if failed.exists():
            raise AssertionError(f"the shared smoke study failed on another worker:\n{failed.read_text()}")
        if done.exists():
            return repo
        try:
            shutil.rmtree(repo.parent, ignore_errors=True)  # a build interrupted half-way never looks complete
            make_repo(repo)
            assert shutil.which("snakemake", path=BARE_ENV["PATH"]) is None
            assert shutil.which("dvc", path=BARE_ENV["PATH"]) is None
            res = sh(repo, "make", "-o", f"{BIN}/snakemake", "study", f"VENV={BIN.parent}", env=BARE_ENV)
            assert f"{BIN}/snakemake --cores all" in res.stdout, res.stdout  # exactly the Makefile's command line
        except BaseException as exc:
            failed.write_text(f"{type(exc).__name__}: {exc}")
            raise
        done.touch()
    return repo
