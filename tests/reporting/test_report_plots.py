import numpy as np
import pandas as pd
import pytest

from diffsteps.reporting import plots, plots_training
from diffsteps.reporting.aggregate import ReportInputError
from diffsteps.reporting.plots import plot_all, plot_quality_vs_nfe, plot_training_curves, quality_cost_points
from diffsteps.reporting.schema import to_frame
from diffsteps.rows import make_row
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


def test_log_snr_figure_shares_one_line_between_identical_schedules(tmp_path, monkeypatch):
    """DDPM's schedule is shared by its Gaussian twins (one line); VDM's learned curve has its
    initial curve beside it; both panels (γ and SNR = e^{−γ}) are drawn."""
    from diffsteps.reporting.plots import plot_log_snr

    t = np.linspace(0, 1, 11)
    ddpm = {"t": t[1:].tolist(), "gamma": np.linspace(-9, 10, 10).tolist()}
    curves = {"ddpm": ddpm, "ddgm": dict(ddpm),
              "vdm": {"t": t.tolist(), "gamma": (-13 + 18 * t**1.5).tolist(), "init": (-13.3 + 18.3 * t).tolist()}}
    captured = {}
    real_save = plots.save_figure

    def spy(fig, path):
        captured["lines"] = [[line.get_label() for line in ax.get_lines()] for ax in fig.axes]
        captured["scales"] = [ax.get_yscale() for ax in fig.axes]
        return real_save(fig, path)

    monkeypatch.setattr(plots_training, "save_figure", spy)
    path = plot_log_snr(curves, tmp_path / "log_snr.png")
    assert _is_png(path)
    assert captured["lines"] == [["ddgm, ddpm", "vdm", "vdm at initialisation"]] * 2
    assert captured["scales"] == ["linear", "log"]


def test_nll_figure_draws_the_continuous_bound_and_names_undefined_variances(tmp_path, monkeypatch):
    """A T = ∞ bound has no NFE: it is a horizontal line beside the totals; a run whose bound is defined
    for one variance only is named with the other variance in the footnote."""
    def row(method, variance, nfe, value, status="ok", sampler=None):
        return make_row(dataset="d", method=method, family=method, sampler=sampler or f"ancestral-{variance}",
                        spacing=None if sampler else "uniform", variance=variance, nfe=nfe, train_seed=0, seed=0,
                        metric="nll_total", value=value, std=0.1 if value else None, n=100, status=status,
                        reason=None if value else "not VDM's")

    df = to_frame([row("ddpm", "betatilde", 10, 5.0), row("ddpm", "beta", 10, 6.0), row("vdm", "betatilde", 10, 4.0),
                   row("vdm", "beta", 10, None, "not_defined"), row("vdm", None, None, 3.2, sampler="continuous")])
    seen = {}
    real_save = plots.save_figure

    def spy(fig, path):
        seen["labels"] = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        seen["text"] = " ".join(t.get_text() for t in fig.texts)
        return real_save(fig, path)

    monkeypatch.setattr(plots, "save_figure", spy)
    plots.plot_nll_vs_nfe(df, tmp_path)
    assert sum(label.startswith("vdm: T = ∞ (3.2") for label in seen["labels"]) == 1
    assert {"ddpm / σ² = beta / uniform", "ddpm / σ² = betatilde / uniform", "vdm / σ² = betatilde / uniform"} <= set(
        seen["labels"])  # every total on one panel
    assert "for: vdm (σ² = beta)" in seen["text"]


