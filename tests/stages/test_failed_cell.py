"""A diverging training run becomes a failed cell: every downstream stage records the failure with
its error, exits 0, and the report lists the cell as failed (Snakemake --keep-going semantics)."""

import json
import subprocess
import sys

import yaml

from ..conftest import SMOKE


def cli(tmp, *args):
    res = subprocess.run([sys.executable, "-m", "diffsteps", *args, "--params", str(tmp / "params.yaml")], cwd=tmp,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def test_diverged_training_flows_to_a_failed_row(tmp_path):
    raw = yaml.safe_load(SMOKE.read_text())
    raw["train"].update(lr=1e12, grad_clip=0.0, images=640, checkpoint_every=2, warmup_images=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    data, model = tmp_path / "results/data/digits", tmp_path / "results/models/digits/ddpm/train0"
    cli(tmp_path, "prepare-data", "--out-dir", str(data))
    cli(tmp_path, "train", "--method", "ddpm", "--train-seed", "0", "--data-dir", str(data), "--out-dir", str(model),
        "--no-progress")
    rec = json.loads((model / "train.json").read_text())
    assert rec["status"] == "failed" and "not finite" in rec["error"]
    samples = tmp_path / "s"
    cli(tmp_path, "sample", "--method", "ddpm", "--sampler", "ddim-eta0", "--spacing", "uniform",
        "--cell", "4", "0", "0", str(model), str(samples))
    srec = json.loads((samples / "sample.json").read_text())
    assert srec["status"] == "failed" and "training failed" in srec["error"]
    assert (samples / "grid.png").stat().st_size > 0
    nll = tmp_path / "nll.json"
    cli(tmp_path, "nll", "--method", "ddpm", "--model-dir", str(model), "--data-dir", str(data), "--train-seed", "0",
        "--out", str(nll))
    rows = json.loads(nll.read_text())["rows"]
    assert all(r["value"] is None for r in rows)
    # every bound cell DDPM defines is failed; its T = ∞ cell stays "not defined" (a discrete-time model)
    assert {(r["sampler"] == "continuous", r["status"]) for r in rows} == {(False, "failed"), (True, "not_defined")}

    from diffsteps.reporting.aggregate import collect

    df = collect([model / "train.json", nll])
    failed = df[df.status == "failed"]
    assert len(failed) >= 1 and failed.reason.str.contains("not finite").all()


def test_collapsed_gan_is_a_failed_cell_with_its_curves_and_last_good_checkpoint(tmp_path):
    """A DDGAN whose generator cannot move (lr_g ≈ 0) loses to its discriminator: once D's accuracy is
    pinned at 1 for collapse_steps steps the cell stops with that error, keeps its last checkpoint (written
    before the failing step), writes the curves logged so far, and downstream cells record the failure."""
    import pandas as pd
    import torch

    from diffsteps.reporting.plots_training import plot_training_diagnostics

    raw = yaml.safe_load(SMOKE.read_text())
    raw["train"].update(images=32 * 200, batch_size=32, checkpoint_every=5, log_every=5, warmup_images=0)
    raw["method_config"]["ddgan"].update(lr_g=1e-12, lr_d=0.01, collapse_steps=8, probe_every=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    data, model = tmp_path / "results/data/digits", tmp_path / "results/models/digits/ddgan/T1/train0"
    cli(tmp_path, "prepare-data", "--out-dir", str(data))
    from diffsteps.workflow import STAGE

    # as the rule calls it: the stage and the params keys its record saves (those of the run's family)
    keys = STAGE["train"].param_keys(raw, "ddgan")
    cli(tmp_path, "train", "--method", "ddgan", "--T", "1", "--train-seed", "0", "--data-dir", str(data),
        "--out-dir", str(model), "--no-progress", "--stage", "train", "--keys", *keys)
    rec = json.loads((model / "train.json").read_text())
    assert rec["status"] == "failed" and "discriminator accuracy pinned at 1" in rec["error"], rec["error"]
    # the record saves the params of the stage that ran: DDGAN reads no noise.*, each of its options but its list of T
    assert rec["stage"] == "train" and "noise" not in rec["config"] and "method_config.ddgan.T" not in rec["config"]
    assert {"method_config.ddgan.lr_g", "method_config.ddgan.collapse_steps"} <= set(rec["config"])
    failed_at = int(rec["error"].split("diverged at step ")[1].split(":")[0])
    log = pd.read_csv(model / "loss.csv")
    assert {"d_loss", "r1", "d_accuracy"} <= set(log.columns) and 0 < len(log) and log.step.max() < failed_at
    assert log.d_accuracy.iloc[-1] == 1.0
    (checkpoint,) = (tmp_path / ".cache/resume/digits/ddgan/T1/train0").glob("*/checkpoint.pt")  # kept: the run failed
    assert 0 < torch.load(checkpoint, weights_only=True)["step"] < failed_at
    assert plot_training_diagnostics({"ddgan T1 train0": model / "loss.csv"}, tmp_path / "d.png").stat().st_size > 0
    samples = tmp_path / "s"
    cli(tmp_path, "sample", "--method", "ddgan", "--sampler", "ancestral-betatilde", "--spacing", "uniform",
        "--cell", "1", "0", "0", str(model), str(samples))
    srec = json.loads((samples / "sample.json").read_text())
    assert srec["status"] == "failed" and "training failed" in srec["error"]

    from diffsteps.reporting.aggregate import collect

    df = collect([model / "train.json"])
    assert (df.status == "failed").any() and df[df.status == "failed"].reason.str.contains("pinned").all()
