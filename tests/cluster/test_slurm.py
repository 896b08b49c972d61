"""The SLURM profile (workflow/profiles/slurm) run for real, on the single-node cluster of slurm-up.sh.

A sub-DAG of the smoke preset holds every rule kind (data, the domain classifier, the Inception weights and both
reference statistics, train, sample, evaluate, solver error, bound, floor, report), with ``train.device: auto`` so
that the GPU stages ask for the fake GPU. It runs through ``snakemake --profile workflow/profiles/slurm`` and,
beside it, locally; every job must have gone through SLURM, to the partition and with the resources that
diffsteps.resources gives, and the results must be the local run's: samples byte-equal, metrics to rtol 1e-6.
A pre-empted training job (``scancel`` after its first checkpoint) resumes from its checkpoint on the rerun and
ends with the weights of an uninterrupted run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from diffsteps import resources
from diffsteps.workflow import STAGE
from diffsteps.io import sha256_file
from diffsteps.params import load_config

from ..workflow_repo import BARE_ENV, BIN, dry_run_jobs, make_repo, set_param, sh

pytestmark = pytest.mark.slow

#: the sub-DAG: one Gaussian run, one sampler and seed, its reference chain, its bound; GPU stages on the fake GPU
SUB_DAG = {"methods": ["ddpm"], "sampling.seeds": [0], "sampling.samplers": ["ddim-eta0"],
           "sampling.reference.seeds": [0], "evaluation.nll.methods": ["ddpm"], "train.device": "auto"}
#: the README's command (workflow/profiles/slurm), with the first status check after 1 s instead of 40 (short jobs)
SLURM = (f"{BIN}/snakemake", "--profile", "workflow/profiles/slurm", "--slurm-init-seconds-before-status-checks", "1")
#: a hard limit on every Snakemake run here: the plugin can poll forever when SLURM stops answering
LIMIT = 900


def require_cluster() -> None:
    """Skip without a SLURM cluster (or without the plugin); under CI the cluster is part of the job: fail."""
    reason = None
    if shutil.which("sinfo") is None:
        reason = "no SLURM client (sinfo) on this machine"
    else:
        res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
        if res.returncode != 0 or not re.search(r"^(idle|mixed|allocated)", res.stdout, re.M):
            reason = f"no SLURM node is up (sinfo: {(res.stdout + res.stderr).strip() or 'nothing'})"
    if reason is None and not (BIN / "snakemake").exists():
        reason = f"no snakemake at {BIN}"
    if reason is None:
        import importlib.util

        if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
            reason = "the SLURM executor plugin is not installed (pip install -e '.[slurm]')"
    if reason is None:
        return
    reason += "; bring a single-node cluster up with `sudo tests/cluster/slurm-up.sh`"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the cluster tests must run: {reason}")
    pytest.skip(reason)


def sub_dag_repo(dest: Path, **extra) -> Path:
    repo = make_repo(dest)
    for key, value in {**SUB_DAG, **extra}.items():
        set_param(repo, key, value)
    return repo


def slurm_job_ids(log: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", log)


def scontrol(job_id: str) -> dict[str, str]:
    """SLURM's record of a job (kept MinJobAge = 600 s after it ends: slurm-up.sh)."""
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True,
                         check=True).stdout
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", out))


def results_of(repo: Path) -> tuple[dict[str, str], pd.Series]:
    samples = {str(p.relative_to(repo)): sha256_file(p) for p in sorted((repo / "results/samples").rglob("*.npz"))}
    df = pd.read_csv(repo / "reports/results.csv")
    df = df[~df.metric.str.contains("seconds|memory")]  # what the machine measured of a job, not a result
    keys = ["method", "sampler", "spacing", "variance", "nfe", "train_seed", "seed", "metric", "feature_extractor", "n"]
    return samples, df.set_index(keys)["value"].sort_index()


