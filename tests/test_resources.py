"""The GPU memory figures (diffsteps.resources): derived from the study's sizes, covering the peaks that the GPU
check measured, and the arithmetic by which Snakemake shares one GPU between jobs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest

from diffsteps import resources
from diffsteps.workflow import STAGE, STAGES
from diffsteps.models.unet import UNet, UNetSpec, count_parameters
from diffsteps.params import load_config, preset_path, validate_mapping

from .conftest import ROOT

#: the stages whose jobs run on a GPU: those whose needs declare tensors
GPU_STAGES = tuple(s.name for s in STAGES if s.needs.gpu)
GPU_CHECK = ROOT / "benchmarks/results/gpu_check.json"
THROUGHPUT = ROOT / "benchmarks/results/throughput.json"
#: how loose a figure may be against the measured peak of the network it models
TIGHT = {"train": 1.15, "sample": 1.15, "nll": 1.15, "solver_error": 1.15, "evaluate": 1.15,
         "reference_stats_inception": 1.15, "reference_stats": 1.15, "train_domain": 1.6}


def _as_today(params):
    """The slice's params in today's layout (benchmarks/gpu_estimate.py: the check ran before DDGAN's T moved)."""
    spec = importlib.util.spec_from_file_location("gpu_estimate", ROOT / "benchmarks" / "gpu_estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.as_today(params)


def _measured():
    check = json.loads(GPU_CHECK.read_text())
    part = check["parts"]["slice"]
    return check["device"], validate_mapping(_as_today(part["params"])), part["records"]


def test_every_figure_covers_the_peak_measured_on_the_gpu():
    """The records' gpu_peak_memory_mb of the gpu preset's slice (gpu_check.json) against the figures of the same
    params: never below, and within a few percent for the networks they model."""
    device, cfg, records = _measured()
    assert "H200" in device or "H100" in device
    checked = 0
    for stage, rec in records.items():
        peak = rec["gpu_peak_memory_mb"]
        if stage not in GPU_STAGES:
            assert peak == 0, stage  # CPU-only stages never touch the GPU
            continue
        figure = resources.tensor_mib(cfg, STAGE[stage].needs)
        assert peak <= figure, f"{stage}: measured {peak} MiB > figure {figure:.0f}"
        if stage in TIGHT:
            assert figure <= TIGHT[stage] * peak, f"{stage}: figure {figure:.0f} MiB is loose against {peak}"
            checked += 1
        assert resources.gpu_mem_mb(cfg, STAGE[stage].needs) >= resources.CUDA_CONTEXT_MIB + peak
    assert checked == len(TIGHT)


def test_the_gpu_preset_on_an_h100_shares_it_within_its_memory():
    cfg = load_config(preset_path("gpu"))
    totals = resources.suggested_totals(81559, cores=16)  # an H100 (80 GB) beside 16 cores
    assert totals == {"gpu": 8, "gpu_mem_mb": 81559 - 2048}
    at_once = {stage: resources.concurrent_jobs(cfg, STAGE[stage].needs, totals) for stage in GPU_STAGES}
    for stage, k in at_once.items():
        need = resources.gpu_mem_mb(cfg, STAGE[stage].needs)
        assert 1 <= k <= totals["gpu"] and k * need <= totals["gpu_mem_mb"], stage
        assert k == totals["gpu"] or (k + 1) * need > totals["gpu_mem_mb"], stage  # the tighter of the two binds
    assert at_once["sample"] == 8  # small cells: the slots bind
    assert at_once["evaluate"] == 5  # Inception at N = 500: the memory binds (5 × 14.2 GB ≤ 77.6 GB)
    assert at_once["reference_stats_inception"] == 2


def test_the_figures_follow_the_sizes():
    """A larger batch or a wider network declares more; a stage off the GPU declares nothing."""
    cfg = load_config(preset_path("gpu"))
    import dataclasses

    wider = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, channels=2 * cfg.model.channels))
    bigger = dataclasses.replace(cfg, sampling=dataclasses.replace(cfg.sampling, batch_size=2000, n_samples=2000))
    for stage in ("train", "sample", "nll", "solver_error"):
        needs = STAGE[stage].needs
        assert resources.gpu_mem_mb(wider, needs) > resources.gpu_mem_mb(cfg, needs), stage
    assert resources.gpu_mem_mb(bigger, STAGE["sample"].needs) > resources.gpu_mem_mb(cfg, STAGE["sample"].needs)
    for stage in ("prepare_data", "inception_weights", "report"):
        needs = STAGE[stage].needs
        assert resources.gpu_resources(cfg, needs) == {} and resources.gpu_mem_mb(cfg, needs) == 0
        assert set(resources.job_resources(cfg, needs)) == {"mem_mb", "runtime"}


