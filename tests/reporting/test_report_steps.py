"""The steps-needed answer: NFE_δ against the converged FID, the common DDPM target, NFE_ε, censoring, the
bootstrap over training and sampling seeds, and its place at the top of the report."""

import math

import numpy as np
import pytest

from diffsteps.reporting.render import Table, to_markdown
from diffsteps.reporting.schema import to_frame
from diffsteps.reporting.steps import Needed, Settings, answer, first_within, steps_blocks
from diffsteps.rows import make_row

S = Settings(tolerance=0.1, solver_error=0.02, bootstrap=300, seed=0, reference_sampler="ancestral-betatilde",
             reference_spacing="uniform", reference_nfe=1000,
             samplers=("ddim-eta0", "heun", "ancestral-betatilde"))


def fid(method, family, sampler, nfe, value, ts=0, seed=0, spacing="uniform"):
    return make_row(dataset="d", method=method, family=family, sampler=sampler, spacing=spacing, nfe=nfe,
                    train_seed=ts, seed=seed, metric="fid", value=value, feature_extractor="x", n=10, noise="gaussian")


def study(train_seeds=(0,), jitter=0.0):
    rng = np.random.default_rng(1)
    rows = []
    for ts in train_seeds:
        for seed in (0, 1):
            e = lambda: jitter * rng.normal()  # noqa: E731
            rows.append(fid("ddpm", "ddpm", "ancestral-betatilde", 1000, 10.0 + e(), ts, seed))
            for nfe, ddim, heun, anc in ((5, 30, 10.8, 60), (10, 15, 10.5, 40), (20, 11, 10.2, 30), (50, 10.5, 10.1, 20)):
                rows.append(fid("ddpm", "ddpm", "ddim-eta0", nfe, ddim + e(), ts, seed))
                rows.append(fid("ddpm", "ddpm", "heun", nfe, heun + e(), ts, seed))
                rows.append(fid("ddpm", "ddpm", "ancestral-betatilde", nfe, anc + e(), ts, seed))
            for T, v in ((1, 30.0), (4, 10.9)):
                rows.append(fid("ddgan", "ddgan", "ancestral-betatilde", T, v + e(), ts, seed))
    return rows


def test_first_within_is_the_smallest_grid_nfe_under_the_target():
    curves = np.array([[30, 15, 11, 10.5], [9, 9, 9, 9], [30, 30, 30, 30]])
    got = first_within([5, 10, 20, 50], curves, np.array([11.0, 11.0, 11.0]))
    assert got.tolist() == [20, 5, math.inf]


def test_needed_formats_censored_values():
    assert str(Needed(20, 10, 50, 5, 50)) == "20 [10, 50]"
    assert str(Needed(5, 5, 10, 5, 50)) == "≤ 5 [≤ 5, 10]"
    assert str(Needed(math.inf, 50, math.inf, 5, 50)) == "> 50 [50, > 50]"


def test_nfe_to_the_converged_fid_and_to_ddpms():
    (ddpm, gan) = answer(to_frame(study()), S)
    assert ddpm.converged == pytest.approx(10.0) and ddpm.converged_from == "reference"
    own = {k[0]: n for k, n in ddpm.to_own.items()}
    assert own["ddim-eta0"].estimate == 20  # 11 ≤ 1.1 × 10 first at 20
    assert own["heun"].estimate == 5  # censored: ≤ min
    assert math.isinf(own["ancestral-betatilde"].estimate)  # never within: > max
    # DDGAN has no reference: its best cell (T = 4) is its converged FID, flagged; DDPM's target puts it on one scale
    assert gan.converged == pytest.approx(10.9) and gan.converged_from.startswith("best cell")
    assert {k[0]: n.estimate for k, n in gan.to_ddpm.items()} == {"ancestral-betatilde": 4}


def test_bootstrap_interval_spans_training_and_sampling_seeds():
    one = answer(to_frame(study((0,), jitter=0.3)), S)[0]
    three = answer(to_frame(study((0, 1, 2), jitter=0.3)), S)[0]
    assert one.n_train == 1 and three.n_train == 3
    n = {k[0]: v for k, v in three.to_own.items()}["ddim-eta0"]
    assert n.low <= n.estimate <= n.high and {n.low, n.high} <= {5.0, 10.0, 20.0, 50.0, math.inf}


def test_solver_error_nfe():
    rows = study() + [make_row(dataset="d", method="ddpm", family="ddpm", sampler="heun", spacing="uniform", nfe=nfe,
                               train_seed=0, seed=0, metric="solver_error", value=v, n=8)
                      for nfe, v in ((9, 0.1), (19, 0.03), (39, 0.01), (99, 0.002))]
    ddpm = answer(to_frame(rows), S)[0]
    assert {k[0]: n.estimate for k, n in ddpm.to_error.items()} == {"heun": 39}


def test_table_has_one_row_per_run_one_column_per_sampler_and_na_where_it_does_not_apply():
    blocks = steps_blocks(to_frame(study()), S)
    table = blocks[0]
    assert isinstance(table, Table) and table.columns[3:] == S.samplers
    rows = {r[0]: r for r in table.rows}
    assert rows["ddgan"][3:5] == ("n/a", "n/a") and rows["ddgan"][5].startswith("≤ 1") is False
    assert rows["ddpm"][3].startswith("20 [") and rows["ddpm"][4].startswith("≤ 5")
    md = to_markdown(blocks, ".")
    assert "**ddpm** needs" in md and "with heun" in md and "DDIM (η = 0) needs 20" in md
    assert "One training seed for ddpm, ddgan" in md


def test_solver_error_figure_per_run_with_fitted_slopes(tmp_path):
    from diffsteps.reporting.plots_solver import plot_solver_error

    rows = [make_row(dataset="d", method="ddpm", family="ddpm", sampler=smp, spacing="uniform", nfe=nfe, train_seed=ts,
                     seed=0, metric="solver_error", value=c * nfe**-p, n=8)
            for smp, c, p in (("ddim-eta0", 1.0, 1.0), ("heun", 3.0, 2.0)) for nfe in (5, 10, 20) for ts in (0, 1)]
    figures = plot_solver_error(to_frame(rows), tmp_path)
    (path,) = figures.values()
    assert path.exists() and list(figures) == ["solver error vs NFE — ddpm"]


@pytest.mark.parametrize("order", ["largest first", "largest last"])
def test_the_answer_reads_each_cell_at_its_largest_n_in_any_row_order(order):
    """Every cell is also scored at the floor's smaller N; those rows must not mix into the answer."""
    rows = study()
    small = [dict(r, n=5, value=r["value"] * 3) for r in rows]
    frame = to_frame(rows + small if order == "largest first" else small + rows)
    (ddpm, _) = answer(frame, S)
    assert ddpm.converged == pytest.approx(10.0)
    assert {k[0]: n.estimate for k, n in ddpm.to_own.items()}["ddim-eta0"] == 20
