"""The benchmark scripts run in the suite in their tiny modes, so that they cannot rot; their figures here are
not measurements."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from .conftest import ROOT


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_times_both_networks_of_one_layout(tmp_path):
    out = tmp_path / "throughput.json"
    assert _script("throughput").main(["--tiny", "--sizes", "cpu", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["mode"] for r in rows] == ["eager", "pipeline"]  # on a CPU: eager, and the study's own step
    for row in rows:
        # the diffusers mirror has exactly the study UNet's parameters: the same layout, so the ratio compares code
        assert row["diffsteps"]["parameters"] == row["diffusers"]["parameters"] > 0
        for key in ("train_img_per_s", "sample_img_nfe_per_s"):
            assert row["diffsteps"][key] > 0 and row["diffusers"][key] > 0 and row[f"ratio_{key}"] > 0


def test_stacked_mode_steps_every_replicate_from_its_own_initialisation():
    """The stacked mode times what it says: replicate r starts from the network seeded r (one network's parameter
    count each) and one step moves every replicate's parameters."""
    from diffsteps.models.unet import UNet

    tp = _script("throughput")
    spec, _, _ = tp.spec_of("smoke")
    parameters, step, params = tp.stacked_train_step(spec, 2, 3, torch.device("cpu"))
    for seed in (0, 1):
        torch.manual_seed(seed)
        alone = dict(UNet(spec).named_parameters())
        assert all(torch.equal(params[k][seed], v) for k, v in alone.items())
    assert parameters == sum(v.numel() for v in alone.values())
    before = {k: v.detach().clone() for k, v in params.items()}
    step()
    for seed in (0, 1):
        assert any(not torch.equal(params[k][seed], before[k][seed]) for k in params)


def test_gpu_estimate_counts_each_cells_work(smoke_cfg):
    from diffsteps import cells
    from diffsteps.config import to_plain

    est = _script("gpu_estimate")
    cfg = to_plain(smoke_cfg)
    sample = next(cells.iter_wildcards(cfg, "sample"))
    nfe = est.SamplerSpec.parse(sample["sampler"]).nfe(int(sample["budget"]))
    assert est.cell_work(cfg, "sample", sample, 100) == {"img_nfe": cfg["sampling"]["n_samples"] * nfe}
    train = next(cells.iter_wildcards(cfg, "train"))
    assert est.cell_work(cfg, "train", train, 100)["train_images"] == cfg["train"]["images"]
    # a run's bound job: every distinct chain of its defined cells (VDM: its draws an image at σ² = β̃ and T = ∞)
    nll = cfg["evaluation"]["nll"]
    jobs = {wc["method"]: est.cell_work(cfg, "nll", wc, 100)["img_nfe"] for wc in cells.iter_wildcards(cfg, "nll")}
    assert set(jobs) == set(nll["methods"]) == {"ddpm", "vdm"}
    spacings = len(cfg["sampling"]["spacings"])
    assert jobs["ddpm"] == nll["n_images"] * len(nll["variances"]) * spacings * sum(nll["budgets"])
    assert jobs["vdm"] == nll["n_images"] * nll["draws"] * (len(nll["budgets"]) * spacings + 1)