def test_the_profile_sends_every_job_through_slurm_and_matches_a_local_run(tmp_path):
    require_cluster()
    cluster, local = sub_dag_repo(tmp_path / "cluster"), sub_dag_repo(tmp_path / "local")
    planned = dry_run_jobs(cluster)
    planned.pop("all")
    started = time.monotonic()
    # both at once: SLURM's node and the local run share this machine's cores
    warm = {**BARE_ENV, "DIFFSTEPS_WARM": "1"}  # opted in: still cold inside SLURM jobs
    here = subprocess.Popen([f"{BIN}/snakemake", "--cores", "2"], cwd=local, env=warm, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    run = sh(cluster, *SLURM, env=warm, timeout=LIMIT)
    out, _ = here.communicate(timeout=LIMIT)
    assert here.returncode == 0, out[-3000:]
    seconds = time.monotonic() - started
    log = run.stdout + run.stderr

    ids = slurm_job_ids(log)
    assert len(ids) == sum(planned.values()), (planned, ids)  # every job of the DAG, none run locally
    cfg = load_config(cluster / "params.yaml")
    seen: dict[str, int] = {}
    for job_id in ids:
        job = scontrol(job_id)
        rule = re.search(r"/rule_(\w+)/", job["StdOut"]).group(1)
        seen[rule] = seen.get(rule, 0) + 1
        need = resources.job_resources(cfg, STAGE[rule].needs)
        gpu = resources.on_gpu(cfg, STAGE[rule].needs)
        assert job["JobState"] == "COMPLETED" and Path(job["WorkDir"]) == cluster, (rule, job)
        assert job["Partition"] == ("gpu" if gpu else "cpu"), (rule, job["Partition"])  # partitions.yaml
        assert ("gres:gpu:1" in job.get("TresPerJob", "")) == gpu, (rule, job.get("TresPerJob"))  # gpu=1 → --gpus=1
        assert f"mem={need['mem_mb']}M" in job["TRES"], (rule, job["TRES"], need)
        hours, minutes = divmod(need["runtime"], 60)
        assert job["TimeLimit"] == f"{hours:02d}:{minutes:02d}:00", (rule, job["TimeLimit"], need)  # under a day
        assert int(job["NumCPUs"]) == STAGE[rule].needs.threads(cfg), (rule, job["NumCPUs"])
    assert seen == planned
    # every job ran cold in its own allocation (diffsteps.warm stays off under SLURM): no warm server forked work
    # for the cluster's repository, while the local run beside it went through one
    forked = "".join(p.read_text() for p in Path(tempfile.gettempdir()).glob(f"diffsteps-warm-{os.getuid()}/*.log"))
    assert f" in {cluster}:" not in forked and f" in {local}:" in forked
    # so Snakemake's benchmark files hold each job's own peak RSS (MiB) and wall time: within what it asked for
    for tsv in sorted((cluster / "results/benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(cluster / "results/benchmarks").parts[0]
        used, need = pd.read_csv(tsv, sep="\t").iloc[0], resources.job_resources(cfg, STAGE[rule].needs)
        assert 100 < used["max_rss"] <= need["mem_mb"] and used["s"] <= 60 * need["runtime"], (tsv, dict(used), need)
    assert any(resources.on_gpu(cfg, STAGE[rule].needs) for rule in seen) and not all(resources.on_gpu(cfg, STAGE[r].needs) for r in seen)

    samples, metrics = results_of(cluster)
    local_samples, local_metrics = results_of(local)
    assert samples == local_samples and len(samples) == planned["sample"]  # byte-equal
    assert len(metrics) > 20
    pd.testing.assert_series_equal(metrics, local_metrics, rtol=1e-6)
    assert dry_run_jobs(cluster) == {}  # nothing left to do after the cluster run
    print(f"\n{len(ids)} SLURM jobs ({seen}) in {seconds:.0f} s, beside the local run")


def test_a_preempted_training_job_resumes_from_its_checkpoint(tmp_path):
    """scancel the SLURM training job after its first checkpoint: Snakemake retries it (the profile's retries), the
    retry resumes there (its log says so), and the run ends with the weights of a run that was never interrupted."""
    require_cluster()
    longer = {"train.images": 32 * 600, "train.checkpoint_every": 100, "train.log_every": 100}
    cluster, local = sub_dag_repo(tmp_path / "cluster", **longer), sub_dag_repo(tmp_path / "local", **longer)
    model = "results/models/digits/ddpm/train0/model.pt"
    train_log = cluster / "logs/train/digits/ddpm/train0.log"
    here = subprocess.Popen([f"{BIN}/snakemake", "--cores", "1", model], cwd=local, env=BARE_ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = subprocess.Popen([*SLURM, model], cwd=cluster, env=BARE_ENV, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not list((cluster / ".cache/resume").rglob("checkpoint.pt")):
            assert first.poll() is None, "the SLURM run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
        queued = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True, check=True).stdout
        ids = [line.split()[0] for line in queued.splitlines() if Path(line.split()[1]) == cluster]
        assert len(ids) == 1, queued  # the training job alone
        subprocess.run(["scancel", ids[0]], check=True)
        out, _ = first.communicate(timeout=LIMIT)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0 and (cluster / model).exists(), out[-3000:]
    assert scontrol(ids[0])["JobState"] == "CANCELLED"
    submitted = slurm_job_ids(out)  # the data job, the cancelled training job, then its retry
    assert ids[0] in submitted and submitted.index(ids[0]) == len(submitted) - 2, (submitted, out[-3000:])
    # the retry's log (the cancelled job's was rewritten): it picked up at a checkpoint, every 100 steps
    resumed = re.search(r"resumed from its checkpoint at step (\d+)/600", train_log.read_text())
    assert resumed and 100 <= int(resumed.group(1)) < 600 and int(resumed.group(1)) % 100 == 0, \
        train_log.read_text()[-3000:]

    out, _ = here.communicate(timeout=LIMIT)
    assert here.returncode == 0, out[-3000:]
    ours, theirs = (torch.load(r / model, map_location="cpu", weights_only=False) for r in (cluster, local))
    weights = [k for k, v in ours.items() if isinstance(v, dict) and v and all(torch.is_tensor(t) for t in v.values())]
    assert weights, list(ours)
    for key in weights:
        assert ours[key].keys() == theirs[key].keys()
        for name, tensor in ours[key].items():
            assert torch.equal(tensor, theirs[key][name]), (key, name)


@pytest.mark.parametrize("ci", ["", "1"])
def test_without_a_cluster_the_tests_skip_saying_why_and_fail_under_ci(monkeypatch, ci):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)  # no SLURM client on this machine
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match=r"no SLURM client \(sinfo\).*slurm-up\.sh"):
        require_cluster()
