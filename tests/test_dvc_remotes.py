"""Sharing the study's results through a DVC remote, the way the README tells a user to: commit the lock file, push
the outputs and the run-cache, clone the git repository elsewhere, pull, and find both tools with nothing to do.

Two remotes: a local directory, and an S3 bucket served on 127.0.0.1 by moto (no network, dummy credentials).

After `dvc pull` into a fresh clone every output is byte-for-byte the original, and `dvc status` is clean, but the
files carry the times of the pull, in whatever order DVC wrote them, and there is no .snakemake/metadata: Snakemake
sees outputs older than their inputs and would rerun a random part of the DAG (40 of the smoke study's 80 jobs in
one run). Once `dvc status` is clean (every output and every dependency, code and params included, as dvc.lock
records them), `snakemake --touch --forceall` stamps every output in DAG order and records each job's metadata, so
that the clone's Snakemake also reacts to a later params edit exactly as the original's does (plain `--touch` would
only cover the jobs it happened to find out of date, and leave the others without params/code records)."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from .workflow_repo import ENV, dry_run_jobs, dvc_changed, set_param, sh

GIT = ("git", "-c", "user.email=t@t", "-c", "user.name=t")


@dataclass
class Store:
    """One DVC remote: its url, the `dvc remote modify` options it needs, the environment its commands run with
    and what it holds under runs/ (the run-cache), as paths relative to runs/."""

    url: str
    options: dict[str, str]
    env: dict[str, str]
    runs: Callable[[], set[str]]


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _local(tmp_path: Path) -> Store:
    url = tmp_path / "dvc-store"
    return Store(str(url), {}, ENV, lambda: _files_under(url / "runs"))


@pytest.fixture
def moto_s3(tmp_path):
    """An S3 endpoint on 127.0.0.1 (a port the OS picks), stopped at teardown; yields its url."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _s3(tmp_path: Path, endpoint: str) -> Store:
    import boto3

    bucket, prefix = "diffsteps-results", "smoke"
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    # dummy credentials only: nothing of the machine's AWS setup (profiles, CA bundle, endpoint overrides) leaks in,
    # and no proxy stands between DVC and 127.0.0.1
    env = {k: v for k, v in ENV.items() if not k.startswith("AWS_")} | creds
    env |= {"AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    client.create_bucket(Bucket=bucket)

    def runs() -> set[str]:
        keys = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/runs/"):
            keys.update(obj["Key"].removeprefix(f"{prefix}/runs/") for obj in page.get("Contents", []))
        return keys

    return Store(f"s3://{bucket}/{prefix}", {"endpointurl": endpoint}, env, runs)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, monkeypatch) -> Store:
    if request.param == "local":
        return _local(tmp_path)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # this process's boto3 client, too
    return _s3(tmp_path, request.getfixturevalue("moto_s3"))


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _content(path: Path) -> dict[str, str]:
    """md5 of a file, or of every file in a folder (a sampling or scoring job's), by path relative to it."""
    if path.is_file():
        return {"": _md5(path)}
    return {str(f.relative_to(path)): _md5(f) for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.mark.slow
def test_results_round_trip_through_a_remote_and_both_tools_have_nothing_to_do(smoke, tmp_path, store):
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)

    # --- push side: after `make study`, commit what DVC wrote beside the code, add the remote, push
    sh(repo, "git", "add", "dvc.lock", ".dvc/.gitignore")
    sh(repo, *GIT, "commit", "-qm", "results of make study")
    sh(repo, "dvc", "remote", "add", "-d", "store", store.url)
    for key, value in store.options.items():
        sh(repo, "dvc", "remote", "modify", "store", key, value)
    sh(repo, "git", "add", ".dvc/config")
    sh(repo, *GIT, "commit", "-qm", "a DVC remote for the results")
    assert sh(repo, "git", "status", "--porcelain").stdout == ""  # nothing else for a user to commit
    sh(repo, "dvc", "push", "--run-cache", env=store.env)

    # the run-cache reached the remote: one record per stage of dvc.lock, the same records as the local cache's
    runs = _files_under(repo / ".dvc/cache/runs")
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert len(runs) == len(lock["stages"]) and store.runs() == runs

    # --- pull side: a fresh clone holds code, params and dvc.lock only
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not any((clone / p).exists() for p in ("results", "reports", ".dvc/cache", ".snakemake"))
    # dvc.lock names every output's hash: a plain pull restores them all (the run-cache is for `dvc repro`)
    sh(clone, "dvc", "pull", env=store.env)
    outs = [o for stage in yaml.safe_load((clone / "dvc.lock").read_text())["stages"].values() for o in stage["outs"]]
    assert outs and len(outs) == len({o["path"] for o in outs})
    for out in outs:
        restored = _content(clone / out["path"])
        assert restored and restored == _content(repo / out["path"]), out["path"]
        # a file's hash is its md5; a folder's is DVC's hash of its listing (".dir")
        assert out["md5"] == restored[""] if "" in restored else out["md5"].endswith(".dir"), out["path"]

    # every output and dependency as dvc.lock records them (exit 0): then stamp them in DAG order for Snakemake
    sh(clone, "dvc", "status", "--quiet")
    sh(clone, "snakemake", "--touch", "--forceall", "--cores", "1")
    assert dvc_changed(clone) == set()
    assert dry_run_jobs(clone) == {}

    # the clone's Snakemake judges an edit as the original's does (its metadata is complete, not just its mtimes)
    for r in (repo, clone):
        set_param(r, "method_config.mixture.p", 0.4)
    jobs = dry_run_jobs(clone)
    assert jobs == dry_run_jobs(repo) and {"train", "sample", "evaluate", "report"} <= set(jobs), jobs
