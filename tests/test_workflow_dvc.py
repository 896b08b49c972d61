"""`dvc repro` from nothing, checked against the shared smoke run. In a file of its own so that, under pytest-xdist,
DVC builds its repository on one worker while test_workflow.py's worker builds the smoke run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from diffsteps import cells
from diffsteps.config import to_plain
from diffsteps.params import load_config

from .workflow_repo import ENV, dry_run_jobs, dvc_changed, make_repo, set_param, sh


@pytest.mark.slow
def test_dvc_repro_from_nothing_builds_what_snakemake_built(request, tmp_path):
    """`dvc repro` on a fresh repository runs every stage (each through Snakemake) and reproduces the
    Snakemake run's numbers; afterwards both tools agree that nothing is left to do.

    DVC runs its stages one at a time (each one a Snakemake run of its own), so this builds three of the
    smoke runs, the Gaussian baseline, the continuous-time VDM and DDGAN at its first T, at the first
    sampling seed: every stage kind, with and without a per-family branch (the other families' cells are the
    same stages with other options, and another seed is the same stage with another value)."""

    repo = make_repo(tmp_path / "r")
    runs = ["ddpm", "vdm", "ddgan"]
    cfg = load_config(repo / "params.yaml")
    first_T, first_seed = cfg.method_config["ddgan"].T[0], cfg.sampling.seeds[0]
    set_param(repo, "methods", runs)
    set_param(repo, "method_config.ddgan.T", [first_T])
    set_param(repo, "sampling.seeds", [first_seed])
    set_param(repo, "sampling.reference.seeds", [first_seed])
    sh(repo, sys.executable, "-m", "diffsteps", "dvc-yaml")  # other runs: other stage groups
    # DVC starts a Snakemake run per stage, each one command: the session of many short commands the warm start is
    # for (opted in here; the same bytes as cold, tests/test_warm.py), which saves the suite a start-up per stage
    sh(repo, "dvc", "repro", timeout=1500, env={**ENV, "DIFFSTEPS_WARM": "1"})
    cfg = to_plain(load_config(repo / "params.yaml"))
    for p in cells.every_output(cfg):
        assert (repo / p).exists(), p
    assert dvc_changed(repo) == set() and dry_run_jobs(repo) == {}
    cell = next(p for p in cells.all_outputs(cfg, "sample") if p.endswith("samples.npz"))
    # the smoke run is asked for only now, so that DVC builds while another worker runs `make study`
    smoke = request.getfixturevalue("smoke")
    assert np.array_equal(np.load(repo / cell)["images"], np.load(smoke / cell)["images"])
    keys = ["method", "sampler", "spacing", "nfe", "train_seed", "seed", "metric", "n"]
    quality = ["fid", "kid", "precision", "recall", "nll_total"]
    def quality_values(r: Path) -> pd.Series:
        df = pd.read_csv(r / "reports/results.csv")
        kept = df.metric.isin(quality) & (df.method.isin(runs) | df.method.isna())  # the runs built, and the floor
        kept &= (df.method != "ddgan") | (df.nfe == first_T)  # DDGAN's model at the one T built
        kept &= df.seed.isna() | (df.seed == first_seed)  # the seed built (bound cells and the floor have none)
        return df[kept].set_index(keys)["value"].sort_index()

    built = quality_values(repo)
    assert len(built) > 20 and built.index.get_level_values("seed").dropna().unique().tolist() == [first_seed]
    pd.testing.assert_series_equal(built, quality_values(smoke), rtol=1e-6)
