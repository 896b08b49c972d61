"""Time the default study (``snakemake --cores all`` on params.yaml) from nothing, in a scratch copy.

Writes ``benchmarks/results/default_study.json`` (wall time, per-rule sums from Snakemake's
benchmark files, the CPU seconds of Snakemake's own process, device, date) and appends a row to
``benchmarks/results/README.md``; Snakemake's output stays in ``<DIR>/snakemake.out``. Under the warm start
(:mod:`diffsteps.warm`) a job's work runs in a fork of the warm server, so the benchmark files' wall seconds
are the job's but their memory is the client's (``max_rss_mb``): the records' ``peak_memory_mb`` is the job's.
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
    result = {"preset": args.preset or "params.yaml", "methods": methods, "git_commit": commit.strip(),
              "wall_seconds": round(wall, 1), "returncode": proc.returncode,
              "snakemake_process_cpu_seconds": round(own_cpu, 1),
              "rules": rule_seconds(work), "device": device, "torch": torch.__version__,
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
