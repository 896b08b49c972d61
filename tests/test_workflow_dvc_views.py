"""DVC's own views of the study on the shared smoke run: its metrics (reports/metrics.json, the report's
steps-needed table and headline FID per cell), its plot (FID against NFE from reports/results.csv) and an
experiment that changes one evaluation key, as a DVC user runs them (README "DVC views")."""

from __future__ import annotations

import json
import shutil

import pytest

from diffsteps import workflow as plan
from diffsteps.io import read_json

from .workflow_repo import dry_run_jobs, dvc_changed, set_param, sh

pytestmark = pytest.mark.slow
PLOT = next(iter(plan.DVC_PLOTS[0]))


def _commit(repo) -> None:
    """What a user commits after a study: params, dvc.lock (outputs themselves go to DVC's cache)."""
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "study")


def test_metrics_show_the_reports_answer(smoke, smoke_cfg):
    shown = json.loads(sh(smoke, "dvc", "metrics", "show", "--json").stdout)
    data = shown[""]["data"]["reports/metrics.json"]["data"]
    assert data == read_json(smoke / "reports/metrics.json")
    runs = set(smoke_cfg.methods)  # every run of the smoke study
    assert set(data.get("steps_needed", {})) <= runs and set(data["converged_fid"]) == runs
    assert "ddgan" not in data.get("steps_needed", {})  # a model per T: no limit of its own
    assert data["converged_fid"]["ddgan"]["ode"] == "no converged limit on this grid"
    report = (smoke / "reports/report.md").read_text()
    for run, row in data.get("steps_needed", {}).items():  # the report's first table, cell by cell
        for sampler, needed in row.items():
            assert f"{needed['nfe']} [{needed['low']}, {needed['high']}]" in report, (run, sampler, needed)
    table = sh(smoke, "dvc", "metrics", "show").stdout
    assert "converged_fid.ddpm.ode" in table and "fid.ddpm.ddim-eta0.uniform.4" in table


def test_plots_show_fid_against_nfe(smoke, smoke_cfg, tmp_path):
    out = json.loads(sh(smoke, "dvc", "plots", "show", "--json", "-o", str(tmp_path / "plots")).stdout)
    (plot,) = out["data"][PLOT]
    spec = plot["content"]
    assert plot["type"] == "vega" and spec["title"] == PLOT
    assert "<DVC_METRIC" not in json.dumps(spec)  # every anchor of the template filled
    fid = [r for r in spec["data"]["values"] if r["metric"] == "fid" and r["status"] == "ok" and r["nfe"]]
    assert {r["method"] for r in fid} == set(smoke_cfg.methods)
    assert spec["spec"]["encoding"]["x"]["field"] == "NFE" and spec["facet"]["row"]["field"] == "metric"
    html = sh(smoke, "dvc", "plots", "show", "-o", str(tmp_path / "html")).stdout
    assert (tmp_path / "html/index.html").stat().st_size > 10_000, html


def test_an_evaluation_experiment_changes_its_metrics_and_trains_nothing(smoke, tmp_path):
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    _commit(repo)
    before = read_json(repo / "reports/metrics.json")
    out = sh(repo, "dvc", "exp", "run", "-n", "loose", "-S", "evaluation.steps_needed.solver_error=1.0").stdout
    ran = {line.split("'")[1].split("@")[0] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"report"}, out  # neither training nor sampling nor scoring reruns
    exps = json.loads(sh(repo, "dvc", "exp", "show", "--json").stdout)
    base = next(e for e in exps if e["rev"] != "workspace")
    (exp,) = [r for e in base["experiments"] for r in e["revs"] if r["name"] == "loose"]
    metrics = exp["data"]["metrics"]["reports/metrics.json"]["data"]
    assert base["data"]["metrics"]["reports/metrics.json"]["data"] == before
    # ε = 1 instead of 0.02: the smoke study's few-step ODE cells now qualify as the ODE limit of its runs
    assert metrics["converged_fid"] != before["converged_fid"]
    assert isinstance(metrics["converged_fid"]["ddpm"]["ode"], float)
    assert metrics["fid"] == before["fid"]  # the cells themselves are unchanged
    assert exp["data"]["params"]["params.yaml"]["data"]["evaluation"]["steps_needed"]["solver_error"] == 1.0
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)["reports/metrics.json"]
    assert any(k.startswith("steps_needed.") for k in diff) and not any(k.startswith("fid.") for k in diff)
    table = sh(repo, "dvc", "exp", "show", "--only-changed", "--csv").stdout  # not cut to the terminal's width
    assert "loose" in table
    # the experiment is applied to the workspace: both tools agree that nothing is left to do
    assert dvc_changed(repo) == set() and dry_run_jobs(repo) == {}
    set_param(repo, "evaluation.steps_needed.solver_error", 0.02)
    assert dvc_changed(repo) == {"report"}
