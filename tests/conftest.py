import collections
import os
import socket
from pathlib import Path

import pytest

# Under pytest-xdist the workers already fill the cores: one intra-op thread per process (each worker and the commands
# it starts, which inherit the variable; a job given --threads still sets its own) keeps torch's OpenMP pools from
# oversubscribing them. On 2 cores, the contract, failed-cell and solver tests took 76 s with the default pools, 34 s so.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the thread count: OpenMP reads it when torch loads)
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "src/diffsteps/presets/smoke.yaml"

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def smoke_cfg():
    from diffsteps.params import load_config

    return load_config(SMOKE)


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The repository of the one smoke run of the whole DAG that the workflow tests share (workflow_repo.py)."""
    from .workflow_repo import shared_smoke

    return shared_smoke(tmp_path_factory)


#: the two files that run the whole DAG, the longest of the suite (about 10 and 5 min on 2 cores), start first:
#: under `make test` (pytest-xdist, --dist loadfile --no-loadscope-reorder) each takes one worker at once
DAG_FILES = ("tests.test_workflow", "tests.test_workflow_dvc")


def pytest_collection_modifyitems(config, items):
    import torch

    # then the modules with the most slow tests (stable within a module), so that the long ones never come last
    slow = collections.Counter(item.module.__name__ for item in items if "slow" in item.keywords)
    first = {name: i for i, name in enumerate(DAG_FILES)}
    items.sort(key=lambda item: (first.get(item.module.__name__, len(first)), -slow[item.module.__name__]))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def no_network(monkeypatch):
    """Any socket or weight download fails the test loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", refuse)
    return refuse
