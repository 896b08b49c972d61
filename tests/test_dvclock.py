"""dvc.lock written by the sync: the bytes DVC itself writes, one entry at a time."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffsteps.dvclock import write_lock

pytest.importorskip("dvc")


def _project(root: Path, n: int = 4) -> Path:
    """A git + DVC project of one foreach group of n stages (each with long dependency paths, so that DVC folds
    its ``cmd`` lines) and one plain stage."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "src").mkdir()
    for j in range(3):
        (root / "src" / f"module_with_a_long_name_{j}.py").write_text(f"X = {j}\n")
    deps = "".join(f"        - src/module_with_a_long_name_{j}.py\n" for j in range(3))
    items = "".join(f"      - {i}\n" for i in range(n))
    (root / "dvc.yaml").write_text(
        "stages:\n  cell:\n    foreach:\n" + items + "    do:\n"
        "      cmd: DIFFSTEPS_UNDER_DVC=1 snakemake --cores all results/a/very/long/output/path/${item}\n"
        f"      deps:\n{deps}      outs:\n        - out/${{item}}\n"
        "  report:\n    cmd: echo report\n    deps:\n      - out\n    outs:\n      - report.txt\n")
    for i in range(n):
        (root / "out" / str(i)).mkdir(parents=True)
        (root / "out" / str(i) / "a").write_text(f"{i}\n")
    (root / "report.txt").write_text("r\n")
    return root


def _commit(root: Path, names: set[str], ours: bool) -> None:
    """Commit the named stages and write their lock entries, with DVC's own writer or :func:`write_lock`."""
    from dvc.repo import Repo
    from dvc.stage.serialize import to_lockfile

    with contextlib.chdir(root), Repo(".") as repo, repo.lock:  # DVC resolves a stage's paths from the cwd
        stages = [s for s in repo.index.stages if s.name in names]
        assert {s.name for s in stages} == names
        for s in stages:
            s.save()
            s.commit()
        if ours:
            write_lock(root / "dvc.lock", {k: v for s in stages for k, v in to_lockfile(s).items()})
        else:
            stages[0].dvcfile.dump_stages(stages, update_pipeline=False)


def test_write_lock_writes_the_bytes_dvc_writes(tmp_path):
    base = _project(tmp_path / "base")
    _commit(base, {"cell@0", "cell@1"}, ours=False)  # a lock with two entries, written by DVC
    assert "\n      results/a/very/long/output/path/0\n" in (base / "dvc.lock").read_text()  # folded by DVC
    for root in (tmp_path / "dvc", tmp_path / "ours"):
        shutil.copytree(base, root)
        (root / "out" / "1" / "a").write_text("changed\n")  # an entry to replace
    # one entry replaced in the middle, two added (one of them another kind of stage)
    for root, ours in ((tmp_path / "dvc", False), (tmp_path / "ours", True)):
        _commit(root, {"cell@1", "cell@3", "report"}, ours=ours)
    assert (tmp_path / "ours" / "dvc.lock").read_bytes() == (tmp_path / "dvc" / "dvc.lock").read_bytes()
    from dvc.repo import Repo

    with contextlib.chdir(tmp_path / "ours"), Repo(".") as repo:  # DVC reads it back: those stages are current
        assert set(repo.status()) == {"cell@2"}  # the one stage never committed


def test_an_unchanged_entry_leaves_the_file_alone_and_an_unknown_layout_is_dumped_whole(tmp_path):
    root = _project(tmp_path / "p")
    _commit(root, {"cell@0"}, ours=False)
    lock = root / "dvc.lock"
    entry = yaml.safe_load(lock.read_text())["stages"]["cell@0"]
    before = lock.stat().st_mtime_ns
    assert write_lock(lock, {"cell@0": entry}) is False and lock.stat().st_mtime_ns == before
    # the same content in flow style (not how DVC lays it out): the whole file is dumped as DVC would dump it
    lock.write_text(yaml.safe_dump(yaml.safe_load(lock.read_text()), default_flow_style=True))
    new = {**entry, "cmd": "other"}
    assert write_lock(lock, {"cell@0": new, "cell@9": entry}) is True
    data = yaml.safe_load(lock.read_text())
    assert data["schema"] == "2.0" and data["stages"] == {"cell@0": new, "cell@9": entry}
    assert lock.read_text().startswith("schema: '2.0'\nstages:\n  cell@0:\n")
