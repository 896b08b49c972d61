"""A small synthetic study written as the JSON records the pipeline's stages produce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

PROVENANCE = {"git_commit": "abc123", "versions": {"diffsteps": "0.1.0", "torch": "2.11.0"}, "device": "cpu (test)",
              "python": "3.12.0"}
DOMAIN = {"feature_extractor": "domain classifier", "weights_sha256": "d" * 64, "n": 360}
SAMPLERS = {"ddim-eta0": 0.0, "ancestral-betatilde": None, "ancestral-beta": None}
# Mean FID per sampler at each NFE: DDIM clearly best at few steps, as the DDIM paper claims.
FID = {"ddim-eta0": {10: 20.0, 20: 15.0}, "ancestral-betatilde": {10: 40.0, 20: 25.0},
       "ancestral-beta": {10: 90.0, 20: 60.0}}


def record(rows, status="ok", error=None, cell=None, **extra):
    return {"rows": rows, "status": status, "error": error, "provenance": PROVENANCE, "cell": cell or {}, **extra}


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _cell(sampler, nfe, seed):
    variance = sampler.split("-")[1] if sampler.startswith("ancestral") else None
    return {"dataset": "digits", "method": "ddpm", "family": "ddpm", "sampler": sampler, "spacing": "uniform", "variance": variance,
            "eta": SAMPLERS[sampler], "noise": "gaussian", "nfe": nfe, "train_seed": 0, "seed": seed}


def study_records(root: Path) -> list[Path]:
    """A DDPM study on digits: 3 samplers × NFE {10, 20} × 3 seeds, floor, NLL, training, two failures."""
    rng = np.random.default_rng(0)
    paths = []
    for sampler, by_nfe in FID.items():
        for nfe, fid in by_nfe.items():
            for seed in range(3):
                cell = _cell(sampler, nfe, seed)
                rows = [dict(cell, metric="fid", value=fid + rng.normal(0, 0.5), **DOMAIN),
                        dict(cell, metric="kid", value=fid / 1000, std=0.001, **DOMAIN),
                        dict(cell, metric="precision", value=0.8, **DOMAIN),
                        dict(cell, metric="recall", value=0.6, **DOMAIN),
                        dict(cell, metric="inception_fid", status="not_computed", n=360,
                             reason="not computed: no Inception weights", feature_extractor="inception-v3-compat"),
                        dict(cell, metric="sampling_seconds_per_image", value=nfe * (0.002 + 0.0001 * seed)),
                        dict(cell, metric="sampling_peak_memory_mb", value=100.0)]
                paths.append(write(root / f"eval/{sampler}/K{nfe}/seed{seed}/metrics.json", record(rows)))
    floor = [dict(dataset="digits", sampler="real-data", metric="fid", value=2.0, seed=s, **DOMAIN) for s in range(1)]
    paths.append(write(root / "eval/floor/metrics.json", record(floor)))
    nll = []
    for variance, base in (("betatilde", 1.5), ("beta", 1.8)):
        for nfe in (10, 20):
            cell = dict(_cell(f"ancestral-{variance}", nfe, 0), n=200)
            terms = {"nll_prior": 1e-5, "nll_recon": 0.3, "nll_diffusion": base - 0.3 + 1.0 / nfe}
            nll += [dict(cell, metric=m, value=v, std=0.01) for m, v in terms.items()]
            nll.append(dict(cell, metric="nll_total", value=sum(terms.values()), std=0.02))
    nll.append(dict(dataset="digits", method="mixture", family="mixture", sampler="ancestral-betatilde", nfe=10, metric="nll_total",
                    status="not_defined", reason="no Markov forward process has the mixture marginals"))
    paths.append(write(root / "nll/nll.json", record(nll)))
    train = [dict(dataset="digits", method="ddpm", noise="gaussian", train_seed=0, metric=m, value=v)
             for m, v in (("training_seconds", 120.0), ("training_peak_memory_mb", 512.0), ("train_loss_final", 0.03))]
    train.append(dict(dataset="digits", feature_extractor="domain classifier", weights_sha256="d" * 64, n=360,
                      metric="domain_accuracy", value=0.97))
    paths.append(write(root / "models/train.json", record(train)))
    failed_cell = dict(_cell("ancestral-beta", 10, 0), spacing="quad")
    paths.append(write(root / "eval/failed/metrics.json",
                       record([], status="failed", error="RuntimeError: sampler diverged (NaN at step 3)",
                              cell=failed_cell)))
    # a failed training run writes its record without rows; its cell holds bookkeeping beside the identity
    paths.append(write(root / "models/train1/train.json",
                       record([], status="failed", error="FloatingPointError: loss is NaN",
                              cell={"method": "ddpm", "train_seed": 1, "image_shape": [1, 8, 8]})))
    return paths


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> list[Path]:
    return study_records(tmp_path_factory.mktemp("study") / "results")


@pytest.fixture(scope="session")
def results(records):
    from diffsteps.reporting.aggregate import collect

    return collect(records)
