import numpy as np
import pandas as pd
import pytest

from diffsteps.reporting.aggregate import ReportInputError
from diffsteps.reporting.plots import plot_all, plot_quality_vs_nfe, plot_training_curves, quality_cost_points
from diffsteps.reporting.schema import make_row, to_frame
from diffsteps.reporting.summary import pareto_front

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG_MAGIC)


def test_pareto_front_on_a_hand_example():
    cost = [1, 2, 3, 4, 2, 3, 1]
    quality = [10, 5, 5, 1, 8, 2, 10]
    # (1,10) twice: duplicates do not dominate each other; (2,5) beats (3,5) and (2,8); (3,2) and (4,1) trade off.
    assert pareto_front(cost, quality).tolist() == [True, True, False, True, False, True, True]


def test_pareto_front_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="equal length"):
        pareto_front([1, 2], [1])


def test_plot_all_writes_non_empty_pngs(results, tmp_path):
    loss = tmp_path / "loss.csv"
    pd.DataFrame({"step": range(50), "images_seen": np.arange(50) * 64, "loss": np.linspace(1, 0.1, 50),
                  "lr": 1e-3, "seconds": np.arange(50) * 0.1}).to_csv(loss, index=False)
    skew = {"ddgm [gamma(theta0=0.5)]": {"t": [1, 10, 1000], "skewness": [100.0, 23.0, 0.006]},
            "mixture [mixture(p=0.7, phi=0.5)]": {"t": [1, 1000], "skewness": [-0.5, -0.5]}}
    figures = plot_all(results, tmp_path / "figures", {"ddpm train0": loss}, skew)
    names = sorted(p.name.split("_digits")[0] for p in figures.values())
    assert names == ["fid_vs_cost", "fid_vs_nfe", "kid_vs_nfe", "nll_vs_nfe", "noise_skewness.png", "training_loss.png"]
    assert all(_is_png(p) for p in figures.values())
    assert not list((tmp_path / "figures").glob(".*.tmp"))


def _fid_rows(extractor, weights, offset):
    return [make_row(dataset="d", method="ddpm", sampler="ddim-eta0", spacing="uniform", nfe=k, seed=s, metric="fid",
                     value=offset + 10 / k + s, feature_extractor=extractor, weights_sha256=weights, n=100)
            for k in (10, 20) for s in (0, 1)]


def test_one_figure_per_feature_extractor_and_weights(tmp_path):
    df = to_frame(_fid_rows("domain", "aa", 0) + _fid_rows("domain", "bb", 5) + _fid_rows("inception", "cc", 50)
                  + [make_row(dataset="d", metric="fid", sampler="ddim-eta0", nfe=10, status="failed", reason="x",
                              feature_extractor="domain", weights_sha256="aa", n=100)])
    figures = plot_quality_vs_nfe(df, "fid", tmp_path)
    assert len(figures) == 3 and len(set(figures.values())) == 3
    assert all(_is_png(p) for p in figures.values())


def test_quality_cost_points_mark_the_front_per_context(results):
    points = quality_cost_points(results, "fid")
    front = points[points["on_front"]]
    # DDIM dominates both ancestral samplers at equal NFE (same cost, lower FID).
    assert set(front["sampler"]) == {"ddim-eta0"} and sorted(front["nfe"]) == [10, 20]
    assert len(points) == 6


def test_training_curves_reject_a_log_without_the_loss_columns(tmp_path):
    bad = tmp_path / "loss.csv"
    bad.write_text("step,loss\n1,0.5\n")
    with pytest.raises(ReportInputError, match="missing columns \\['images_seen', 'lr', 'seconds'\\]"):
        plot_training_curves({"run": bad}, tmp_path / "curves.png")


def test_quality_vs_nfe_puts_each_run_beside_its_gaussian_twin_per_sampler(tmp_path, monkeypatch):
    """One panel per (sampler, spacing); within a panel one line per run, with one colour per run across panels."""
    import matplotlib.pyplot as plt

    rows = [make_row(dataset="d", method=run, family=fam, noise=noise, sampler=sampler, spacing="uniform", nfe=k,
                     seed=s, metric="fid", value=10 / k + s, feature_extractor="x", weights_sha256="w", n=100)
            for run, fam, noise in (("ddpm", "ddpm", "gaussian"), ("ddgm", "ddgm", "gamma(theta0=0.5)"))
            for sampler in ("ddim-eta0", "ancestral-beta") for k in (10, 20) for s in (0, 1)]
    saved = []
    monkeypatch.setattr("diffsteps.reporting.plots.save_figure", lambda fig, path: saved.append(fig) or path)
    plot_quality_vs_nfe(to_frame(rows), "fid", tmp_path)
    (fig,) = saved
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert sorted(ax.get_title() for ax in panels) == ["ancestral-beta / uniform", "ddim-eta0 / uniform"]
    for ax in panels:
        labels = ax.get_legend_handles_labels()[1]
        assert labels == ["ddgm [gamma(theta0=0.5)]", "ddpm"]
    colours = [{line.get_label(): line.get_color() for line in ax.get_lines()} for ax in panels]
    assert colours[0]["ddpm"] == colours[1]["ddpm"] != colours[0]["ddgm [gamma(theta0=0.5)]"]
    plt.close(fig)
