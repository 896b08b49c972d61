"""Start-up of every CLI command, cold (a fresh interpreter imports everything) and warm (a fork of the
warm-start server, :mod:`diffsteps.warm`), side by side with ``python -c "import torch"`` in one run.

A command's start-up is the wall time of ``python -m diffsteps <command> --help``: the interpreter, the
command's imports and its parser, which is everything a job pays before its first tensor operation (argument
parsing and params validation follow; both take milliseconds). Each figure is the median of ``--repeats``
runs, the commands interleaved so that a slow moment of the machine hits all of them alike.

With ``--study FILE`` (a ``default_study.json``; repeatable) it also gives the share of that study's job
seconds spent starting up: jobs per rule × the median start-up of the rule's command (cold and warm), over
the summed job seconds (Snakemake's ``benchmark:`` files). Writes ``benchmarks/results/startup.json`` and appends a row to
``benchmarks/results/README.md``.
Usage: ``python benchmarks/startup.py [--repeats 5] [--study benchmarks/results/default_study.json]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "src"))

from diffsteps.cli import COMMANDS  # noqa: E402  (the command list: no stage module is imported here)

#: the study's rules → the command each job runs
RULE_COMMAND = {"prepare_data": "prepare-data", "train_domain": "train-domain", "inception_weights": "inception-weights",
                "reference_stats": "reference-stats", "reference_stats_inception": "reference-stats", "train": "train",
                "sample": "sample", "evaluate": "evaluate", "floor": "floor", "nll": "nll",
                "solver_error": "solver-error", "probe": "probe", "report": "report"}


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def measure(commands: list[str], repeats: int) -> dict[str, float]:
    """Median seconds of ``import torch`` and of each command's start-up, cold and warm, over ``repeats`` rounds
    (the cases interleaved within a round). The warm server is this call's own (a temp dir of its own), started
    by a first warm call that is not timed."""
    tmp = tempfile.mkdtemp(prefix="diffsteps-startup-")
    base = {**os.environ, "TMPDIR": tmp, "DIFFSTEPS_WARM_IDLE": "60"}
    cold_env, warm_env = {**base, "DIFFSTEPS_WARM": "0"}, {**base, "DIFFSTEPS_WARM": "1"}
    py = [sys.executable]
    cases = {"import torch": (py + ["-c", "import torch"], cold_env)}
    for command in commands:
        cases[f"{command} (cold)"] = (py + ["-m", "diffsteps", command, "--help"], cold_env)
        cases[f"{command} (warm)"] = (py + ["-m", "diffsteps", command, "--help"], warm_env)
    timed(py + ["-m", "diffsteps", "validate", "--help"], warm_env)  # starts the server
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (argv, env) in cases.items():
            runs[name].append(timed(argv, env))
    return {name: round(statistics.median(v), 3) for name, v in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--study", type=Path, action="append", default=[],
                    help="a default_study.json whose start-up share to give (repeatable: before and after)")
    args = ap.parse_args()
    median = measure(sorted(COMMANDS), args.repeats)
    torch_s = median["import torch"]
    import torch

    device = f"cpu, {os.cpu_count()} cores"
    result = {"repeats": args.repeats, "seconds": median,
              "ratio_to_import_torch": {k: round(v / torch_s, 2) for k, v in median.items()},
              "device": device, "torch": torch.__version__, "date": datetime.date.today().isoformat(),
              "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True).stdout.strip()}
    result["studies"] = []
    for path in args.study:
        study = json.loads(path.read_text())
        job_seconds = sum(r["seconds"] for r in study["rules"].values())
        # each job's start-up as the command's cold or warm median: a study timed cold is read with "cold"
        startup = {mode: sum(r["jobs"] * median[f"{RULE_COMMAND[rule]} ({mode})"] for rule, r in study["rules"].items())
                   for mode in ("cold", "warm")}
        result["studies"].append({"file": str(path), "git_commit": study["git_commit"],
                                  "wall_seconds": study["wall_seconds"],
                                  "jobs": sum(r["jobs"] for r in study["rules"].values()),
                                  "job_seconds": round(job_seconds, 1),
                                  "startup_seconds": {k: round(v, 1) for k, v in startup.items()},
                                  "startup_share": {k: round(v / job_seconds, 3) for k, v in startup.items()}})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    worst_warm = max(v for k, v in result["ratio_to_import_torch"].items() if k.endswith("(warm)"))
    worst_cold = max(v for k, v in result["ratio_to_import_torch"].items() if k.endswith("(cold)"))
    with open(OUT / "README.md", "a") as fh:
        fh.write(f"| {result['date']} | {result['git_commit']} | start-up: `import torch` {torch_s:.2f} s; the slowest "
                 f"command {worst_cold:.2f}x of it cold, {worst_warm:.2f}x warm | {device} | | |\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
