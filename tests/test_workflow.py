"""The study DAG under Snakemake and DVC: one shared smoke run (``smoke``, built by the README's `make study`), then
incrementality and agreement checks with dry runs and single-stage reproductions (so the suite stays fast on 2
cores). `dvc repro` from nothing has its own file, test_workflow_dvc.py, so that it runs beside this one."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time

import pandas as pd
import pytest

from diffsteps import cells
from diffsteps import workflow as plan
from diffsteps.config import to_plain
from diffsteps.params import load_config
from diffsteps.io import sha256_file
from diffsteps.metrics.fidelity import METRICS
from diffsteps.features.inception_weights import NO_LOGITS
from diffsteps.reporting.summary import QUALITY_METRICS

from .workflow_repo import BARE_ENV, ENV, dry_run_jobs, dvc_changed, dvc_changed_stages, dvc_status, set_param, sh


@pytest.mark.slow
def test_smoke_dag_produces_the_report(smoke):
    cfg = to_plain(load_config(smoke / "params.yaml"))
    for p in cells.every_output(cfg):
        assert (smoke / p).exists(), p
    md = (smoke / "reports/report.md").read_text()
    assert "real-data" in md
    html = (smoke / "reports/report.html").read_text()
    assert "data:image/png;base64" in html and not re.search(r"src=\"https?://", html)
    csv = (smoke / "reports/results.csv").read_text().splitlines()
    assert csv[0].startswith("dataset,method,family,sampler") and len(csv) > 20
    # VDM end to end: samples beside DDPM's, its K-step and T = ∞ bounds, the claim and the schedule figure
    df = pd.read_csv(smoke / "reports/results.csv")
    vdm = df[df.family == "vdm"]
    assert (vdm[vdm.metric == "fid"].status == "ok").all() and len(vdm[vdm.metric == "fid"]) == len(
        df[(df.method == "ddpm") & (df.metric == "fid") & (df.nfe != cfg["sampling"]["reference"]["budget"])])
    # the answer opens the report, and every deterministic sampler has its solver error
    assert md.index("How many steps does each method need?") < md.index("|") < md.index("## Published claims")
    errors = df[df.metric == "solver_error"]
    solved = {run for run in cfg["methods"] if cells.family_of(cfg, run).eps_prediction}  # DDGAN has no ODE
    assert (errors.status == "ok").all() and set(errors.method) == solved
    bound = vdm[vdm.metric == "nll_total"].set_index("sampler")
    assert bound.loc["continuous", "status"] == "ok" and bound.loc["continuous", "draws"] == cfg["evaluation"]["nll"]["draws"]
    assert bound.loc["ancestral-betatilde", "status"] == "ok" and bound.loc["ancestral-beta", "status"] == "not_defined"
    assert (df[(df.family == "ddpm") & (df.sampler == "continuous")].status == "not_defined").all()
    assert md.count("VDM has lower bits/dim than DDPM") >= 2 and (smoke / "reports/figures/log_snr.png").stat().st_size > 1000
    # DDGAN end to end at each T of its options: one model per T, sampled at NFE = T with its one sampler, evaluated
    # beside the others, its bound "not defined" (implicit model), its training diagnostics with the probe stage's
    # FID curve of its EMA snapshots, and the claim
    gan = df[df.family == "ddgan"]
    fid = gan[gan.metric == "fid"]
    T = cfg["method_config"]["ddgan"]["T"]
    assert (fid.status == "ok").all() and sorted(set(fid.nfe)) == T and set(fid.sampler) == {"ancestral-betatilde"}
    assert len(fid) == len(T) * len(cfg["train"]["seeds"]) * len(cfg["sampling"]["seeds"]) * len(set(fid.n))
    # no bound job for a run whose family defines none: the report says why, from the family's declaration
    assert gan[gan.metric == "nll_total"].empty and df[df.family.isin(["ddgm", "mixture"]) & (df.metric == "nll_total")].empty
    assert "ddgan: not defined — DDGAN is an implicit model" in md and "ddgm: not defined — the reverse kernel" in md
    assert "mixture: not defined — no Markov forward process" in md
    assert set(os.listdir(smoke / "results/nll/digits")) == set(cfg["evaluation"]["nll"]["methods"])
    log = pd.read_csv(smoke / f"results/models/digits/ddgan/T{T[0]}/train0/loss.csv")
    assert {"d_loss", "r1", "d_accuracy"} <= set(log.columns)
    probe = json.loads((smoke / f"results/probe/digits/ddgan/T{T[0]}/train0/probe.json").read_text())
    every, steps = cfg["method_config"]["ddgan"]["probe_every"], len(log) * cfg["train"]["log_every"]
    assert probe["status"] == "ok" and probe["curve"]["step"] == [*range(every, steps, every), steps]
    assert all(v > 0 for v in probe["curve"]["probe_fid"]) and probe["n"] == cfg["evaluation"]["probe"]["n"]
    assert (smoke / "reports/figures/training_diagnostics.png").stat().st_size > 1000
    assert "DDGAN at T = 4 matches 1000-step DDPM" in md
    # standard Inception FID offline: the headline table, the floor and the cells at evaluation.inception.n, every
    # quality row labelled with its extractor and the weights' sha256, the Inception Score refused, the pairs grid
    inc = cfg["evaluation"]["inception"]
    weights_sha = json.loads((smoke / "results/resources/inception/inception.json").read_text())["result"]["sha256"]
    rows = df[df.metric.str.startswith("inception_") & (df.metric != "inception_is")]
    assert set(rows.status) == {"ok"} and set(rows.n) == {inc["n"]} and set(rows.n_ref) == {inc["n_ref"]}
    assert set(rows.weights_sha256) == {weights_sha} and rows.feature_extractor.str.startswith("Inception-v3").all()
    assert set(rows[rows.sampler == "real-data"].metric) == {f"inception_{m}" for m in METRICS}
    assert set(rows[rows.sampler != "real-data"].nfe) == set(inc["nfe"])  # only the cells evaluation.inception selects
    score = df[df.metric == "inception_is"]
    assert len(score) and (score.status == "not_available").all() and (score.reason == NO_LOGITS).all()
    quality = df[df.metric.isin(QUALITY_METRICS) & (df.status == "ok")]
    assert quality.feature_extractor.notna().all() and quality.weights_sha256.str.fullmatch("[0-9a-f]{64}").all()
    head = md.split("## Sample quality", 1)[1]
    assert head.index("HEADLINE") < head.index("Inception FID@8") < head.index("domain classifier")
    assert (smoke / "reports/figures/closest_pairs_inception-features.png").stat().st_size > 1000


@pytest.mark.slow
def test_after_make_study_dvc_is_up_to_date_and_agrees(smoke):
    """`make study` without the venv on PATH still records every stage in dvc.lock: DVC then has nothing to run."""
    assert (smoke / "dvc.lock").is_file()
    assert dvc_changed(smoke) == set()
    dry = sh(smoke, sys.executable, "-m", "dvc", "repro", "--dry", env=BARE_ENV).stdout
    assert "Running stage" not in dry and "up to date" in dry, dry
    assert dry_run_jobs(smoke) == {}


@pytest.mark.slow
def test_evaluation_key_reruns_only_evaluation_in_both_tools(smoke, tmp_path):
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    set_param(repo, "evaluation.kid_subsets", 7)
    jobs = dry_run_jobs(repo)
    assert set(jobs) == {"evaluate", "floor", "report", "all"}, jobs
    cfg = load_config(repo / "params.yaml")
    groups = {f"evaluate-{run}" for run in cfg.methods} | {f"evaluate-{run}-reference" for run in
                                                             cfg.sampling.reference.methods}
    assert dvc_changed(repo) == {*groups, "floor", "report"}


@pytest.mark.slow
def test_one_runs_options_rerun_that_run_alone_and_threads_rerun_nothing(smoke, tmp_path):
    """method_config.<run> is a per-run param in both tools; train.threads is a resource, not a value."""
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    set_param(repo, "train.threads", 2)
    assert dry_run_jobs(repo) == {} and dvc_changed(repo) == set()
    set_param(repo, "method_config.mixture.p", 0.4)
    cfg = load_config(repo / "params.yaml")
    s = cfg.sampling
    groups = len(s.samplers) * len(s.spacings)  # one sampling (scoring) job per sampler and spacing of the run
    solver = len(cfg.train.seeds)  # its solver-error job; no bound job (mixture noise defines no bound)
    assert dry_run_jobs(repo) == {"train": len(cfg.train.seeds), "sample": groups, "evaluate": groups,
                                  "solver_error": solver, "report": 1, "all": 1}
    changed = dvc_changed_stages(repo)
    # DVC lists the stages whose own params changed (evaluate follows once the samples do)
    assert "report" in changed and len(changed) == 1 + len(cfg.train.seeds) + groups + solver
    assert all("mixture" in n for n in changed if n != "report"), changed
    set_param(repo, "method_config.mixture.p", cfg.method_config["mixture"].p)
    set_param(repo, "method_config.vdm.fourier_max", 8)  # a bounded run: its one bound job per training seed
    assert dry_run_jobs(repo)["nll"] == len(cfg.train.seeds)


@pytest.mark.slow
def test_new_budget_reruns_the_sampling_and_scoring_groups_that_sample_it(smoke, tmp_path):
    """A new budget reruns the sampling and scoring jobs of the runs sampled at every budget (one per sampler and
    spacing) and each run's solver error, never training, bounds, reference statistics or the reference chains."""
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    cfg = load_config(repo / "params.yaml")
    set_param(repo, "sampling.budgets", [*cfg.sampling.budgets, 6])
    jobs = dry_run_jobs(repo)
    # the runs sampled at every budget (DDGAN samples its own T only)
    shared = [run for run in cfg.methods if type(cfg.method_config[run]).eps_prediction]
    groups = len(shared) * len(cfg.sampling.samplers) * len(cfg.sampling.spacings)
    # each run's solver error covers every budget, so it is redone once per run and training seed
    solver = len(shared) * len(cfg.train.seeds)
    assert jobs == {"sample": groups, "evaluate": groups, "solver_error": solver, "report": 1, "all": 1}, jobs
    # DVC: the sampling groups and solver errors whose params changed (scoring follows once the samples do)
    changed = dvc_changed_stages(repo)
    assert sorted(n.split("@")[0].split("-")[0] for n in changed) == ["report"] + ["sample"] * groups + [
        "solver_error"] * solver, changed
    assert not any("reference" in n for n in changed), changed