@pytest.mark.slow
def test_gpu_check_runs_every_part_in_its_tiny_mode(tmp_path):
    """Every part of the GPU check on the CPU at toy sizes: the slice runs the smoke preset's DDPM slice end to end
    through Snakemake, and torch.compile (minutes on a CPU) is stopped at its deadline without losing the rest."""
    assert _script("gpu_check").main(["--tiny", "--out-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = result["parts"]
    assert set(parts) == {"environment", "throughput", "gpu_tests", "features", "startup", "slice", "compile"}
    assert not any("error" in p or "skipped" in p for p in parts.values())
    assert {r["mode"] for r in parts["throughput"]["rows"]} == {"eager", "pipeline", "stacked"}
    # the GPU tests are collected and run, and skip here: there is no CUDA device
    assert parts["gpu_tests"]["returncode"] == 0 and "skipped" in parts["gpu_tests"]["summary"]
    assert parts["slice"]["returncode"] == 0 and parts["slice"]["report_written"]
    assert parts["slice"]["rules"]["sample"]["jobs"] == parts["slice"]["records"]["sample"]["records"] == 2
    assert parts["compile"]["returncode"] == {"cpu": None}  # stopped at the deadline
    assert parts["startup"]["seconds"]["sample (warm)"] < parts["startup"]["seconds"]["sample (cold)"]
    assert result["device"].startswith("cpu") and (tmp_path / "gpu_check.md").read_text().startswith("# GPU check")


def test_gpu_estimate_calibrates_each_jobs_cost_on_the_measured_slice():
    """The slice that the GPU check ran: each folder's seconds per job beyond the compute of its cells, which the
    estimate then charges every job of the full preset (every cell, for a check that ran a job per cell: the
    committed one predates jobs of many cells)."""
    est = _script("gpu_estimate")
    measured = json.loads((ROOT / "benchmarks/results/gpu_check.json").read_text())
    rates = {**measured["rates"], "train_img_per_s": measured["parts"]["slice"]["train"]["img_per_s"]}
    overheads, unit = est.slice_overheads(measured, rates, 2.0)
    assert unit == ("cells" if measured.get("grain", "cell") == "cell" else "jobs")
    timed = measured["parts"]["slice"]["rules"]
    assert set(overheads) == set(timed)
    for folder, per_job in overheads.items():
        assert 0 <= per_job * timed[folder]["jobs"] <= timed[folder]["seconds"], folder
    # the slice's one training run: its job seconds less its images at the pipeline's own rate
    train = measured["parts"]["slice"]["train"]
    assert abs(overheads["train"] - (timed["train"]["seconds"] - train["images"] / train["img_per_s"])) < 0.5
    # a slice stopped at the deadline: the finished jobs carry their share of the rule's compute
    evaluate = est.rule_work(est.validate_mapping(est.as_today(measured["parts"]["slice"]["params"])), 2.0)["evaluate"]
    assert timed["evaluate"]["jobs"] <= evaluate[unit]
    share = est.compute_s(evaluate, rates) * timed["evaluate"]["jobs"] / evaluate[unit]
    assert abs(overheads["evaluate"] * timed["evaluate"]["jobs"] + share - timed["evaluate"]["seconds"]) < 0.5


def test_scoring_times_both_implementations_and_they_agree(tmp_path):
    out = tmp_path / "scoring.json"
    assert _script("scoring").main(["--tiny", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert all(s > 0 for s in row["seconds_a_cell"]) and row["ratio_a_cell"] > 0
    agreement = row["agreement_rel"]
    assert all(agreement[k] <= 1e-6 for k in ("fid", "kid_vs_float64", "precision", "recall")), agreement


def test_dvc_sync_times_commit_at_each_size(tmp_path):
    out = tmp_path / "dvc_sync.json"
    assert _script("dvc_sync").main(["--tiny", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["stages"] for r in rows] == [2]
    assert all(r[k] > 0 for r in rows for k in ("commit_all_first_s", "commit_all_again_s", "commit_one_s",
                                                "lock_write_dvc_s", "lock_write_ours_s"))


def test_the_whole_study_is_packed_only_on_request_and_never_half(tmp_path):
    """``--parts study`` is opt-in (the default parts leave it out); its report folder is copied whole with
    study.json beside it, replacing an older one, and no staging folder is left."""
    check = _script("gpu_check")
    assert "study" in check.PARTS and "study" not in check.DEFAULT_PARTS
    work, dest = tmp_path / "work", tmp_path / "out" / "gpu_study"
    (work / "reports/figures").mkdir(parents=True)
    for name in ("report.md", "results.csv", "figures/fid_vs_nfe.png"):
        (work / "reports" / name).write_text(name)
    dest.mkdir(parents=True)
    (dest / "stale.md").write_text("an older study")
    files = check.pack_report(work, dest, {"device": "NVIDIA H100", "commit": "abc", "date": "2026-12-07"})
    assert files == ["figures/fid_vs_nfe.png", "report.md", "results.csv", "study.json"]
    assert json.loads((dest / "study.json").read_text())["device"] == "NVIDIA H100"
    assert (dest / "results.csv").read_text() == "results.csv" and not (dest / "stale.md").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["gpu_study"]