def test_runs_with_a_chain_of_their_own_are_drawn_on_every_panel(tmp_path, monkeypatch):
    """A DDGAN run has one sampler on its own chain per T: its points join every sampler's panel (same
    axes as the diffusion runs), and it adds no panel of its own."""
    rows = [make_row(dataset="d", method="ddpm", family="ddpm", noise="gaussian", sampler=sampler, spacing="uniform",
                     nfe=k, seed=s, metric="fid", value=10 / k + s, feature_extractor="x", weights_sha256="w", n=100)
            for sampler in ("ddim-eta0", "ancestral-beta") for k in (10, 20) for s in (0, 1)]
    rows += [make_row(dataset="d", method="ddgan", family="ddgan", noise="gaussian-vpsde(nz=8)",
                      sampler="ancestral-betatilde", spacing="uniform", nfe=k, seed=s, metric="fid", value=3 / k + s,
                      feature_extractor="x", weights_sha256="w", n=100) for k in (1, 4) for s in (0, 1)]
    saved = []
    monkeypatch.setattr("diffsteps.reporting.plots.save_figure", lambda fig, path: saved.append(fig) or path)
    plot_quality_vs_nfe(to_frame(rows), "fid", tmp_path)
    (fig,) = saved
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert sorted(ax.get_title() for ax in panels) == ["ancestral-beta / uniform", "ddim-eta0 / uniform"]
    for ax in panels:
        labels = ax.get_legend_handles_labels()[1]
        assert labels == ["ddgan [gaussian-vpsde(nz=8)] (one model per T, own sampler)", "ddpm"]


def test_the_headline_metric_has_its_own_cost_front_with_its_floor(tmp_path, monkeypatch):
    """Inception FID gets its own quality-vs-cost figure (first), beside the domain one, each with its own floor."""
    contexts = {"fid": ("domain", "d" * 64, 360, 2.0), "inception_fid": ("inception", "e" * 64, 100, 30.0)}
    cell = dict(dataset="d", method="ddpm", family="ddpm", noise="gaussian", sampler="ddim-eta0", spacing="uniform")
    rows = []
    for metric, (extractor, weights, n, floor) in contexts.items():
        rows.append(make_row(dataset="d", sampler="real-data", seed=0, metric=metric, value=floor,
                             feature_extractor=extractor, weights_sha256=weights, n=n))
        rows += [make_row(**cell, nfe=k, seed=s, metric=metric, value=floor + 10 / k + s, feature_extractor=extractor,
                          weights_sha256=weights, n=n) for k in (10, 20) for s in (0, 1)]
    rows += [make_row(**cell, nfe=k, seed=s, metric="sampling_seconds_per_image", value=0.001 * k)
             for k in (10, 20) for s in (0, 1)]
    saved = {}
    monkeypatch.setattr("diffsteps.reporting.plots.save_figure", lambda fig, path: saved.setdefault(path.name, fig)
                        and path)
    figures = plot_all(to_frame(rows), tmp_path)
    cost = [p.name.split("_d-")[0] for p in figures.values() if "_vs_cost_" in p.name]
    assert cost == ["inception_fid_vs_cost", "fid_vs_cost"]
    for name, fig in saved.items():
        if "_vs_cost_" in name:
            n = 100 if name.startswith("inception") else 360
            assert f"real-data floor (held-out, N={n})" in fig.axes[0].get_legend_handles_labels()[1]
            assert fig.axes[0].get_ylabel().startswith("Inception FID@100" if n == 100 else "FID@360")


def test_a_run_at_one_nfe_shows_its_spread_as_an_error_bar(tmp_path, monkeypatch):
    """A band around a single point has no width: a run with one NFE in a panel gets ± sd bars instead."""
    from matplotlib.container import ErrorbarContainer

    rows = [make_row(dataset="d", method="ddpm", family="ddpm", noise="gaussian", sampler="ddim-eta0", spacing="uniform",
                     nfe=k, seed=s, metric="fid", value=10 / k + s, feature_extractor="x", weights_sha256="w", n=100)
            for k in (10, 20) for s in (0, 1)]
    rows += [make_row(dataset="d", method="ddgan", family="ddgan", noise="gaussian-vpsde()", sampler="ancestral-betatilde",
                      spacing="uniform", nfe=4, seed=s, metric="fid", value=v, feature_extractor="x", weights_sha256="w",
                      n=100) for s, v in ((0, 1.0), (1, 3.0))]
    saved = []
    monkeypatch.setattr("diffsteps.reporting.plots.save_figure", lambda fig, path: saved.append(fig) or path)
    plot_quality_vs_nfe(to_frame(rows), "fid", tmp_path)
    (ax,) = [ax for ax in saved[0].axes if ax.get_visible() and ax.get_title()]
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]  # ddgan's; ddpm's two NFE get a band
    (segment,) = bars.lines[2][0].get_segments()
    np.testing.assert_allclose(segment, [[4, 2 - np.sqrt(2)], [4, 2 + np.sqrt(2)]])