@pytest.mark.slow
def test_new_sampler_adds_only_its_own_groups(smoke, tmp_path):
    """A new sampler: one sampling and one scoring job per run it applies to and spacing, each run's solver error
    (it covers every deterministic sampler) and the report; no other sampling or scoring job reruns."""
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    cfg = load_config(repo / "params.yaml")
    set_param(repo, "sampling.samplers", [*cfg.sampling.samplers, "dpmpp-2m"])
    shared = [run for run in cfg.methods if type(cfg.method_config[run]).eps_prediction]
    groups = len(shared) * len(cfg.sampling.spacings)
    solver = len(shared) * len(cfg.train.seeds)
    assert dry_run_jobs(repo) == {"sample": groups, "evaluate": groups, "solver_error": solver, "report": 1,
                                  "all": 1}


@pytest.mark.slow
def test_a_new_T_of_ddgan_trains_one_model_per_T_and_its_options_rerun_it_alone(smoke, tmp_path):
    """A new T in DDGAN's options trains one model per (run, training seed) and samples, evaluates and probes only
    its cells; editing another of its options reruns that run's jobs and nothing of the other runs, in both tools
    (dvc.yaml reads its list of T, so it stays as it is)."""
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    cfg = load_config(repo / "params.yaml")
    T = list(cfg.method_config["ddgan"].T)
    seeds = len(cfg.train.seeds)
    set_param(repo, "method_config.ddgan.T", [*T, 3])
    # its one sampling job holds every T (one sampler of its own): it reruns; training and the probe add the new T's
    assert dry_run_jobs(repo) == {"train": seeds, "sample": 1, "evaluate": 1, "probe": seeds, "report": 1, "all": 1}
    changed = dvc_changed_stages(repo)
    assert {n for n in changed if "@" not in n} == {"sample-ddgan", "report"}, changed
    assert all(n.split("@")[1].startswith("3-") for n in changed if "@" in n), changed
    assert (repo / "dvc.yaml").read_text() == (smoke / "dvc.yaml").read_text()
    set_param(repo, "method_config.ddgan.T", T)
    set_param(repo, "method_config.ddgan.r1_gamma", 0.05)
    n_T = len(T)
    assert dry_run_jobs(repo) == {"train": seeds * n_T, "sample": 1, "evaluate": 1, "probe": seeds * n_T,
                                  "report": 1, "all": 1}
    assert {n.split("@")[0] for n in dvc_changed_stages(repo)} == {"train-ddgan", "sample-ddgan", "probe-ddgan",
                                                                    "report"}


