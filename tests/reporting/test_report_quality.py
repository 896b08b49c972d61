"""The quality tables and the memorisation grid: Inception first, N in every biased label, two labelled
sources of spread, and the closest pairs drawn per run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from diffsteps.reporting.aggregate import to_frame
from diffsteps.reporting.plots_memorisation import most_memorised, plot_closest_pairs
from diffsteps.reporting.summary import metric_label
from diffsteps.reporting.tables import estimate_cell, headline_tables

INCEPTION = {"feature_extractor": "Inception-v3 pool3", "weights_sha256": "e" * 64, "n": 100}
DOMAIN = {"feature_extractor": "domain classifier", "weights_sha256": "d" * 64, "n": 360}


def _rows(context: dict, prefix: str, values: dict) -> list[dict]:
    rows = [dict(dataset="digits", sampler="real-data", seed=0, metric=f"{prefix}fid", value=1.0, status="ok", **context)]
    for (method, train_seed, seed), value in values.items():
        cell = dict(dataset="digits", method=method, family="ddpm", sampler="ddim-eta0", spacing="uniform",
                    noise="gaussian", nfe=10, train_seed=train_seed, seed=seed, status="ok", **context)
        rows += [dict(cell, metric=f"{prefix}fid", value=value),
                 dict(cell, metric=f"{prefix}memorisation", value=0.4 + value / 100, std=0.05)]
    return rows


def test_inception_table_is_the_headline_with_n_in_its_labels():
    df = to_frame(_rows(DOMAIN, "", {("ddpm", 0, 0): 5.0, ("ddpm", 0, 1): 6.0})
                  + _rows(INCEPTION, "inception_", {("ddpm", 0, 0): 50.0, ("ddpm", 0, 1): 52.0}))
    tables = headline_tables(df)
    assert tables[0].caption.startswith("digits — Inception-v3 pool3, N=100") and "HEADLINE" in tables[0].caption
    assert "Inception FID@100" in tables[0].columns and "FID@360" in tables[1].columns
    assert "HEADLINE" not in tables[1].caption
    assert tables[0].rows[0][1] == "real-data"  # the floor first, at the same N
    assert metric_label("fid", 5000) == "FID@5k" and metric_label("precision", 5000) == "precision"


def test_the_report_knows_every_metric_a_feature_space_scores():
    from diffsteps.metrics.fidelity import METRICS
    from diffsteps.reporting.summary import SPACE_METRICS, in_every_feature_space

    assert SPACE_METRICS == METRICS
    assert in_every_feature_space("fid") == ("fid", "inception_fid")
    assert in_every_feature_space("inception_fid") == ("inception_fid",) and in_every_feature_space("nll_total") == (
        "nll_total",)


def test_a_table_names_the_size_of_its_training_statistics():
    df = to_frame([{**r, "n_ref": 300} for r in _rows(INCEPTION, "inception_", {("ddpm", 0, 0): 50.0})])
    assert headline_tables(df)[0].caption.startswith("digits — Inception-v3 pool3, N=100 against 300 training images "
                                                     "(weights sha256 eeee")


def test_training_seeds_are_a_separate_labelled_spread():
    cell = dict(dataset="digits", method="ddpm", sampler="ddim-eta0", metric="fid", status="ok", std=None)
    one_model = pd.DataFrame([dict(cell, train_seed=0, seed=s, value=v) for s, v in ((0, 10.0), (1, 12.0))])
    assert estimate_cell(one_model) == "11 ± 1.4"
    two_models = pd.DataFrame([dict(cell, train_seed=t, seed=s, value=v)
                               for (t, s), v in {(0, 0): 10.0, (0, 1): 12.0, (1, 0): 20.0, (1, 1): 22.0}.items()])
    # within each model the sampling seeds differ by 2 (sd 1.41); the two models' means (11, 21) by 10 (sd 7.07)
    assert estimate_cell(two_models) == "16 ± 1.4 (training seeds: sd 7.1 over 2)"


def test_closest_pairs_grid_draws_each_runs_most_memorised_cell(tmp_path):
    df = to_frame(_rows(DOMAIN, "", {("ddpm", 0, 0): 5.0, ("ddpm", 0, 1): 30.0, ("vdm", 0, 0): 8.0}))
    chosen = most_memorised(df, "")
    assert list(chosen["method"]) == ["ddpm", "vdm"] and list(chosen["seed"]) == [1, 0]  # ddpm's seed 1: 0.7
    files = []
    rng = np.random.default_rng(0)
    for method, seed in (("ddpm", 0), ("ddpm", 1), ("vdm", 0)):
        cell = dict(method=method, sampler="ddim-eta0", spacing="uniform", nfe=10, train_seed=0, seed=seed)
        path = tmp_path / f"{method}{seed}.npz"
        np.savez(path, cell=np.array(json.dumps(cell)), sample=rng.integers(0, 256, (3, 1, 8, 8), dtype=np.uint8),
                 train=rng.integers(0, 256, (3, 1, 8, 8), dtype=np.uint8), distance=np.array([0.0, 0.5, 0.9]),
                 tau=np.array(0.6))
        files.append(path)
    np.savez(tmp_path / "failed.npz", cell=np.array(json.dumps(dict(cell, seed=9))))  # a failed cell: no pairs
    figures = plot_closest_pairs(df, [*files, tmp_path / "failed.npz"], tmp_path / "figures")
    assert list(figures) == ["Memorisation: closest (sample, training image) pairs in domain features"]
    assert next(iter(figures.values())).stat().st_size > 2000
    assert plot_closest_pairs(df, [], tmp_path / "none") == {}  # no pairs files: no figure


def test_an_unreliable_domain_extractor_marks_its_tables():
    accuracy = dict(dataset="digits", sampler="real-data", seed=0, metric="domain_accuracy", value=0.5, status="ok",
                    reason="unreliable: held-out accuracy 0.500 < evaluation.domain.min_accuracy 0.9", **DOMAIN)
    df = to_frame(_rows(DOMAIN, "", {("ddpm", 0, 0): 5.0}) + [accuracy])
    assert headline_tables(df)[0].caption.startswith("digits — domain classifier, N=360 (weights sha256 dddd")
    assert "UNRELIABLE features" in headline_tables(df)[0].caption
    assert "UNRELIABLE" not in headline_tables(to_frame(_rows(DOMAIN, "", {("ddpm", 0, 0): 5.0})))[0].caption
