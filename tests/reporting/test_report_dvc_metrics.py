"""reports/metrics.json: the report's steps-needed table and headline value per cell as DVC metrics."""

import json
import math

import numpy as np
import pytest

from diffsteps.reporting.dvc_metrics import study_metrics
from diffsteps.reporting.schema import to_frame
from diffsteps.reporting.steps import answer, best_spacing

from test_report_steps import S, study  # the same synthetic study (tests/reporting is on sys.path)


def test_steps_needed_is_the_reports_table_with_its_censored_forms():
    df = to_frame(study((0, 1, 2), jitter=0.3))
    got = study_metrics(df, S)
    steps = got["steps_needed"]
    assert set(steps) == {"ddpm"}  # DDGAN, a model per T, has no limit of its own ("no converged limit" in the report)
    assert got["converged_fid"]["ddgan"] == {"ode": "no converged limit on this grid",
                                             "ancestral-betatilde": "no converged limit on this grid"}
    assert got["best_of_solvers"]["ddpm"] == {"nfe": "≤ 5", "low": "≤ 5", "high": "≤ 5", "sampler": "heun",
                                              "spacing": "uniform"} and "ddgan" not in got["best_of_solvers"]
    for a in answer(df, S):  # the same bootstrap seed: the report's numbers exactly
        for sampler, entry in steps.get(a.method, {}).items():
            spacing, n = best_spacing(a.to_own, sampler)
            assert "spacing" not in entry  # one spacing in the study: not named, as in the report
            for key, v in (("nfe", n.estimate), ("low", n.low), ("high", n.high)):
                assert entry[key] == (int(v) if isinstance(n.value(v), float) else n.value(v))
    assert steps["ddpm"]["heun"]["nfe"] == "≤ 5"  # within δ at the smallest budget
    assert steps["ddpm"]["ancestral-betatilde"]["nfe"] == "> 50"  # never within δ on the grid
    assert isinstance(steps["ddpm"]["ddim-eta0"]["nfe"], int)


def test_cells_are_means_over_training_and_sampling_seeds():
    rows = study((0, 1), jitter=0.5)
    got = study_metrics(to_frame(rows), S)
    want = np.mean([r["value"] for r in rows if r["method"] == "ddpm" and r["sampler"] == "ddim-eta0"
                    and r["nfe"] == 10 and r["metric"] == "fid"])
    assert got["fid"]["ddpm"]["ddim-eta0"]["uniform"]["10"] == pytest.approx(want, rel=1e-12)
    assert set(got["fid"]["ddpm"]["ancestral-betatilde"]["uniform"]) == {"5", "10", "20", "50", "1000"}
    converged = got["converged_fid"]["ddpm"]
    assert converged["ancestral-betatilde"] == pytest.approx(np.mean([r["value"] for r in rows if r["nfe"] == 1000]))
    assert converged["ode"] == pytest.approx(np.mean([r["value"] for r in rows if r["sampler"] == "heun"
                                                      and r["nfe"] == 10 and r["metric"] == "fid"]))


def test_the_file_is_strict_json_without_non_finite_numbers():
    """DVC reads metrics strictly; ok rows are finite by the row schema, and "never reached" is a string."""
    got = study_metrics(to_frame(study()), S)
    text = json.dumps(got, allow_nan=False)  # DVC reads it with a strict parser: no NaN or Infinity
    assert all(not (isinstance(v, float) and math.isinf(v)) for run in json.loads(text)["converged_fid"].values()
               for v in run.values())


def test_failed_cells_and_other_metrics_are_left_out():
    rows = study() + [dict(r, status="failed", value=None, method="ddpm", nfe=7) for r in study()[:1]]
    got = study_metrics(to_frame(rows), S)
    assert "7" not in got["fid"]["ddpm"]["ancestral-betatilde"]["uniform"]


def test_a_cell_scored_at_two_n_gives_its_value_at_the_largest():
    rows = study()
    got = study_metrics(to_frame(rows + [dict(r, n=5, value=100.0) for r in rows]), S)
    assert got["fid"]["ddpm"]["ddim-eta0"]["uniform"]["10"] == pytest.approx(15.0)


def test_the_spacing_is_named_where_the_study_has_several():
    rows = study()
    rows += [dict(r, spacing="quad", value=10.6) for r in rows if r["sampler"] == "ddim-eta0" and r["metric"] == "fid"]
    got = study_metrics(to_frame(rows), S)["steps_needed"]["ddpm"]
    assert got["ddim-eta0"]["spacing"] == "quad" and got["heun"]["spacing"] == "uniform"