def _models(cfg, *families: str) -> int:
    """The models (train jobs) of the runs of ``families`` under ``cfg``."""
    return sum(1 for w in cells.iter_wildcards(to_plain(cfg), "train")
               if cfg.method_config[w["method"]].family in families)


#: edits checked against the rerun table, with what the issue asks of each (job counts of the dry run; the table's own
#: rows are the rest)
RERUN_EDITS = {
    "src/diffsteps/metrics/fidelity.py": lambda jobs, cfg: not set(jobs) & {"train", "sample", "nll"},
    "src/diffsteps/reporting/claims.py": lambda jobs, cfg: set(jobs) == {"report"},
    "src/diffsteps/samplers.py": lambda jobs, cfg: "sample" in jobs and "train" not in jobs,
    # adding a sampler or a spacing: sampling and what reads it, nothing upstream of sampling
    "src/diffsteps/sampler_registry.py": lambda jobs, cfg: {"sample", "evaluate", "solver_error", "report"} <= set(
        jobs) <= {"sample", "evaluate", "solver_error", "probe", "report"},
    "src/diffsteps/spacing.py": lambda jobs, cfg: {"sample", "evaluate", "solver_error", "report"} <= set(
        jobs) <= {"sample", "evaluate", "nll", "solver_error", "probe", "report"},
    # the feature code: the statistics, the scores and DDGAN's probe, never a model
    "src/diffsteps/features/extract.py": lambda jobs, cfg: "train" not in jobs and {
        "reference_stats", "evaluate", "floor", "report"} <= set(jobs),
    "src/diffsteps/objectives.py": lambda jobs, cfg: {"train", "sample", "evaluate", "report"} <= set(jobs),
    # one family's declaration: the jobs of its runs alone
    "src/diffsteps/families/ddgm.py": lambda jobs, cfg: jobs.get("train") == _models(cfg, "ddgm") > 0,
    # DDGAN's chain is Gaussian noise too: its models at every T retrain with DDPM's, the other families' do not
    "src/diffsteps/noise/gaussian.py": lambda jobs, cfg: jobs.get("train") == _models(cfg, "ddpm", "ddgan"),
    "src/diffsteps/workflow.py": lambda jobs, cfg: jobs == {},  # the stage table: no stage imports it
}


