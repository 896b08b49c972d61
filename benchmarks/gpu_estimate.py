"""Wall time of a preset's whole study on one GPU, estimated from its jobs and cells: per rule, what its cells
compute at measured throughputs, plus what each job costs beyond that, as measured on the preset's own slice.

- Jobs: ``snakemake -n`` from nothing on the preset, in a scratch copy of this checkout; the planner
  (:mod:`diffsteps.cells`) must list the same number per rule, or the script stops.
- Compute per cell, from what the cell does: network evaluations (img·NFE) at the sampling throughput, training
  images at the training throughput (forward + backward + Adam), Inception images at the feature throughput.

  * train: ``train.images`` per model; a DDGAN model counts ``--gan-factor`` times (generator and
    discriminator steps, R1);
  * sample: ``n_samples`` × NFE(K) of the cell's sampler;
  * evaluate / floor / reference_stats_inception: the Inception images (``evaluation.inception.n`` or the
    cell's N), where ``evaluation.inception`` selects the cell;
  * nll: ``n_images`` × K for a discrete chain's K-step bound, ``n_images`` × ``draws`` for VDM's, none for a
    cell whose bound is not defined;
  * probe: ``evaluation.probe.n`` × T for each EMA snapshot of a probed model and its final weights;
  * solver_error: ``n`` × the NFE of every deterministic cell of the run, plus its reference (DDIM at K = T,
    or Heun doubled from K = 64 up to ``max_K``, the worst case);
  * the rest (data, the domain classifier, the report): none, their compute is seconds on a CPU.
- Cost per job beyond its compute. With ``--measured gpu_check.json`` (``gpu_check.py``), from the preset's
  DDPM slice that the check ran end to end with its slots sharing the GPU: per rule, the slice's job
  seconds less its cells' compute, over its jobs (start-up, CUDA's set-up, loading, the CPU-side metrics such as
  FID's matrix square root and KID, and the waiting beside the other jobs). A rule the slice did not run (and
  every rule without ``--measured``) pays the warm start-up of its command plus CUDA's set-up per GPU job.
  ``--overheads startup`` charges only that, with the check's start-up and rates, plus the CPU-side scoring per
  cell and per job that ``scoring.json`` measured: the estimate for a grain (a job per run, sampler and spacing)
  that the committed slice, run a job per cell, did not measure.

Rates: the anchors measured on one H100 with torch 2.11 for a 6M-parameter UNet at 32×32 by default (training
2.8k img/s, eager fp32, batch 128; sampling 13k img·NFE/s, eager; Inception 4.3k img/s, float32, resize
included); ``--measured`` takes the check's own: the slice's training rate (the pipeline's whole loop), the
throughput benchmark's eager float32 sampling, Inception's float32 rate, CUDA's set-up and the start-up there.

The wall time is the largest of three bounds: the GPU's compute one cell at a time at these rates (jobs side
by side are not assumed to go faster, although small cells leave the GPU idle enough that they do); the job
seconds over the ``--slots`` that run at once; and, per rule, its job seconds over the jobs that the GPU's memory
lets run at once (``diffsteps.resources``: each job's ``gpu_mem_mb`` against ``--gpu-memory-mib`` less 2 GiB).

    python benchmarks/gpu_estimate.py [--preset gpu] [--measured benchmarks/results/gpu_check.json]
                                      [--train-img-per-s RATE] [--out FILE]

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

from diffsteps import cells, resources  # noqa: E402  (the planner of this checkout)
from diffsteps.config import to_plain  # noqa: E402
from diffsteps.data.datasets import DATASETS, resolve  # noqa: E402
from diffsteps.families import parse_run  # noqa: E402
from diffsteps.params import load_config, validate_mapping  # noqa: E402
from diffsteps.sampler_registry import SamplerSpec  # noqa: E402
from diffsteps.stages.nll import bound_cells  # noqa: E402
from diffsteps.workflow import STAGE  # noqa: E402
from default_study import copy_checkout  # noqa: E402
from startup import RULE_COMMAND  # noqa: E402

ANCHORS = {"train_img_per_s": 2800.0, "sample_img_nfe_per_s": 13000.0, "inception_img_per_s": 4300.0,
           "source": "issue 15's anchors: one H100, torch 2.11, a 6M-parameter UNet at 32x32 (plain PyTorch), eager"}
#: the rules whose jobs run on the GPU (their needs declare tensors: gpu=1 and gpu_mem_mb)
GPU_RULES = {name for name, stage in STAGE.items() if stage.needs.gpu}


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


def as_today(params: dict) -> dict:
    """A measured slice's params in today's layout: before issue 26 a fixed-T run (DDGAN) was listed under
    ``fixed_T: {methods, T}`` with its probe's ``probe_n`` in its options, and the bounded runs' replicates under
    ``evaluation.nll.replicates``; before issue 29 Inception had no ``precision`` (it ran in IEEE float32) and
    neither training nor sampling had ``compile`` (both ran eager). The same study, spelled as params.yaml spells it
    now."""
    import copy

    out = copy.deepcopy(params)
    fixed = out.pop("fixed_T", {"methods": [], "T": []})
    out["methods"] = [*out["methods"], *fixed["methods"]]
    probe_n = []
    for entry in out["method_config"].values():
        if entry["family"] == "ddgan":
            entry.setdefault("T", list(fixed["T"]) or [1])
            probe_n.append(entry.pop("probe_n", 256))
    out["evaluation"]["nll"].pop("replicates", None)
    out["evaluation"].setdefault("probe", {"n": max(probe_n, default=256)})
    out["evaluation"]["inception"].setdefault("precision", "float32")
    out["train"].setdefault("compile", False)
    out["sampling"].setdefault("compile", False)
    return out


def cell_work(cfg: dict, stage: str, wc: dict, n_train: int) -> dict[str, float]:
    """What one cell computes: training images, network evaluations (img·NFE) and Inception images
    (``n_train``: the size of the training split)."""
    s, ev = cfg["sampling"], cfg["evaluation"]
    inc, nll = ev["inception"], ev["nll"]
    if stage == "train":
        return {"train_images": cfg["train"]["images"], "gan": cells.family_of(cfg, wc["method"]).networks > 1}
    if stage == "probe":  # its own chain at the model's T, for every snapshot and the final weights
        steps = -(-cfg["train"]["images"] // cfg["train"]["batch_size"])
        points = parse_run(wc["method"], cfg["method_config"][wc["method"]]).probe_points(steps)
        return {"img_nfe": points * ev["probe"]["n"] * int(wc["budget"])}
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
    if stage == "nll":  # one job per run: every distinct chain of its defined cells
        method = cells.family_of(cfg, wc["method"])  # its declarations: which bounds it defines, continuous time
        chains = {cell["chain"]: cell["budget"] for cell in
                  bound_cells(nll["budgets"], nll["variances"], s["spacings"], cfg["noise"]["T"], method.continuous_time)
                  if method.bound_reason(cell["variance"]) is None}
        # VDM's bounds sample the time: draws an image whatever K; a discrete K-step bound evaluates every step
        return {"img_nfe": nll["n_images"] * sum(nll["draws"] if method.continuous_time else K for K in chains.values())}
    if stage == "solver_error":
        se = ev["solver_error"]
        nfe = sum(spec.nfe(K) for spec in map(SamplerSpec.parse, s["samplers"]) if spec.deterministic
                  for _ in s["spacings"] for K in s["budgets"])
        if cells.family_of(cfg, wc["method"]).continuous_time:  # Heun refined from K = 64 up to max_K (worst case)
            K, ref = 64, 0
            while K <= se["max_K"]:
                ref, K = ref + SamplerSpec.parse("heun").nfe(K), 2 * K
        else:
            ref = cfg["noise"]["T"]
        return {"img_nfe": se["n"] * (nfe + ref)}
    return {}


def rule_work(study, gan_factor: float) -> dict[str, dict[str, float]]:
    """Per rule of ``study`` (a StudyConfig): jobs, training images (a DDGAN image counts ``gan_factor``), img·NFE
    and Inception images, summed over its cells."""
    cfg, data = to_plain(study), study.data
    n_train = len(DATASETS[data.dataset](resolve(data)).images) - data.n_heldout  # the training split's size
    per = defaultdict(lambda: {"jobs": 0, "cells": 0, "train_images": 0.0, "img_nfe": 0.0, "inception_images": 0.0})
    for stage in cells.LAYOUT:
        for _, job_cells in cells.iter_jobs(cfg, stage):  # a sampling or scoring job holds many cells
            rule = per[stage]
            rule["jobs"] += 1
            for wc in job_cells:
                rule["cells"] += 1
                work = cell_work(cfg, stage, wc, n_train)
                rule["train_images"] += work.get("train_images", 0) * (gan_factor if work.get("gan") else 1)
                rule["img_nfe"] += work.get("img_nfe", 0)
                rule["inception_images"] += work.get("inception_images", 0)
    return {r: v for r, v in per.items() if v["jobs"]}


def compute_s(work: dict[str, float], rates: dict[str, float]) -> float:
    return (work["train_images"] / rates["train_img_per_s"] + work["img_nfe"] / rates["sample_img_nfe_per_s"]
            + work["inception_images"] / rates["inception_img_per_s"])


def slice_overheads(measured: dict, rates: dict[str, float], gan_factor: float) -> dict[str, float]:
    """Seconds per job beyond its compute at ``rates``, per rule, from the GPU check's slice: its job
    seconds (run with its slots sharing the GPU) less the compute of its cells, over its jobs. This holds the
    start-up, CUDA's set-up, loading, the CPU-side metrics and the waiting for the GPU beside other jobs. A slice
    stopped at the check's deadline counts the jobs that finished, each with its rule's mean compute."""
    part = measured["parts"]["slice"]
    work = rule_work(validate_mapping(as_today(part["params"])), gan_factor)
    out = {}
    # a check that ran a job per cell (its record has no grain, or "cell") measured seconds per cell: applied per
    # cell below, an upper bound for jobs of many cells (their start-up and loading are paid once)
    unit = "cells" if measured.get("grain", "cell") == "cell" else "jobs"
    for rule, timed in part["rules"].items():  # a rule's benchmark files are in a folder of its name
        done = timed["jobs"] / work[rule][unit] if rule in work else 0.0
        extra = timed["seconds"] - (compute_s(work[rule], rates) * done if rule in work else 0.0)
        out[rule] = max(0.0, extra / timed["jobs"])
    return out, unit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="gpu")
    ap.add_argument("--measured", type=Path, default=None,
                    help="a gpu_check.json: its throughputs, CUDA set-up, start-up and slice calibrate the estimate")
    ap.add_argument("--cuda-init-s", type=float, default=2.0,
                    help="CUDA context set-up per GPU job, in seconds (an assumption until the GPU check measures it)")
    ap.add_argument("--slots", type=int, default=8, help="GPU jobs at once (--resources gpu=SLOTS)")
    ap.add_argument("--gpu-memory-mib", type=float, default=81559,
                    help="the GPU's memory (default: an H100's 80 GB): --resources gpu_mem_mb is this less 2 GiB")
    ap.add_argument("--train-img-per-s", type=float, default=None,
                    help="a training rate to use instead of the measured one (say, the bare step's rate where the "
                         "loop has changed since the check), named in the output")
    ap.add_argument("--overheads", choices=("slice", "startup"), default="slice",
                    help="slice: each rule's seconds beyond compute as the check's slice measured them (per cell when "
                         "it ran a job per cell); startup: only the start-up, CUDA's set-up and the CPU-side scoring "
                         "that benchmarks/results/scoring.json measured per cell and per job (for a grain the slice "
                         "has not measured)")
    ap.add_argument("--out", type=Path, default=OUT / "gpu_estimate.json")
    ap.add_argument("--gan-factor", type=float, default=2.0,
                    help="a DDGAN training image's cost in DDPM training images (generator + discriminator)")
    args = ap.parse_args()
    rates, overheads, overhead_unit, measured = dict(ANCHORS), {}, "jobs", None
    # the gpu preset's Inception cell (N = 500 against 4,000 reference images), scored on the CPU
    scoring = next(r for r in json.loads((OUT / "scoring.json").read_text())["rows"] if r["size"].startswith("gpu"))
    startup = json.loads((OUT / "startup.json").read_text())
    startup_s, startup_source = startup["seconds"], f"benchmarks/results/startup.json ({startup['device']}, {startup['date']})"
    if args.measured:
        measured = json.loads(args.measured.read_text())
        rates.update({k: measured["rates"][k] for k in ("train_img_per_s", "sample_img_nfe_per_s",
                                                        "inception_img_per_s")})
        train = measured["parts"].get("slice", {}).get("train")
        if train:  # the pipeline's own training rate (EMA, logging, checkpoints included) over the bare step's
            rates["train_img_per_s"] = train["img_per_s"]
        rates["source"] = f"{args.measured} ({measured['device']}, {measured['date']})"
        args.cuda_init_s = measured["rates"].get("cuda_init_s", args.cuda_init_s)
        if "startup_seconds" in measured["rates"]:
            startup_s = {**startup_s, **measured["rates"]["startup_seconds"]}
            startup_source = f"{args.measured} where measured there, else {startup_source}"
        if "rules" in measured["parts"].get("slice", {}) and args.overheads == "slice":
            overheads, overhead_unit = slice_overheads(measured, rates, args.gan_factor)
    if args.train_img_per_s:  # after the slice's calibration, which must subtract the compute at the slice's rate
        rates["train_img_per_s"] = args.train_img_per_s
        rates["train_source"] = "--train-img-per-s"
    study = load_config(ROOT / "src/diffsteps/presets" / f"{args.preset}.yaml")
    per = rule_work(study, args.gan_factor)
    jobs = dry_run_jobs(args.preset)
    planned = {r: v["jobs"] for r, v in per.items()}
    if planned != jobs:
        raise SystemExit(f"the planner and the dry run disagree on the jobs per rule:\n planner {planned}\n "
                         f"dry run {jobs}")
    totals = resources.suggested_totals(args.gpu_memory_mib, cores=2 * args.slots)
    rows, startup_total, compute_total, job_total, memory_bound = {}, 0.0, 0.0, 0.0, 0.0
    for rule, v in sorted(per.items()):
        # a command the record predates (probe, issue 26) takes the slowest start-up recorded
        warm = startup_s.get(f"{RULE_COMMAND[rule]} (warm)", max(v for k, v in startup_s.items() if k.endswith("(warm)")))
        start = v["jobs"] * (warm + (args.cuda_init_s if rule in GPU_RULES else 0.0))
        # FID, KID and precision/recall on the CPU, as scoring.json measured them (a calibrated rule holds them)
        scoring_s = (v["cells"] * scoring["seconds_a_cell"][1] + v["jobs"] * scoring["once_per_process_seconds"][
            "kid_reference_blocks"]) if rule == "evaluate" and rule not in overheads else 0.0
        compute = compute_s(v, rates)
        # calibrated: the slice's seconds per job beyond compute (start-up included) where it ran this rule
        job_s = v[overhead_unit] * overheads[rule] + compute if rule in overheads else start + scoring_s + compute
        at_once = resources.concurrent_jobs(study, STAGE[rule].needs, totals)
        rows[rule] = {**v, "startup_s": round(start, 1), "cpu_scoring_s": round(scoring_s, 1),
                      "compute_s": round(compute, 1), "job_s": round(job_s, 1),
                      "calibrated": rule in overheads, "gpu_mem_mb": resources.gpu_mem_mb(study, STAGE[rule].needs),
                      "at_once": at_once}
        startup_total, compute_total, job_total = startup_total + start, compute_total + compute, job_total + job_s
        memory_bound = max(memory_bound, job_s / at_once)  # a rule whose jobs the GPU's memory holds to fewer slots
    wall = max(compute_total, job_total / args.slots, memory_bound)
    result = {"preset": args.preset, "date": datetime.date.today().isoformat(),
              "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True).stdout.strip(),
              "rates": rates, "cuda_init_s": args.cuda_init_s, "gan_factor": args.gan_factor,
              "startup_source": startup_source, "overheads": args.overheads,
              "overheads_per_job_s": {k: round(v, 2) for k, v in overheads.items()},
              "overheads_per": overhead_unit,
              "resources": totals, "jobs": sum(jobs.values()), "rules": rows, "slots": args.slots,
              "startup_minutes": round(startup_total / 60, 1), "compute_minutes": round(compute_total / 60, 1),
              "job_minutes": round(job_total / 60, 1),
              "wall_minutes": round(wall / 60, 1)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'rule':28} {'jobs':>6} {'compute s':>10} {'job s':>9} {'gpu_mem_mb':>10} {'at once':>8}")
    for rule, v in rows.items():
        print(f"{rule:28} {v['jobs']:>6} {v['compute_s']:>10} {v['job_s']:>9} {v['gpu_mem_mb']:>10} {v['at_once']:>8}"
              + ("" if v["calibrated"] else "  (start-up + compute: not in the slice)"))
    print(f"{'total':28} {result['jobs']:>6} {compute_total:>10.0f} {job_total:>9.0f}")
    print(f"one GPU of {args.gpu_memory_mib:.0f} MiB, --resources gpu={totals['gpu']} gpu_mem_mb={totals['gpu_mem_mb']}: "
          f"{result['wall_minutes']} min (GPU compute {result['compute_minutes']} min; job seconds summed "
          f"{result['job_minutes']} min, over {args.slots} slots {job_total / args.slots / 60:.1f} min; the memory's "
          f"bound {memory_bound / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
