"""The study DAG's definition without running it: dvc.yaml and the rerun table generated from the stage table,
both tools listing the same outputs, bad params refused before any job, and the DVC sync's error. Kept apart
from test_workflow.py (which runs the smoke DAG) so that the two files run side by side under pytest-xdist."""

from __future__ import annotations

import json
import os
import time

import pytest

from diffsteps import cells
from diffsteps import workflow as plan
from diffsteps.config import to_plain
from diffsteps.dvclock import DVCSyncError, dvc_sync
from diffsteps.params import load_config

from .conftest import ROOT
from .workflow_repo import ENV, make_repo, set_param, sh


def test_dvc_sync_without_dvc_fails_saying_what_to_run(tmp_path, monkeypatch):
    """No DVC for the interpreter that runs Snakemake: the sync raises (Snakemake's onsuccess then exits 1)
    with the command that records the lock, instead of skipping silently."""
    import importlib.util

    (tmp_path / ".dvc").mkdir()
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "dvc" else find_spec(name, *a))
    monkeypatch.delenv("DIFFSTEPS_UNDER_DVC", raising=False)
    with pytest.raises(DVCSyncError, match=r"dvc.lock not updated: DVC is not installed .* -m dvc commit --force"):
        dvc_sync({"results/x"}, tmp_path)
    monkeypatch.setenv("DIFFSTEPS_UNDER_DVC", "1")  # DVC runs Snakemake: DVC records the stage itself
    assert dvc_sync({"results/x"}, tmp_path) == []


def test_rerun_table_in_the_architecture_notes_is_current():
    from diffsteps.reruns import with_rerun_table

    text = (ROOT / "docs/ARCHITECTURE.md").read_text()
    assert with_rerun_table(text) == text, "run: python -m diffsteps dvc-yaml"


def test_dvc_yaml_is_generated_from_the_stage_table():
    from diffsteps.config import read_raw

    assert (ROOT / "dvc.yaml").read_text() == plan.dvc_yaml_text(read_raw(ROOT / "params.yaml")), \
        "run: python -m diffsteps dvc-yaml"


def test_dvc_yaml_follows_the_runs_of_params(tmp_path):
    """dvc.yaml has one stage group per grid of each run: a Snakemake run rewrites it when the runs change (and
    says so); under DVC, which has read it already, a stale one stops the job with the command to run."""
    from diffsteps.config import read_raw

    repo = make_repo(tmp_path / "r", "smoke")
    before = (repo / "dvc.yaml").read_text()
    assert "sample-mixture:" in before and "train-ddgan:" in before
    set_param(repo, "methods", ["ddpm", "vdm"])
    res = sh(repo, "snakemake", "-n", "--cores", "1", env={**ENV, "DIFFSTEPS_UNDER_DVC": "1"}, check=False)
    assert res.returncode != 0 and "run `python -m diffsteps dvc-yaml`" in res.stdout + res.stderr
    assert (repo / "dvc.yaml").read_text() == before  # DVC's view is never changed under it
    res = sh(repo, "snakemake", "-n", "--cores", "1")
    assert "dvc.yaml rewritten for the runs of params.yaml" in res.stderr
    after = (repo / "dvc.yaml").read_text()
    assert after == plan.dvc_yaml_text(read_raw(repo / "params.yaml")) and "sample-mixture" not in after
    assert "results/probe/" not in after  # no probed run: the report depends on no probe folder (DVC needs it)
    assert "dvc.yaml rewritten" not in sh(repo, "snakemake", "-n", "--cores", "1").stderr  # once


@pytest.mark.parametrize("preset", ["smoke", "cpu"])
def test_dvc_and_snakemake_define_the_same_dag(tmp_path, preset):
    """Same outputs, and every DVC stage runs Snakemake for its own outputs."""
    repo = make_repo(tmp_path / "r", preset)
    cfg = to_plain(load_config(repo / "params.yaml"))
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        stages = list(dvc.index.stages)
        dvc_outs = {os.path.relpath(o.fs_path, repo) for s in stages for o in s.outs}
        for s in stages:
            first = os.path.relpath(s.outs[0].fs_path, repo)
            assert s.cmd.endswith(f"snakemake --cores all {first}"), s.cmd
    assert dvc_outs == set(cells.every_output(cfg))
    start = time.perf_counter()
    summary = sh(repo, "snakemake", "--summary", "--cores", "1").stdout.splitlines()[1:]
    assert time.perf_counter() - start < 60, "snakemake must list the DAG in seconds"
    snake_outs = {line.split("\t")[0] for line in summary if line.strip()}
    assert snake_outs == dvc_outs


@pytest.mark.parametrize("dotted,value,needle", [
    ("methods", ["ddpm", "nope"], "methods[1]"),
    ("sampling.budgets", [4, 5000], "sampling.budgets[1]"),
    ("train.images", -1, "train.images"),
])
def test_bad_params_stop_snakemake_before_any_job(tmp_path, dotted, value, needle):
    repo = make_repo(tmp_path / "r")
    set_param(repo, dotted, value)
    res = sh(repo, "snakemake", "-n", "--cores", "1", check=False)
    assert res.returncode != 0 and needle in res.stdout + res.stderr
    assert not (repo / "results").exists()