def _table_counts(module: str, cfg) -> dict[str, int]:
    """The jobs per rule that the rerun table says an edit of ``module`` reruns, under ``cfg``."""
    from diffsteps.reruns import reruns

    plain = to_plain(cfg)
    return {stage: sum(1 for w, _ in cells.iter_jobs(plain, stage) if jobs is None
                       or cfg.method_config[w.get("method") or cells.run_of(w["model"])].family in jobs)
            for stage, jobs in reruns(module).items()}


def _dvc_changed_by(repo, cfg, modules) -> dict[str, set[tuple[str, str | None]]]:
    """With every module of ``modules`` edited at once, one `dvc status`: per module, (stage, family of its run) of
    every DVC stage that names the module among its changed deps (DVC checks each stage's own deps only)."""
    out: dict[str, set] = {m: set() for m in modules}
    for name, changes in dvc_status(repo).items():
        stage, *rest = name.split("@")[0].split("-")
        key = (stage, cfg.method_config[rest[0]].family if rest else None)
        for change in changes:
            for module in (change.get("changed deps") or {}):
                out[module].add(key)
    return out


def _edit(path) -> tuple[str, os.stat_result]:
    text, stat = path.read_text(), path.stat()
    path.write_text(text + "\n# an edit\n")
    return text, stat