def test_a_retry_asks_for_its_attempt_times_the_figures_and_one_gpu_slot():
    """Snakemake's retries (the profiles' ``retries``) cover a figure that falls short: attempt k asks k times."""
    cfg = load_config(preset_path("gpu"))
    for stage in STAGE.values():
        first = resources.job_resources(cfg, stage.needs)
        callables = resources.scaled(cfg, stage.needs)
        assert set(callables) == set(first), stage.name
        for attempt in (1, 2, 3):
            got = {k: f(None, attempt) for k, f in callables.items()}
            assert got == {k: v if k == "gpu" else attempt * v for k, v in first.items()}, (stage.name, attempt)


@pytest.mark.parametrize("preset", ["cpu", "gpu", "paper"], ids=["cpu-preset", "gpu-preset", "paper-preset"])
def test_parameter_bound_holds_for_every_preset(preset):
    cfg = load_config(preset_path(preset))
    C, H = resources.image_shape(cfg.data)
    n = count_parameters(UNet(UNetSpec.from_config(cfg.model, image_size=H, in_channels=C)))
    assert n <= resources.unet_parameters(cfg) <= 1.5 * n


def test_resources_command_prints_the_totals_for_a_gpu(capsys):
    from diffsteps.cli import main

    assert main(["resources", "--params", str(preset_path("gpu")), "--gpu-memory-mib", "81559", "--cores", "16"]) == 0
    out = capsys.readouterr().out
    assert "--resources gpu=8 gpu_mem_mb=79511" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.split()[0] in STAGE}
    assert set(rows) == set(STAGE)  # every stage, with its threads, mem_mb, runtime, gpu, gpu_mem_mb, jobs at once
    cfg = load_config(preset_path("gpu"))
    for stage, row in rows.items():
        need = resources.job_resources(cfg, STAGE[stage].needs)
        assert row == [str(v) for v in (STAGE[stage].needs.threads(cfg), need["mem_mb"], need["runtime"],
                                        need.get("gpu", "-"), need.get("gpu_mem_mb", "-"))] + row[5:], stage
    assert rows["evaluate"][4:] == ["14199", "5"] and rows["report"][3:] == ["-", "-", "-"]


#: what Snakemake's benchmark sees of a warm job: the client process alone (its work runs in the server's fork)
THIN_CLIENT_MB = 100


def _gpu_size_row(rows):
    return next(r for r in rows if r["size"] == "gpu" and r["mode"] == "eager")


def test_the_rates_are_the_measured_throughputs():
    """CPU_FLOPS_PER_THREAD and GPU_FLOPS are the gpu preset's training throughput (3 forwards an image) on the CPU
    (throughput.json, per thread) and on the H200 (gpu_check.json), to 10%."""
    cfg = load_config(preset_path("gpu"))
    flops = 3 * resources.unet_flops(cfg)
    cpu = json.loads(THROUGHPUT.read_text())
    per_thread = flops * _gpu_size_row(cpu["rows"])["diffsteps"]["train_img_per_s"] / cpu["threads"]
    gpu = flops * _gpu_size_row(json.loads(GPU_CHECK.read_text())["parts"]["throughput"]["rows"])["diffsteps"][
        "train_img_per_s"]
    assert resources.CPU_FLOPS_PER_THREAD == pytest.approx(per_thread, rel=0.1)
    assert resources.GPU_FLOPS == pytest.approx(gpu, rel=0.1)


