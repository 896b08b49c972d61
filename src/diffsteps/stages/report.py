"""``report``: the tidy CSV, the figures, the Markdown + HTML report of the current study and its DVC metrics.

It reads exactly the cells of the current params (:mod:`diffsteps.cells`), never a
glob of ``results/``, so leftovers of earlier configurations cannot leak into the report.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..cells import report_inputs
from ..config import SECTIONS, to_plain
from ..io import atomic_write_json, read_json
from ..reporting.aggregate import collect, write_csv
from ..reporting.dvc_metrics import study_metrics
from ..reporting.plots import plot_all
from ..reporting.plots_memorisation import plot_closest_pairs
from ..reporting.plots_solver import plot_solver_error, plot_steps_vs_straightness
from ..reporting.report import build_report, meta_from_config, unbounded_runs
from ..reporting.steps import answer, settings_from_config
from ..reporting.summary import run_label
from ..families import with_runs
from .common import add_common, setup


def register(sub) -> None:
    p = sub.add_parser("report", help="aggregate every cell into results.csv, figures and the report")
    add_common(p)
    p.add_argument("--out-dir", default="reports", type=Path)
    p.set_defaults(func=run)


def headline_metric(cfg) -> str:
    """STUDY.md: standard Inception FID where it scores every cell (the GPU study), else the domain FID."""
    inc = cfg.evaluation.inception
    return "inception_fid" if inc.weights is not None and inc.samplers is None and inc.nfe is None else "fid"


def run(args) -> int:
    cfg = with_runs(setup(args, SECTIONS), args.params)  # every section, and the runs of methods
    inputs = report_inputs(to_plain(cfg))
    train_records = [p for p in inputs["train"] if p.endswith(".json")]
    df = collect([*inputs["eval"], *inputs["nll"], *inputs["solver_error"], *inputs["floor"], *train_records])
    out = args.out_dir
    write_csv(df, out / "results.csv")
    # results/models/<dataset>/<model>/train<ts>/loss.csv → "<model> train<ts>" (a model is <run>[/T<T>]); the probe
    # curve of a probed model (results/probe/<dataset>/<model>/train<ts>/probe.json) goes beside its losses
    loss = {" ".join(Path(p).parts[3:-1]): p for p in inputs["train"] if p.endswith(".csv")}
    probes = {" ".join(Path(p).parts[3:-1]): read_json(p).get("curve") for p in inputs["probe"]}
    shutil.rmtree(out / "figures", ignore_errors=True)  # figures of an earlier configuration must not linger
    # one curve per run (the first training seed's record; the noise does not depend on the seed)
    skewness, log_snr, parameters = {}, {}, {}
    for p in train_records:
        rec = read_json(p)
        cell, result = rec.get("cell", {}), rec.get("result") or {}
        if cell.get("noise_skewness"):
            skewness.setdefault(run_label(cell), cell["noise_skewness"])
        if result.get("log_snr"):  # the first training seed's schedule stands for the run (for each T of a model per T)
            log_snr.setdefault(cell["method"] + (f" (T = {cell['T']})" if cell.get("T") else ""), result["log_snr"])
        if result.get("parameters"):
            parameters.setdefault(cell["method"], result["parameters"])
    figures = plot_all(df, out / "figures", loss, skewness, log_snr, {k: v for k, v in probes.items() if v})
    figures.update(plot_closest_pairs(df, inputs["pairs"], out / "figures"))
    figures.update(plot_solver_error(df, out / "figures"))
    steps = settings_from_config(cfg, headline_metric(cfg))
    answers = answer(df, steps)  # the steps-needed answer, once: the report, its figure and the DVC metrics read it
    figures.update(plot_steps_vs_straightness(answers, out / "figures"))
    grids = [Path(p) for p in inputs["samples"] if p.endswith("grid.png")]
    # the sizes come from the training records (VDM adds Fourier-feature input channels and its schedule to the
    # same UNet), so the report never builds a network and never imports torch
    network = (f"UNet, width {cfg.model.channels}, levels {list(cfg.model.channel_mult)}, "
               f"attention at {list(cfg.model.attn_resolutions)}; trained parameters per run: "
               + (", ".join(f"{m} {n:,}" for m, n in sorted(parameters.items())) or "none recorded"))
    build_report(df, figures, grids, out, meta_from_config(cfg, network=network), steps=steps,
                 match_margin=cfg.evaluation.claims.match_margin, unbounded=unbounded_runs(cfg), answers=answers)
    # the same answer as DVC metrics (dvc metrics show/diff, dvc exp show)
    atomic_write_json(out / "metrics.json", study_metrics(df, steps, answers))
    return 0