def _undo(path, text, stat) -> None:
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.slow
def test_module_edits_rerun_what_the_rerun_table_says(smoke, tmp_path):
    """A comment appended to a module: Snakemake reruns exactly the table's jobs (the module's own and what is
    downstream of them, counted per rule from the cells of the runs of the families the table names), and DVC calls
    changed exactly the stage groups whose code it is (one `dvc status` over all the edits at once, each stage naming
    the modules it found changed); then the edits are undone."""
    from diffsteps.reruns import own_jobs

    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    cfg = load_config(repo / "params.yaml")
    undo = {m: _edit(repo / m) for m in RERUN_EDITS}
    dvc = _dvc_changed_by(repo, cfg, RERUN_EDITS)
    for m, (text, stat) in undo.items():
        _undo(repo / m, text, stat)
    wrong = []
    for module, wanted in RERUN_EDITS.items():
        text, stat = _edit(repo / module)
        counts = {rule: n for rule, n in dry_run_jobs(repo).items() if rule != "all"}
        _undo(repo / module, text, stat)
        table = {rule: n for rule, n in _table_counts(module, cfg).items() if n}
        own = {(stage, None if grid.run is None else cfg.method_config[grid.run].family)
               for stage, jobs in own_jobs(module).items() for grid in cells.grids(to_plain(cfg), stage)
               if jobs is None or cfg.method_config[grid.run].family in jobs}
        if counts != table or dvc[module] != own or not wanted(counts, cfg):
            wrong.append(f"{module}: snakemake {counts}, table {table}; dvc {sorted(dvc[module], key=str)}, "
                         f"own {sorted(own, key=str)}")
    assert not wrong, "\n".join(wrong)
    assert dry_run_jobs(repo) == {} and dvc_changed(repo) == set()  # every edit undone


@pytest.mark.slow
def test_a_users_weights_file_is_an_input_of_the_resource(smoke, tmp_path):
    """evaluation.inception.weights = a path: the file is copied and hashed, and editing it in place rebuilds it."""
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    target = "results/resources/inception/inception.pth"
    shutil.copy2(repo / target, repo / "mine.pth")
    set_param(repo, "evaluation.inception.weights", "mine.pth")
    sh(repo, "snakemake", "--cores", "1", target)
    record = json.loads((repo / "results/resources/inception/inception.json").read_text())["result"]
    assert record["source"].startswith("mine.pth (sha256 ") and record["sha256"] == sha256_file(repo / "mine.pth")
    assert dry_run_jobs(repo, target) == {}
    time.sleep(1.1)  # a visibly newer mtime
    (repo / "mine.pth").touch()
    assert dry_run_jobs(repo, target) == {"inception_weights": 1}