def test_a_small_network_costs_its_flops_and_a_measured_time_an_image_on_the_cpu():
    """At the cpu preset's size (8×8) a forward is mostly per-image work beyond its FLOPs: the CPU rate's two terms
    give the measured sampling throughput (throughput.json, per thread) to 10%, and the gpu preset's size stays
    FLOP-bound (its per-image term under 1% of a forward)."""
    cpu = json.loads(THROUGHPUT.read_text())
    row = next(r for r in cpu["rows"] if r["size"] == "cpu" and r["mode"] == "eager")
    measured = cpu["threads"] / row["diffsteps"]["sample_img_nfe_per_s"]
    small, large = load_config(preset_path("cpu")), load_config(preset_path("gpu"))
    small, large = (dataclasses.replace(c, train=dataclasses.replace(c.train, device="cpu")) for c in (small, large))
    one = resources.rates(small, STAGE["sample"].needs, 1).forward
    assert one == pytest.approx(measured, rel=0.1)
    assert resources.rates(large, STAGE["sample"].needs, 1).forward * 0.01 > resources.CPU_SECONDS_PER_IMAGE
    assert resources.rates(small, STAGE["sample"].needs, 2).forward == pytest.approx(one / 2)


def test_unet_flops_counts_the_convolutions_of_a_real_forward():
    """The closed form against the UNet's own 3×3 convolutions on one image (counted with forward hooks): the bulk
    of its FLOPs, within 40% (the form takes every block at its level's widest)."""
    import torch

    cfg = load_config(preset_path("smoke"))
    C, H = resources.image_shape(cfg.data)
    net = UNet(UNetSpec.from_config(cfg.model, image_size=H, in_channels=C)).eval()
    counted = []

    def hook(module, inputs, output):
        if module.kernel_size == (3, 3):
            counted.append(2 * module.weight.numel() * output.shape[-1] * output.shape[-2])

    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, C, H, H), torch.zeros(1))
    assert resources.unet_flops(cfg) == pytest.approx(sum(counted), rel=0.4)


def test_memory_and_runtime_cover_what_the_gpu_slice_used():
    """The gpu preset's slice on the H200 (gpu_check.json): every rule's wall seconds a job, and its peak host memory
    (Snakemake's benchmark files), within what its jobs ask for. The slice ran warm (diffsteps.warm): where a rule's
    benchmark saw only the thin client (about 24 MB) its work ran in the server, unmeasured, so only the rules whose
    jobs' process trees held the work (a job that started the server, or one that ran cold) test the memory figure;
    tests/cluster measures every rule kind cold, inside SLURM jobs."""
    _, cfg, _ = _measured()
    rules = json.loads(GPU_CHECK.read_text())["parts"]["slice"]["rules"]
    measured = set()
    for rule, used in rules.items():
        need = resources.job_resources(cfg, STAGE[rule].needs)
        assert used["seconds"] / used["jobs"] <= 60 * need["runtime"], rule
        if used["max_rss_mb"] > THIN_CLIENT_MB:
            measured.add(rule)
            assert used["max_rss_mb"] <= need["mem_mb"], rule
    assert {"train", "sample", "train_domain", "reference_stats"} <= measured, measured


def test_a_cpu_study_asks_for_no_gpu_and_holds_its_tensors_in_host_memory():
    cfg = load_config(preset_path("gpu"))
    import dataclasses

    on_cpu = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device="cpu"))
    for stage in GPU_STAGES:
        needs = STAGE[stage].needs
        assert "gpu" in resources.job_resources(cfg, needs) and "gpu" not in resources.job_resources(on_cpu, needs)
    # sampling's tensors move to the host; training on 1 thread instead of a GPU takes far longer
    sample, train = STAGE["sample"].needs, STAGE["train"].needs
    assert resources.mem_mb(on_cpu, sample) >= resources.HOST_SLACK * resources.tensor_mib(cfg, sample)
    assert resources.runtime_min(on_cpu, train, 1) > 100 * resources.runtime_min(cfg, train, 1)
    assert resources.runtime_min(on_cpu, train, 8) < resources.runtime_min(on_cpu, train, 1)
