"""Study utilities: ``preset`` (write params.yaml from a named preset), ``validate``, ``dvc-yaml``, ``resources``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .. import resources
from ..config import read_raw
from ..features.inception_source import check_weights_spec
from ..io import atomic_write_text
from ..params import available_presets, load_config, preset_path
from ..reruns import architecture_path, with_rerun_table
from ..workflow import STAGE, dvc_yaml_text, sync_dvc_yaml


def register(sub) -> None:
    p = sub.add_parser("preset", help="write params.yaml from a named preset (cpu, gpu, paper, smoke)")
    p.add_argument("name", help=f"one of {available_presets()}")
    p.add_argument("--params", default="params.yaml", type=Path)
    p.set_defaults(func=run_preset)
    p = sub.add_parser("validate", help="validate params.yaml and print the resolved study")
    p.add_argument("--params", default="params.yaml", type=Path)
    p.set_defaults(func=run_validate)
    p = sub.add_parser("dvc-yaml", help="regenerate what the stage table in diffsteps.workflow generates: dvc.yaml (for "
                                        "the runs of params.yaml) and the rerun table of docs/ARCHITECTURE.md")
    p.add_argument("--params", default="params.yaml", type=Path)
    p.add_argument("--out", default="dvc.yaml", type=Path)
    p.add_argument("--check", action="store_true", help="exit 1 when a file differs from the generated text")
    p.set_defaults(func=run_dvc_yaml)
    p = sub.add_parser("resources", help="what each stage's job asks for (threads, host memory, wall time, GPU slot "
                                         "and memory), and the --resources to give Snakemake for one GPU")
    p.add_argument("--params", default="params.yaml", type=Path)
    p.add_argument("--gpu-memory-mib", type=float, default=None, help="the GPU's memory (default: nvidia-smi's)")
    p.add_argument("--cores", type=int, default=os.cpu_count(), help="the machine's cores (default: this one's)")
    p.set_defaults(func=run_resources)


def run_preset(args) -> int:
    """Presets are selected *through* params.yaml: both tools read the values written here, so results
    and dvc.lock can never disagree about the values that produced them."""
    text = preset_path(args.name).read_text()
    load_config(preset_path(args.name))  # a preset is itself validated before it replaces params.yaml
    atomic_write_text(args.params, text)
    print(f"params.yaml now holds preset {args.name!r}")
    if sync_dvc_yaml(read_raw(args.params), args.params.parent):  # its runs are dvc.yaml's stage groups
        print("dvc.yaml rewritten for its runs")
    return 0


def run_validate(args) -> int:
    cfg = load_config(args.params)
    check_weights_spec(cfg.evaluation.inception.weights)  # the Inception weights must be obtainable here
    print(f"{args.params}: valid (preset {cfg.preset!r}, dataset {cfg.data.dataset!r}, methods {list(cfg.methods)})")
    return 0


def run_dvc_yaml(args) -> int:
    load_config(args.params)  # the runs must be valid before their stages are written
    docs = architecture_path(args.out.parent)
    generated = {args.out: dvc_yaml_text(read_raw(args.params))}
    if docs.exists():  # the checkout's notes (a study's copy of the workflow may have none)
        generated[docs] = with_rerun_table(docs.read_text())
    if args.check:
        stale = [path for path, text in generated.items() if path.read_text() != text] if args.out.exists() else [args.out]
        for path in generated:
            print(f"{path}: {'DIFFERS from the stage table; run python -m diffsteps dvc-yaml' if path in stale else 'up to date'}")
        return 1 if stale else 0
    for path, text in generated.items():
        atomic_write_text(path, text)
    return 0


def _gpu_memory_mib() -> float | None:
    """The first GPU's memory as nvidia-smi reports it, or None without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
        return float(out.stdout.split()[0]) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def run_resources(args) -> int:
    cfg = load_config(args.params)
    memory = args.gpu_memory_mib or _gpu_memory_mib()
    totals = resources.suggested_totals(memory, args.cores) if memory else None
    print(f"{'stage':28} {'threads':>7} {'mem_mb':>7} {'runtime':>8} {'gpu':>3} {'gpu_mem_mb':>10} "
          f"{'jobs at once':>13}")
    for stage, needs in ((name, s.needs) for name, s in STAGE.items()):
        need = resources.job_resources(cfg, needs)
        at_once = resources.concurrent_jobs(cfg, needs, totals) if totals and "gpu" in need else "-"
        print(f"{stage:28} {needs.threads(cfg):>7} {need['mem_mb']:>7} {need['runtime']:>8} "
              f"{need.get('gpu', '-'):>3} {need.get('gpu_mem_mb', '-'):>10} {at_once:>13}")
    print("(runtime in minutes: what a batch system such as SLURM is told, README \"Cluster\")")
    if not any(resources.on_gpu(cfg, s.needs) for s in STAGE.values()):
        return 0  # train.device: cpu, no job takes a GPU
    if totals is None:
        print("no GPU found (nvidia-smi): give its memory with --gpu-memory-mib to get the --resources to use")
        return 0
    print(f"one GPU of {memory:.0f} MiB and {args.cores} cores: snakemake --cores all --resources "
          f"gpu={totals['gpu']} gpu_mem_mb={totals['gpu_mem_mb']}")
    return 0
