"""Wall time of a preset's whole study on one GPU, estimated before any GPU run: per rule, jobs × start-up plus
the compute of every cell at measured throughputs.

- Jobs: ``snakemake -n`` from nothing on the preset, in a scratch copy of this checkout; the planner
  (:mod:`diffsteps.cells`) must list the same number per rule, or the script stops.
- Start-up per job: the median warm start-up of the rule's command from ``benchmarks/results/startup.json``
  (the warm server forks each job) plus ``--cuda-init-s`` for every job that touches the GPU (a forked child
  makes its own CUDA context). The CPU figure stands for the GPU machine's until ``gpu_check`` measures it.
- Compute per cell, from what the cell does: network evaluations (img·NFE) at the sampling throughput, training
  images at the training throughput (forward + backward + Adam), Inception images at the feature throughput.

  * train: ``train.images`` per model; a DDGAN model counts ``--gan-factor`` times (generator and
    discriminator steps, R1);
  * sample: ``n_samples`` × NFE(K) of the cell's sampler;
  * evaluate / floor / reference_stats_inception: the Inception images (``evaluation.inception.n`` or the
    cell's N), where ``evaluation.inception`` selects the cell;
  * nll: ``n_images`` × K for a discrete chain's K-step bound, ``n_images`` × ``draws`` for VDM's, none for a
    cell whose bound is not defined;
  * solver_error: ``n`` × the NFE of every deterministic cell of the run, plus its reference (DDIM at K = T,
    or Heun doubled from K = 64 up to ``max_K``, the worst case);
  * the rest (data, the domain classifier, the report): start-up only, their compute is seconds on a CPU.

The default throughputs are the anchors measured on one H100 with torch 2.11 for a 6M-parameter UNet at 32×32
(the GPU preset's network has 6.47M): training 2.8k img/s (plain PyTorch, eager fp32, batch 128), sampling
13k img·NFE/s (eager), Inception 4.3k img/s (float32, resize included). ``--measured gpu_check.json`` takes
them from a GPU check instead. Compute is summed as if the GPU ran one cell at a time at these rates. With
``--slots S`` jobs sharing the GPU (``--resources gpu=S``, README "GPU") a job's start-up (CPU work) overlaps the
other jobs' compute, so the wall time is max(compute, (start-up + compute) / S); the GPU's compute is not assumed
to go faster for running several cells at once, although small cells leave it idle enough that it may.

    python benchmarks/gpu_estimate.py [--preset gpu] [--measured benchmarks/results/gpu_check.json]

Writes ``benchmarks/results/gpu_estimate.json`` and prints the per-rule table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))  # its sibling scripts, also when loaded from elsewhere (the suite)

from diffsteps import cells  # noqa: E402  (the planner of this checkout)
from diffsteps.config import to_plain  # noqa: E402
from diffsteps.data.datasets import DATASETS, resolve  # noqa: E402
from diffsteps.params import load_config  # noqa: E402
from diffsteps.registry import METHODS  # noqa: E402
from diffsteps.sampler_registry import SamplerSpec  # noqa: E402
from default_study import copy_checkout  # noqa: E402
from startup import RULE_COMMAND  # noqa: E402

ANCHORS = {"train_img_per_s": 2800.0, "sample_img_nfe_per_s": 13000.0, "inception_img_per_s": 4300.0,
           "source": "issue 15's anchors: one H100, torch 2.11, a 6M-parameter UNet at 32x32 (plain PyTorch), eager"}
#: the rules whose jobs run on the GPU (they declare resources gpu=1 in workflow/rules/)
GPU_RULES = {"train", "sample", "evaluate", "nll", "nll_continuous", "solver_error", "floor", "reference_stats",
             "reference_stats_inception", "train_domain"}


def dry_run_jobs(preset: str) -> dict[str, int]:
    """Rule → jobs of ``snakemake -n`` from nothing on ``preset``, in a scratch copy of the checkout."""
    work = Path(tempfile.mkdtemp(prefix="diffsteps-estimate-"))
    try:
        copy_checkout(work)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": str(work / "src"), "DIFFSTEPS_WARM": "0"}
        subprocess.run([sys.executable, "-m", "diffsteps", "preset", preset], cwd=work, env=env, check=True,
                       capture_output=True)
        out = subprocess.run(["snakemake", "-n", "--cores", "1"], cwd=work, env=env, capture_output=True, text=True,
                             check=True).stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m.group(1) != "all"}


def method_of(cfg: dict, run: str):
    """The method class of a run (its declarations: which bounds it defines, continuous time)."""
    return METHODS[cfg["method_config"][run]["family"]]


def cell_work(cfg: dict, stage: str, wc: dict, n_train: int) -> dict[str, float]:
    """What one cell computes: training images, network evaluations (img·NFE) and Inception images
    (``n_train``: the size of the training split)."""
    s, ev = cfg["sampling"], cfg["evaluation"]
    inc, nll = ev["inception"], ev["nll"]
    if stage == "train":
        return {"train_images": cfg["train"]["images"], "gan": wc["method"] in cfg["fixed_T"]["methods"]}
    if stage == "sample":
        return {"img_nfe": s["n_samples"] * SamplerSpec.parse(wc["sampler"]).nfe(int(wc["budget"]))}
    if inc["weights"] is None and stage in ("evaluate", "floor", "reference_stats_inception"):
        return {}
    if stage == "evaluate":
        nfe = SamplerSpec.parse(wc["sampler"]).nfe(int(wc["budget"]))
        selected = (inc["samplers"] is None or wc["sampler"] in inc["samplers"]) and (
            inc["nfe"] is None or nfe in inc["nfe"])
        return {"inception_images": (inc["n"] or s["n_samples"]) if selected else 0}
    if stage == "floor":
        return {"inception_images": inc["n"] or cfg["data"]["n_heldout"]}
    if stage == "reference_stats_inception":
        return {"inception_images": (inc["n_ref"] or n_train) + (inc["n"] or cfg["data"]["n_heldout"])}
    if stage in ("nll", "nll_continuous"):
        method = method_of(cfg, cells.run_of(wc["model"]))
        variance = wc.get("variance") if stage == "nll" else None
        if method.nll_reason(variance) is not None:
            return {}  # a "not defined" cell writes its reason: start-up only
        per_image = nll["draws"] if method.continuous_time else int(wc["budget"])
        return {"img_nfe": nll["n_images"] * per_image}
    if stage == "solver_error":
        se = ev["solver_error"]
        nfe = sum(spec.nfe(K) for spec in map(SamplerSpec.parse, s["samplers"]) if spec.deterministic
                  for _ in s["spacings"] for K in s["budgets"])
        if method_of(cfg, wc["method"]).continuous_time:  # Heun refined from K = 64 up to max_K (worst case)
            K, ref = 64, 0
            while K <= se["max_K"]:
                ref, K = ref + SamplerSpec.parse("heun").nfe(K), 2 * K
        else:
            ref = cfg["noise"]["T"]
        return {"img_nfe": se["n"] * (nfe + ref)}
    return {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="gpu")
    ap.add_argument("--measured", type=Path, default=None, help="a gpu_check.json whose throughputs to use")
    ap.add_argument("--cuda-init-s", type=float, default=2.0,
                    help="CUDA context set-up per GPU job, in seconds (an assumption until the GPU check measures it)")
    ap.add_argument("--slots", type=int, default=8, help="GPU jobs at once (--resources gpu=SLOTS)")
    ap.add_argument("--gan-factor", type=float, default=2.0,
                    help="a DDGAN training image's cost in DDPM training images (generator + discriminator)")
    args = ap.parse_args()
    rates = dict(ANCHORS)
    if args.measured:
        measured = json.loads(args.measured.read_text())
        rates.update({k: measured["rates"][k] for k in ("train_img_per_s", "sample_img_nfe_per_s",
                                                        "inception_img_per_s")})
        rates["source"] = f"{args.measured} ({measured['device']}, {measured['date']})"
        if "cuda_init_s" in measured:
            args.cuda_init_s = measured["cuda_init_s"]
    startup = json.loads((OUT / "startup.json").read_text())
    study = load_config(ROOT / "src/diffsteps/presets" / f"{args.preset}.yaml")
    cfg, data = to_plain(study), study.data
    jobs = dry_run_jobs(args.preset)
    n_train = len(DATASETS[data.dataset](resolve(data)).images) - data.n_heldout  # the training split's size
    per = defaultdict(lambda: {"jobs": 0, "train_images": 0.0, "img_nfe": 0.0, "inception_images": 0.0})
    for stage in cells.LAYOUT:
        for wc in cells.iter_wildcards(cfg, stage):
            rule = per[stage]
            rule["jobs"] += 1
            work = cell_work(cfg, stage, wc, n_train)
            rule["train_images"] += work.get("train_images", 0) * (args.gan_factor if work.get("gan") else 1)
            rule["img_nfe"] += work.get("img_nfe", 0)
            rule["inception_images"] += work.get("inception_images", 0)
    planned = {r: v["jobs"] for r, v in per.items() if v["jobs"]}
    if planned != jobs:
        raise SystemExit(f"the planner and the dry run disagree on the jobs per rule:\n planner {planned}\n "
                         f"dry run {jobs}")
    rows, startup_s, compute_s = {}, 0.0, 0.0
    for rule, v in sorted(per.items()):
        start = v["jobs"] * (startup["seconds"][f"{RULE_COMMAND[rule]} (warm)"]
                             + (args.cuda_init_s if rule in GPU_RULES else 0.0))
        compute = (v["train_images"] / rates["train_img_per_s"] + v["img_nfe"] / rates["sample_img_nfe_per_s"]
                   + v["inception_images"] / rates["inception_img_per_s"])
        rows[rule] = {**v, "startup_s": round(start, 1), "compute_s": round(compute, 1)}
        startup_s, compute_s = startup_s + start, compute_s + compute
    wall = max(compute_s, (startup_s + compute_s) / args.slots)
    result = {"preset": args.preset, "date": datetime.date.today().isoformat(),
              "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True).stdout.strip(),
              "rates": rates, "cuda_init_s": args.cuda_init_s, "gan_factor": args.gan_factor,
              "startup_source": f"benchmarks/results/startup.json ({startup['device']}, {startup['date']})",
              "jobs": sum(jobs.values()), "rules": rows, "slots": args.slots,
              "startup_minutes": round(startup_s / 60, 1), "compute_minutes": round(compute_s / 60, 1),
              "serial_minutes": round((startup_s + compute_s) / 60, 1), "wall_minutes": round(wall / 60, 1)}
    (OUT / "gpu_estimate.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'rule':28} {'jobs':>6} {'start-up s':>11} {'compute s':>10}")
    for rule, v in rows.items():
        print(f"{rule:28} {v['jobs']:>6} {v['startup_s']:>11} {v['compute_s']:>10}")
    print(f"{'total':28} {result['jobs']:>6} {startup_s:>11.0f} {compute_s:>10.0f}")
    print(f"one GPU, {args.slots} slots: {result['wall_minutes']} min (one job at a time: {result['serial_minutes']} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