def test_typo_key_stops_snakemake(tmp_path):
    repo = make_repo(tmp_path / "r")
    text = (repo / "params.yaml").read_text().replace("  lr:", "  learning_rate:", 1)
    (repo / "params.yaml").write_text(text)
    res = sh(repo, "snakemake", "-n", "--cores", "1", check=False)
    assert res.returncode != 0 and "learning_rate" in res.stdout + res.stderr


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_every_job_declares_its_memory_runtime_and_gpu_slot(tmp_path, device):
    """Snakemake's jobs carry diffsteps.resources' figures for the study's sizes: every job its host memory and
    wall time (mem_mb, runtime: what SLURM is told), a GPU stage's job a slot and its memory (gpu=1, gpu_mem_mb)
    unless the study runs on the CPU; CPU-only stages never ask for a GPU."""
    import re

    from diffsteps import resources

    repo = make_repo(tmp_path / "r", "smoke")
    set_param(repo, "train.device", device)
    cfg = load_config(repo / "params.yaml")
    out = sh(repo, "snakemake", "-n", "--cores", "1").stdout
    declared: dict[str, set[tuple]] = {}
    keys = ("mem_mb", "runtime", "gpu", "gpu_mem_mb")
    for rule, block in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", out, re.M | re.S):
        line = re.search(r"resources: (.*)", block)
        found = dict(kv.split("=", 1) for kv in line.group(1).split(", ")) if line else {}
        declared.setdefault(rule, set()).add(tuple(found.get(k) for k in keys))
    assert set(plan.STAGE) <= set(declared), set(plan.STAGE) - set(declared)
    assert declared.pop("all") == {(None,) * len(keys)}  # the target rule runs nothing
    for rule, seen in declared.items():
        need = resources.job_resources(cfg, plan.STAGE[rule].needs)
        assert seen == {tuple(str(need[k]) if k in need else None for k in keys)}, rule
        assert ("gpu" in need) == (device != "cpu" and plan.STAGE[rule].needs.gpu), rule


def test_every_job_carries_its_bottom_level_as_its_priority(tmp_path):
    """Snakemake starts ready jobs by priority: each job's is its bottom level (diffsteps.schedule), and on the cpu
    preset the DDPM runs, which lead to the reference chain, outrank every other run's training."""
    import re

    import yaml

    from diffsteps.schedule import Priorities

    repo = make_repo(tmp_path / "r", "cpu")
    set_param(repo, "train.device", "cpu")
    cfg = yaml.safe_load((repo / "params.yaml").read_text())
    priorities = Priorities(load_config(repo / "params.yaml"), cfg)
    out = sh(repo, "snakemake", "-n", "--cores", "1").stdout
    seen = {}
    for rule, block in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", out, re.M | re.S):
        if rule == "all":
            continue
        wc = re.search(r"wildcards: (.*)", block)
        wildcards = dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {"dataset": cfg["data"]["dataset"]}
        level = priorities.level(rule, wildcards)
        printed = re.search(r"priority: (\S+)", block)
        assert float(printed.group(1) if printed else 0) == pytest.approx(level, rel=1e-9), (rule, wildcards)
        seen[rule, wildcards.get("model")] = level
    assert seen["train", "ddpm"] > max(seen["train", "mixture"], seen["train", "ddgm_skewed"], seen["train", "ddgan/T1"])


def test_the_workflow_profile_is_read_beside_the_slurm_profile(tmp_path):
    """profiles/default (keep-going, rerun-incomplete, the greedy scheduler) is where Snakemake reads a workflow
    profile, also when the SLURM profile is given (the cluster tests run that profile for real)."""
    repo = make_repo(tmp_path / "r", "smoke")
    plain = sh(repo, "snakemake", "-n", "--cores", "1")
    assert "Using workflow specific profile profiles/default" in plain.stdout + plain.stderr
    slurm = sh(repo, "snakemake", "-n", "--profile", "workflow/profiles/slurm")
    out = slurm.stdout + slurm.stderr
    assert "profiles workflow/profiles/slurm and workflow specific profile profiles/default" in out, out[-500:]


def test_forget_foreign_outputs_reads_a_directory_outputs_timestamp_file(tmp_path):
    """A directory output (a sampling job's folder) is judged by the timestamp file Snakemake writes into it, not by
    the folder's own time (that of its last new entry, a millisecond earlier): its metadata stays, so a params edit
    still reruns the job; a folder that DVC restored (another timestamp) loses it."""
    kept, restored = "results/samples/d/ddpm/heun-uniform", "results/samples/d/vdm/heun-uniform"
    for p, shift in ((kept, 0.0), (restored, 5.0)):
        folder = tmp_path / p
        (folder / "K4").mkdir(parents=True)
        (folder / ".snakemake_timestamp").touch()
        stamp = (folder / ".snakemake_timestamp").stat().st_mtime
        os.utime(folder, (stamp - 0.005, stamp - 0.005))
        record = plan._metadata_record(p, tmp_path)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"endtime": stamp - shift}))
    assert plan.forget_foreign_outputs([kept, restored], tmp_path) == [restored]
    assert plan._metadata_record(kept, tmp_path).exists() and not plan._metadata_record(restored, tmp_path).exists()
