import re

import pytest

from diffsteps.reporting.plots import plot_quality_vs_nfe
from diffsteps.reporting.report import ReportError, build_report
from diffsteps.reporting.steps import Settings

META = dict(preset="cpu", dataset="digits", train_images=192000, n_samples=360, sampling_seeds=[0, 1, 2],
            train_seeds=[0], min_accuracy=0.99)


@pytest.fixture(scope="module")
def built(results, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report")
    figures = plot_quality_vs_nfe(results, "fid", tmp_path / "reports" / "figures")
    grid = tmp_path / "results/samples/digits/ddpm/ddim-eta0-uniform/K10/train0-seed0/grid.png"
    grid.parent.mkdir(parents=True)
    grid.write_bytes(next(iter(figures.values())).read_bytes())
    steps = Settings(0.1, 0.02, 200, 0, "ancestral-betatilde", "uniform", 1000,
                     samplers=("ddim-eta0", "ancestral-betatilde", "ancestral-beta"))
    md, html = build_report(results, figures, [grid], tmp_path / "reports", META, steps=steps)
    return md.read_text(), html.read_text()


def test_report_reads_top_down_and_opens_with_the_steps_needed_table(built):
    md, _ = built
    order = [md.index(h) for h in ("## How many steps does each method need?", "## Published claims", "## Figures",
                                   "## Sample quality", "## Likelihood bound")]
    assert order == sorted(order)
    first_table = md.index("|")
    assert order[0] < first_table < order[1]
    assert "NFE_δ" in md[order[0]:order[1]] and "| run | training seeds | ODE limit fid (cell) | chain limit fid | best of solvers (NFE) | excess path length | ddim-eta0 |" in md


def test_report_lists_the_failed_cell_with_its_error(built):
    for text in built:
        assert "RuntimeError: sampler diverged (NaN at step 3)" in text
        assert "digits / ddpm / ancestral-beta / quad" in text
        assert "ddpm / train 1" in text and "FloatingPointError: loss is NaN" in text


def test_undefined_nll_says_not_defined_with_the_reason(built):
    md, _ = built
    # one line per run with its reason, never a blank, a zero, or one row per cell
    assert not any(l.startswith("| digits | mixture") for l in md.splitlines() if "nll" in l or "not defined" in l)
    (line,) = [l for l in md.splitlines() if l.startswith("- mixture: not defined")]
    assert "no Markov forward process has the mixture marginals" in line and "bound cells" in line


def test_report_states_what_is_not_comparable_and_not_computed(built):
    md, _ = built
    assert "NOT comparable to published CIFAR-10 Inception FID" in md
    assert "Inception FID: not computed: no Inception weights." in md  # the reason's own prefix is not doubled
    assert "UNRELIABLE" in md  # accuracy 0.97 < min_accuracy 0.99
    assert "| supported |" in md and "not evaluated: no fid rows match side a" in md
    assert "Published anchors (CIFAR-10 / published — not comparable)" in md


def test_html_is_self_contained(built):
    _, html = built
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html) and "@import" not in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 2 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "ddpm/ddim-eta0-uniform/K10/train0-seed0" in html  # the grid's caption names its cell


def test_markdown_links_figures_relative_to_the_report(built):
    md, _ = built
    assert "](figures/fid_vs_nfe_digits" in md


def test_missing_meta_key_is_an_error(results, tmp_path):
    meta = {k: v for k, v in META.items() if k != "min_accuracy"}
    with pytest.raises(ReportError, match=r"missing key\(s\) \['min_accuracy'\]"):
        build_report(results, {}, [], tmp_path, meta)


def test_missing_figure_is_an_error(results, tmp_path):
    with pytest.raises(ReportError, match="absent.png"):
        build_report(results, {"FID": tmp_path / "absent.png"}, [], tmp_path, META)


def test_report_from_a_real_preset_on_an_empty_table_completes(tmp_path):
    from diffsteps.params import load_config, preset_path
    from diffsteps.reporting.report import meta_from_config
    from diffsteps.reporting.schema import empty_frame

    meta = meta_from_config(load_config(preset_path("smoke")))
    md, html = build_report(empty_frame(), {}, [], tmp_path, meta)
    text = md.read_text()
    assert "| preset | smoke |" in text and "The results table is empty" in text
    assert "not evaluated: no fid rows match side a" in text and html.exists()
