"""The warm start-up of ``python -m diffsteps``: a command run in a fork of the server writes the same bytes as one
run cold, keeps its exit status and stderr, and dies with its client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from diffsteps import warm


def _env(tmp: Path, **extra) -> dict[str, str]:
    # a temp dir of the test's own: its own server, gone 30 s after the test
    return {**os.environ, "TMPDIR": str(tmp / "tmp"), "DIFFSTEPS_WARM_IDLE": "30", **extra}


def _run(cwd: Path, *args, warm_on: bool | None = True, check: bool = True, **env_extra) -> subprocess.CompletedProcess:
    """``warm_on``: DIFFSTEPS_WARM=1, =0, or (None) unset."""
    env = _env(cwd, **env_extra)
    env.pop("DIFFSTEPS_WARM", None)
    if warm_on is not None:
        env["DIFFSTEPS_WARM"] = "1" if warm_on else "0"
    res = subprocess.run([sys.executable, "-m", "diffsteps", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                         text=True)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def _server_log(cwd: Path) -> str:
    logs = list((cwd / "tmp").glob("diffsteps-warm-*/*.log"))
    return "".join(p.read_text() for p in logs)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The smoke preset's data and one trained DDPM (40 steps), made through the warm path."""
    cwd = tmp_path_factory.mktemp("warm")
    (cwd / "tmp").mkdir()
    _run(cwd, "preset", "smoke")
    _run(cwd, "prepare-data", "--out-dir", "data")
    _run(cwd, "train", "--method", "ddpm", "--train-seed", 0, "--threads", 1, "--data-dir", "data", "--out-dir", "model",
         "--no-progress")
    return cwd


def test_a_warm_job_is_forked_by_the_server(study):
    log = _server_log(study)
    assert ": prepare-data --out-dir data" in log and ": train --method ddpm" in log, log


@pytest.mark.parametrize("sampler", ["ddim-eta0", "ancestral-betatilde"])
def test_warm_and_cold_samples_are_identical(study, sampler):
    arrays = {}
    for mode in (True, False):
        out = study / f"samples-{sampler}-{mode}"
        _run(study, "sample", "--method", "ddpm", "--sampler", sampler, "--spacing", "uniform",
             "--cell", 4, 0, 3, "model", out, "--threads", 1, warm_on=mode)
        arrays[mode] = np.load(out / "samples.npz")["images"]
    assert arrays[True].size and np.array_equal(arrays[True], arrays[False])


def test_exit_status_and_stderr_are_the_commands(study):
    warm_res = _run(study, "validate", "--params", "missing.yaml", check=False)
    cold_res = _run(study, "validate", "--params", "missing.yaml", warm_on=False, check=False)
    assert warm_res.returncode == cold_res.returncode == 2
    assert warm_res.stderr == cold_res.stderr and "missing.yaml" in warm_res.stderr
    assert ": validate --params missing.yaml" in _server_log(study)


def test_disabled_runs_in_the_client(study):
    before = _server_log(study)
    _run(study, "validate", warm_on=False)
    assert _server_log(study) == before


def test_the_warm_start_is_opt_in(study):
    """Unset, DIFFSTEPS_WARM runs the command cold: in the process that Snakemake's benchmark: file measures."""
    before = _server_log(study)
    _run(study, "validate", warm_on=None)
    assert _server_log(study) == before


def test_a_slurm_job_runs_in_its_own_allocation_not_in_a_server(study):
    """A fork of a server would run outside the SLURM job's memory, CPUs and cgroup: inside a job, run cold."""
    before = _server_log(study)
    _run(study, "validate", SLURM_JOB_ID="4242")
    assert _server_log(study) == before
    _run(study, "validate")
    assert _server_log(study) != before and f" in {study}: validate" in _server_log(study)


def test_a_killed_client_takes_its_job_with_it(study):
    params = (study / "params.yaml").read_text().replace("images: ", "images: 1000", 1)  # a long run
    (study / "long.yaml").write_text(params)
    log = study / "long.log"
    with open(log, "w") as fh:
        client = subprocess.Popen([sys.executable, "-m", "diffsteps", "train", "--params", "long.yaml", "--method", "ddpm",
                                   "--train-seed", "1", "--threads", "1", "--data-dir", "data", "--out-dir", "long",
                                   "--no-progress"], cwd=study, env=_env(study, DIFFSTEPS_WARM="1"), stdout=fh,
                                  stderr=fh)
    try:
        deadline = time.monotonic() + 120
        while "checkpoint saved" not in log.read_text():
            assert time.monotonic() < deadline and client.poll() is None, log.read_text()
            time.sleep(0.2)
        line = next(l for l in _server_log(study).splitlines() if "--params long.yaml" in l)
        child = int(line.split(" pid ")[1].split()[0])
    finally:
        os.kill(client.pid, signal.SIGKILL)  # also when the test fails: no training left running behind it
        client.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the warm job outlived its client"
        time.sleep(0.1)
    assert not (study / "long/model.pt").exists()


def test_the_server_is_keyed_by_what_the_libraries_read_at_load(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    plain = warm.socket_path()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert warm.socket_path() != plain
    monkeypatch.setenv("DIFFSTEPS_UNRELATED", "x")  # read after the fork: the same server
    one = warm.socket_path()
    monkeypatch.setenv("DIFFSTEPS_UNRELATED", "y")
    assert warm.socket_path() == one