@pytest.mark.slow
def test_dvc_run_cache_restore_and_snakemake_agree(smoke, tmp_path):
    """Change an evaluation key, let DVC reproduce one stage (it runs Snakemake), revert: DVC
    restores from its run-cache without running anything, and Snakemake then has nothing to do."""
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    floor = cells.all_outputs(to_plain(load_config(repo / "params.yaml")), "floor")[0]
    before = (repo / floor).read_text()
    set_param(repo, "evaluation.kid_subsets", 7)
    out = sh(repo, "dvc", "repro", "--single-item", "floor").stdout
    assert "Running stage 'floor'" in out
    assert (repo / floor).read_text() != before
    assert dry_run_jobs(repo, floor) == {}
    set_param(repo, "evaluation.kid_subsets", 5)
    out = sh(repo, "dvc", "repro", "--single-item", "floor").stdout
    assert "Stage 'floor' is cached - skipping run" in out, out  # DVC's run-cache restore
    assert (repo / floor).read_text() == before
    assert dry_run_jobs(repo, floor) == {}
    assert "floor" not in dvc_changed(repo)


@pytest.mark.slow
def test_preset_switch_never_leaves_stale_outputs_up_to_date(smoke, tmp_path):
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    sh(repo, sys.executable, "-m", "diffsteps", "preset", "cpu")  # its runs' stage groups are written too
    assert {"prepare_data", "train", "sample", "evaluate", "report"} <= {g.split("-")[0] for g in dvc_changed(repo)}
    assert "train" in dry_run_jobs(repo)
    sh(repo, sys.executable, "-m", "diffsteps", "preset", "smoke")
    assert dvc_changed(repo) == set() and dry_run_jobs(repo) == {}


@pytest.mark.slow
def test_snakemake_report_works(smoke, tmp_path):
    out = tmp_path / "snakemake-report.html"
    sh(smoke, "snakemake", "--report", str(out))
    assert out.stat().st_size > 10_000 and "results.csv" in out.read_text(errors="replace")


@pytest.mark.slow
def test_every_job_asked_for_the_memory_and_time_it_used(smoke):
    """What a batch system is told (diffsteps.resources: mem_mb, runtime) covers what the smoke study's jobs used:
    every job's wall seconds (Snakemake's benchmark files: a warm job's client waits for its work) and the peak
    memory that training and sampling jobs measure of themselves (their records: a warm job's benchmark RSS is its
    thin client's). tests/cluster/test_slurm.py checks every rule's RSS too, measured cold inside SLURM jobs."""
    from diffsteps import resources

    cfg = load_config(smoke / "params.yaml")
    files = sorted((smoke / "results/benchmarks").rglob("*.tsv"))
    assert {f.relative_to(smoke / "results/benchmarks").parts[0] for f in files} >= {"train", "sample", "evaluate"}
    for tsv in files:
        rule = tsv.relative_to(smoke / "results/benchmarks").parts[0]
        used = pd.read_csv(tsv, sep="\t").iloc[0]
        assert used["s"] <= 60 * resources.job_resources(cfg, plan.STAGE[rule].needs)["runtime"], (tsv, used["s"])
    df = pd.read_csv(smoke / "reports/results.csv")
    for rule, metric in (("train", "training_peak_memory_mb"), ("sample", "sampling_peak_memory_mb")):
        peaks = df.loc[(df["metric"] == metric) & (df["status"] == "ok"), "value"]
        assert len(peaks) and peaks.max() <= resources.job_resources(cfg, plan.STAGE[rule].needs)["mem_mb"], (rule, peaks.max())


# ---- a rerun recomputes: training's resumable state belongs to the code and params that wrote it, one writer each

MODEL = "results/models/digits/ddpm/train0/model.pt"
LOG = "logs/train/digits/ddpm/train0.log"
CELL_STATE = ".cache/resume/digits/ddpm/train0"


def _ema(repo) -> dict:
    import torch

    return torch.load(repo / MODEL, weights_only=True)["ema"]


