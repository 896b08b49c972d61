"""The GPU memory figures (diffsteps.resources): derived from the study's sizes, covering the peaks that the GPU
check measured, and the arithmetic by which Snakemake shares one GPU between jobs."""

from __future__ import annotations

import json

import pytest

from diffsteps import resources
from diffsteps.models.unet import UNet, UNetSpec, count_parameters
from diffsteps.params import load_config, preset_path, validate_mapping

from .conftest import ROOT

GPU_CHECK = ROOT / "benchmarks/results/gpu_check.json"
#: how loose a figure may be against the measured peak of the network it models
TIGHT = {"train": 1.15, "sample": 1.15, "nll": 1.15, "solver_error": 1.15, "evaluate": 1.15,
         "reference_stats_inception": 1.15, "reference_stats": 1.15, "train_domain": 1.6}


def _measured():
    check = json.loads(GPU_CHECK.read_text())
    part = check["parts"]["slice"]
    return check["device"], validate_mapping(part["params"]), part["records"]


def test_every_figure_covers_the_peak_measured_on_the_gpu():
    """The records' gpu_peak_memory_mb of the gpu preset's slice (gpu_check.json) against the figures of the same
    params: never below, and within a few percent for the networks they model."""
    device, cfg, records = _measured()
    assert "H200" in device or "H100" in device
    checked = 0
    for stage, rec in records.items():
        peak = rec["gpu_peak_memory_mb"]
        if stage not in resources.GPU_STAGES:
            assert peak == 0, stage  # CPU-only stages never touch the GPU
            continue
        figure = resources.tensor_mib(cfg, stage)
        assert peak <= figure, f"{stage}: measured {peak} MiB > figure {figure:.0f}"
        if stage in TIGHT:
            assert figure <= TIGHT[stage] * peak, f"{stage}: figure {figure:.0f} MiB is loose against {peak}"
            checked += 1
        assert resources.gpu_mem_mb(cfg, stage) >= resources.CUDA_CONTEXT_MIB + peak
    assert checked == len(TIGHT)


def test_the_gpu_preset_on_an_h100_shares_it_within_its_memory():
    cfg = load_config(preset_path("gpu"))
    totals = resources.suggested_totals(81559, cores=16)  # an H100 (80 GB) beside 16 cores
    assert totals == {"gpu": 8, "gpu_mem_mb": 81559 - 2048}
    at_once = {stage: resources.concurrent_jobs(cfg, stage, totals) for stage in resources.GPU_STAGES}
    for stage, k in at_once.items():
        need = resources.gpu_mem_mb(cfg, stage)
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
        assert resources.gpu_mem_mb(wider, stage) > resources.gpu_mem_mb(cfg, stage), stage
    assert resources.gpu_mem_mb(bigger, "sample") > resources.gpu_mem_mb(cfg, "sample")
    for stage in ("prepare_data", "inception_weights", "report"):
        assert resources.job_resources(cfg, stage) == {} and resources.gpu_mem_mb(cfg, stage) == 0


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
    assert any(line.split()[:3] == ["evaluate", "14199", "5"] for line in out.splitlines())
