"""Job priorities: each job's bottom level (seconds of compute from its start to the end of the study)."""

from __future__ import annotations

import pytest
import yaml

from diffsteps import cells, resources, schedule
from diffsteps.params import preset_path, validate_mapping
from diffsteps.schedule import Priorities, feeds
from diffsteps.workflow import STAGE, STAGES

from .conftest import ROOT


def _priorities(path, device="cpu"):
    cfg = yaml.safe_load(path.read_text())
    cfg["train"]["device"] = device
    return Priorities(validate_mapping(cfg), cfg), cfg


def _levels(priorities, cfg):
    return {(s.name, tuple(sorted((k, str(v)) for k, v in wc.items()))): (priorities.level(s.name, wc), wc, found)
            for s in STAGES for wc, found in cells.iter_jobs(cfg, s.name)}


def test_the_stage_graph_follows_the_paths_stages_read_and_write():
    assert feeds(STAGE["train"], STAGE["sample"]) and feeds(STAGE["sample"], STAGE["evaluate"])
    assert feeds(STAGE["train_domain"], STAGE["reference_stats"]) and feeds(STAGE["reference_stats"], STAGE["evaluate"])
    assert not feeds(STAGE["sample"], STAGE["train"]) and not feeds(STAGE["evaluate"], STAGE["sample"])


@pytest.mark.parametrize("preset", ["cpu", "gpu"], ids=["cpu-preset", "gpu-preset"])
def test_a_jobs_level_is_its_work_plus_the_longest_level_that_needs_it(preset):
    priorities, cfg = _priorities(preset_path(preset))
    levels = _levels(priorities, cfg)
    for (stage, _), (level, wc, found) in levels.items():
        own = STAGE[stage].needs.seconds(priorities.study, found)
        after = [lv for (down, _), (lv, _, down_cells) in levels.items() if feeds(STAGE[stage], STAGE[down])
                 and any(all(str(c[n]) == str(wc[n]) for n in cells.job_wildcards(stage)) for c in down_cells)]
        assert level == pytest.approx(own + max(after, default=0.0)), (stage, wc)


def test_the_default_study_starts_the_runs_of_its_longest_chains_first():
    """On the default study the DDPM runs lead to the 1000-step reference chain, the longest job of all: they train
    before the runs that only sample a grid of few steps, and the chain samples before any other sampling job."""
    priorities, cfg = _priorities(ROOT / "params.yaml")
    train = {wc["model"]: priorities.level("train", wc) for wc, _ in cells.iter_jobs(cfg, "train")}
    assert train["ddpm"] > max(train["mixture"], train["ddgm_skewed"], train["ddgan/T1"])
    sample = {(wc["method"], wc["sampler"]): priorities.level("sample", wc) for wc, _ in cells.iter_jobs(cfg, "sample")}
    assert max(sample, key=sample.get) == ("ddpm", cfg["sampling"]["reference"]["sampler"])
    # the domain classifier and its statistics, which every scoring job waits for, come before any scoring job
    scoring = max(priorities.level("evaluate", wc) for wc, _ in cells.iter_jobs(cfg, "evaluate"))
    assert priorities.level("reference_stats", {"dataset": "digits"}) > scoring
    assert priorities.level("train_domain", {"dataset": "digits"}) > priorities.level("reference_stats",
                                                                                       {"dataset": "digits"})


def test_an_auto_study_is_ordered_by_the_rates_of_the_machine_it_runs_on(monkeypatch):
    monkeypatch.setattr(schedule, "cuda_visible", lambda: False)
    auto, _ = _priorities(ROOT / "params.yaml", device="auto")
    assert auto.study.train.device == "cpu"
    monkeypatch.setattr(schedule, "cuda_visible", lambda: True)
    assert _priorities(ROOT / "params.yaml", device="auto")[0].study.train.device == "auto"


def test_the_sampling_estimate_counts_each_cells_evaluations():
    priorities, cfg = _priorities(ROOT / "params.yaml")
    study, needs = priorities.study, STAGE["sample"].needs
    found = next(c for wc, c in cells.iter_jobs(cfg, "sample") if wc["sampler"] == "heun")
    nfe = sum(2 * c["budget"] - 1 for c in found)  # Heun: 2K − 1 evaluations a chain
    forward = resources.rates(study, needs, needs.threads(study)).forward
    assert needs.seconds(study, found) == pytest.approx(study.sampling.n_samples * nfe * forward)