def _same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _kill_training_after_a_checkpoint(repo, env) -> int:
    """Start `snakemake -f` of the DDPM model, wait for its first checkpoint, SIGKILL the job's own process (a child
    of Snakemake, as a user or a batch system kills it), stop Snakemake; return the PID that held the cell's lock."""
    import subprocess

    import psutil

    # no retry: the profile's retries would restart the killed job, which would resume and finish
    snake = subprocess.Popen(["snakemake", "--cores", "1", "--retries", "0", "-f", MODEL], cwd=repo, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock, deadline = repo / CELL_STATE / "lock", time.monotonic() + 180
    while not (lock.exists() and lock.read_text().strip() and list((repo / CELL_STATE).glob("*/checkpoint.pt"))):
        assert snake.poll() is None and time.monotonic() < deadline, "training never wrote a checkpoint"
        time.sleep(0.1)
    jobs = [p for p in psutil.Process(snake.pid).children(recursive=True) if "train" in p.cmdline()]
    assert len(jobs) == 1, [p.cmdline() for p in jobs]
    # the rule execs the command: the job's shell is the Python process itself, nothing sits between them
    assert jobs[0].cmdline()[:3] == [sys.executable, "-m", "diffsteps"] and jobs[0].ppid() == snake.pid
    jobs[0].kill()
    snake.wait(timeout=120)
    return int(lock.read_text())


@pytest.mark.slow
def test_a_killed_training_job_leaves_no_process_writing_its_state(smoke, tmp_path):
    """kill -9 of a training job's process: the process that held the cell's lock is gone within seconds, its
    checkpoint stops changing, and the rerun resumes from it."""
    import psutil

    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    set_param(repo, "train.images", 32 * 120)
    writer = _kill_training_after_a_checkpoint(repo, ENV)
    deadline = time.monotonic() + 10
    while psutil.pid_exists(writer) and psutil.Process(writer).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"process {writer} still holds the training state of a killed job"
        time.sleep(0.1)
    (checkpoint,) = (repo / CELL_STATE).glob("*/checkpoint.pt")
    seen = checkpoint.stat().st_mtime_ns
    time.sleep(2)
    assert checkpoint.stat().st_mtime_ns == seen
    sh(repo, "snakemake", "--cores", "1", MODEL)
    assert "resumed from its checkpoint at step" in (repo / LOG).read_text()


@pytest.mark.slow
def test_a_forced_rerun_retrains(smoke, tmp_path):
    """A finished run keeps no resumable state, so `snakemake -f` and `dvc repro -f` train from step 0 (the same
    bytes: the same seed on the CPU gives the same weights)."""
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    before = _ema(repo)
    assert not list((repo / CELL_STATE).glob("*/checkpoint.pt"))
    sh(repo, "snakemake", "--cores", "1", "-f", MODEL)
    assert "started at step 0/" in (repo / LOG).read_text() and _same(_ema(repo), before)
    (repo / LOG).unlink()
    sh(repo, "dvc", "repro", "-f", "--single-item", "train-ddpm@0")  # the DVC stage of MODEL: its run's group, seed 0
    assert "started at step 0/" in (repo / LOG).read_text() and _same(_ema(repo), before)


@pytest.mark.slow
def test_a_code_edit_of_training_retrains_from_step_zero(smoke, tmp_path):
    """The issue's case: the smoke study's DDPM model, then a real change of the loss (`0.0 * loss`, so the weights
    stay where they start). Snakemake reruns the model (its code changed), training starts at step 0 instead of
    returning the old model, and the weights differ from the old code's. (State that other code left is never
    resumed: its key holds the code digest, tests/training/test_resume.py.)"""
    repo = shutil.copytree(smoke, tmp_path / "r", symlinks=True)
    env = {**ENV, "PYTHONPATH": str(repo / "src")}  # the jobs run the repository's copy of the package, edits included
    trained = _ema(repo)
    loss = repo / "src/diffsteps/objectives.py"
    loss.write_text(loss.read_text().replace("return self.process.loss(", "return 0.0 * self.process.loss("))
    assert "train" in dry_run_jobs(repo, MODEL)
    sh(repo, "snakemake", "--cores", "1", MODEL, env=env)
    log = (repo / LOG).read_text()
    assert "started at step 0/" in log and "resumed" not in log, log
    assert not _same(_ema(repo), trained)
