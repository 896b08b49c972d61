"""Time the default study (``snakemake --cores all`` on params.yaml) from nothing, in a scratch copy.

Writes ``benchmarks/results/default_study.json`` (wall time, jobs, per-rule sums from Snakemake's benchmark files
beside the work the jobs' records time, the per-job overhead, the onsuccess DVC sync, the CPU seconds of Snakemake's
own process, device, date) and appends a row to ``benchmarks/results/README.md``; Snakemake's output stays in
``<DIR>/snakemake.out``. Jobs run cold (the default): the benchmark files measure each job itself.
Usage: ``python benchmarks/default_study.py [--preset cpu] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def copy_checkout(dest: Path) -> None:
    """The checkout's tracked files as they are in the working tree (a file deleted there is left out) into ``dest``."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if os.path.lexists(ROOT / f):
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f, follow_symlinks=False)


def rule_seconds(repo: Path) -> dict[str, dict[str, float]]:
    """Per rule: jobs, summed wall seconds and max RSS (MB) from results/benchmarks/<rule>/**.tsv."""
    per = defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "max_rss_mb": 0.0})
    for tsv in (repo / "results/benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(repo / "results/benchmarks").parts[0]
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        per[rule]["jobs"] += 1
        per[rule]["seconds"] += float(row["s"])
        per[rule]["max_rss_mb"] = max(per[rule]["max_rss_mb"], float(row["max_rss"]))
    return dict(per)


def record_work(repo: Path) -> dict[str, float]:
    """Per rule: the seconds of work its jobs' records time (``work_seconds``, diffsteps.stages.common.record)."""
    per: dict[str, float] = defaultdict(float)
    for path in (repo / "results").rglob("*.json"):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("work_seconds"), (int, float)) and rec.get("stage"):
            per[rec["stage"]] += rec["work_seconds"]
    return dict(per)


def overhead(rules: dict[str, dict[str, float]], work: dict[str, float]) -> dict[str, float]:
    """Per-job overhead: each job's wall time (its benchmark file) less the work its records time, summed, and as a
    share of the job-seconds; a rule whose jobs write no timed record counts whole."""
    job_s = sum(r["seconds"] for r in rules.values())
    timed = sum(min(work.get(rule, 0.0), r["seconds"]) for rule, r in rules.items())
    return {"job_seconds": round(job_s, 1), "work_seconds": round(timed, 1),
            "overhead_seconds": round(job_s - timed, 1), "overhead_share": round((job_s - timed) / job_s, 4)}


def sync_seconds(log: Path) -> float | None:
    """The onsuccess DVC sync's seconds, from the line diffsteps.workflow.dvc_sync prints."""
    for line in map(str.strip, log.read_text(errors="replace").splitlines()):
        if line.startswith("dvc.lock:") and line.endswith(" s"):
            return float(line.split(" in ")[-1][:-2])
    return None


def scheduler_cpu(proc: subprocess.Popen) -> float:
    """Wait for ``proc``; the CPU seconds of Snakemake's own process (its jobs excluded), last read before it ended."""
    import psutil

    own, handle = 0.0, psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            times = handle.cpu_times()
            own = times.user + times.system
        except psutil.Error:
            pass
        time.sleep(1.0)
    return own


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None, help="run this preset instead of params.yaml as it is")
    ap.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="diffsteps-bench-"))
    # the commit whose files are copied (uncommitted edits are copied too: commit before timing)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    copy_checkout(work)
    # PYTHONPATH: the copy's own package, so that editing the checkout meanwhile cannot leak into the run
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(work / "src")}
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    if args.preset:
        subprocess.run([sys.executable, "-m", "diffsteps", "preset", args.preset], cwd=work, env=env, check=True)
    start = time.perf_counter()
    with open(work / "snakemake.out", "w") as log:
        proc = subprocess.Popen(["snakemake", "--cores", "all"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        own_cpu = scheduler_cpu(proc)
    wall = time.perf_counter() - start
    import torch

    import yaml

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu, {os.cpu_count()} cores"
    params = yaml.safe_load((work / "params.yaml").read_text())
    methods = [m + (f" (T = {', '.join(map(str, params['method_config'][m]['T']))})"
                    if "T" in params["method_config"][m] else "") for m in params["methods"]]
    rules, work_s = rule_seconds(work), record_work(work)
    for rule, r in rules.items():
        r["work_seconds"] = round(work_s.get(rule, 0.0), 1)
    result = {"preset": args.preset or "params.yaml", "methods": methods, "git_commit": commit.strip(),
              "wall_seconds": round(wall, 1), "returncode": proc.returncode,
              "snakemake_process_cpu_seconds": round(own_cpu, 1), "jobs": sum(r["jobs"] for r in rules.values()),
              "overhead": overhead(rules, work_s), "dvc_sync_seconds": sync_seconds(work / "snakemake.out"),
              "rules": rules, "device": device, "torch": torch.__version__,
              "date": datetime.date.today().isoformat()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "default_study.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(OUT / "README.md", "a") as fh:
        fh.write(f"| {result['date']} | {result['git_commit']} | {result['preset']}: {', '.join(methods)} | {device} "
                 f"| {wall / 60:.1f} min | exit {proc.returncode} |\n")
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
