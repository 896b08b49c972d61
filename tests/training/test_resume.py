"""A training cell's resumable state (training/resume.py): one writer per cell, held by an OS lock that a dead
process never keeps; a finished run leaves no state behind; the state of other code or params is dropped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from diffsteps.training.resume import LOCK_NAME, ResumeLocked, ResumeState

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "src/diffsteps/presets/smoke.yaml"

COLD = {**os.environ, "DIFFSTEPS_WARM": "0"}  # the PID that holds the lock is then the process we started


def _params(tmp: Path, steps: int) -> None:
    raw = yaml.safe_load(SMOKE.read_text())
    raw["train"].update(images=32 * steps, batch_size=32, checkpoint_every=10, log_every=10)
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw))


def _train(tmp: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "diffsteps", "train", "--params", "params.yaml", "--method", "ddpm",
                             "--train-seed", "0", "--data-dir", "results/data/digits", "--out-dir",
                             "results/models/digits/ddpm/train0", "--no-progress"], cwd=tmp, env=COLD,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(predicate, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def _holder(lock: Path) -> str:
    return lock.read_text().strip() if lock.exists() else ""


@pytest.fixture
def repo(tmp_path):
    _params(tmp_path, steps=300)
    res = subprocess.run([sys.executable, "-m", "diffsteps", "prepare-data", "--params", "params.yaml", "--out-dir",
                          "results/data/digits"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return tmp_path


def test_two_trainings_of_one_run_never_share_the_resume_lock(repo):
    """Two real train processes of one cell: the second fails at once, naming the first's PID and writing nothing.
    The first, killed with SIGKILL, leaves a lock that blocks nobody: the next run resumes from its checkpoint,
    finishes and removes the cell's state."""
    cell = repo / ".cache/resume/digits/ddpm/train0"
    out = repo / "results/models/digits/ddpm/train0"
    first = _train(repo)
    _wait_for(lambda: _holder(cell / LOCK_NAME) == str(first.pid) and any(cell.glob("*/checkpoint.pt")),
              "lock and first checkpoint of the first process")
    start = time.monotonic()
    second = _train(repo)
    _, err = second.communicate(timeout=120)
    assert first.poll() is None, "the first run ended before the second tried: raise the step count"
    assert second.returncode == 75, err
    assert f"being trained by process {first.pid}" in err and "Traceback" not in err, err
    assert time.monotonic() - start < 60 and not (out / "model.pt").exists() and not (out / "train.json").exists()

    os.kill(first.pid, signal.SIGKILL)  # the kernel releases its lock; the file still names it
    first.communicate()
    assert _holder(cell / LOCK_NAME) == str(first.pid) and any(cell.glob("*/checkpoint.pt"))
    _, err = (after := _train(repo)).communicate(timeout=300)
    assert after.returncode == 0 and (out / "model.pt").exists(), err
    assert "resumed from its checkpoint at step" in err
    assert [p.name for p in cell.iterdir()] == [LOCK_NAME]  # finished: no state left to resume into


def test_a_second_holder_in_process_is_refused_and_other_keys_are_dropped(tmp_path):
    old = ResumeState(Path("digits/ddpm/train0"), "old", root=tmp_path)
    (old.dir).mkdir(parents=True)
    (old.dir / "checkpoint.pt").write_bytes(b"x")
    state = ResumeState(Path("digits/ddpm/train0"), "new", root=tmp_path)
    with state.hold():
        assert not old.dir.exists()  # another key's state can never resume: dropped under the lock
        state.dir.mkdir()
        with pytest.raises(ResumeLocked, match=f"being trained by process {os.getpid()}"):
            with ResumeState(Path("digits/ddpm/train0"), "new", root=tmp_path).hold():
                pass
        assert state.dir.exists()  # the refused holder dropped nothing
        state.finished()
        assert not state.dir.exists()
    with state.hold():  # released when the block ends
        pass


def test_the_code_digest_changes_with_any_loaded_module(tmp_path):
    """The digest reads the bytes of every loaded package module: a copy of the package with one edit differs."""
    import shutil

    shutil.copytree(ROOT / "src/diffsteps", tmp_path / "diffsteps", ignore=shutil.ignore_patterns("__pycache__"))
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import diffsteps.objectives; "
             "from diffsteps.training.resume import loaded_code_digest as d; print(d())")
    digest = lambda: subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True,
                                    check=True).stdout.strip()
    before = digest()
    assert before == digest() and len(before) == 64
    # the launcher only dispatches (a warm worker imports cli alone, a cold start warm and __main__ too): left out
    launched = probe.replace("import diffsteps.objectives;", "import diffsteps.objectives, diffsteps.cli, diffsteps.warm;")
    assert subprocess.run([sys.executable, "-c", launched, str(tmp_path)], capture_output=True, text=True,
                          check=True).stdout.strip() == before
    path = tmp_path / "diffsteps/objectives.py"
    path.write_text(path.read_text() + "\n# an edit\n")
    assert digest() != before


def test_the_resume_key_holds_the_training_config_its_checkpoint_is_checked_against():
    """State of another log interval (the checkpoint's log would not fit) is under another key, so a run with a new
    one starts from step 0 instead of refusing the old checkpoint; threads, devices and checkpoint intervals change
    no weight and keep the key."""
    import argparse
    import dataclasses

    import torch

    from diffsteps.config import read_config
    from diffsteps.families import with_runs
    from diffsteps.stages.train import SECTIONS, resume_state

    cfg = with_runs(read_config(SMOKE, SECTIONS), SMOKE, ["ddpm"])
    args = argparse.Namespace(method="ddpm", T=None, train_seed=0, keys=["model", "train.images"])

    def key(on="cpu", **train):
        return resume_state(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train)), args, "sha",
                            torch.device(on)).key

    assert key() == key(threads=4, device="cuda", checkpoint_every=7, seeds=(3,))
    assert key() != key(log_every=cfg.train.log_every + 1) and key() != key(lr=0.5)
    # the device a run trains on draws its own random streams: a CPU checkpoint is never resumed on a GPU
    assert key() != key(on="cuda")
