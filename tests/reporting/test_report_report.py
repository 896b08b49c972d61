import re

import pytest

from diffsteps.reporting.plots import plot_quality_vs_nfe
from diffsteps.reporting.report import ReportError, build_report

META = dict(preset="cpu", dataset="digits", train_images=192000, n_samples=360, sampling_seeds=[0, 1, 2],
            train_seeds=[0], min_accuracy=0.99)


@pytest.fixture(scope="module")
def built(results, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report")
    figures = plot_quality_vs_nfe(results, "fid", tmp_path / "reports" / "figures")
    grid = tmp_path / "results/samples/digits/ddpm/ddim-eta0-uniform/K10/train0-seed0/grid.png"
    grid.parent.mkdir(parents=True)
    grid.write_bytes(next(iter(figures.values())).read_bytes())
    md, html = build_report(results, figures, [grid], tmp_path / "reports", META)
    return md.read_text(), html.read_text()


def test_report_lists_the_failed_cell_with_its_error(built):
    for text in built:
        assert "RuntimeError: sampler diverged (NaN at step 3)" in text
        assert "digits / ddpm / ancestral-beta / quad" in text
        assert "ddpm / train 1" in text and "FloatingPointError: loss is NaN" in text


def test_undefined_nll_says_not_defined_with_the_reason(built):
    md, _ = built
    line = next(l for l in md.splitlines() if l.startswith("| digits | mixture"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    terms = cells[6:10]  # prior, recon, diffusion, total: never blank, never a zero
    assert "not defined: no Markov forward process has the mixture marginals" in terms
    assert all(t.startswith("not defined") for t in terms)
    assert sum("Markov" in t for t in terms) == 1  # the reason once per row, the other cells name the status


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
