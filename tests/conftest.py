import collections
import os
import socket
from pathlib import Path

import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "src/diffsteps/presets/smoke.yaml"

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def smoke_cfg():
    from diffsteps.params import load_config

    return load_config(SMOKE)


def pytest_collection_modifyitems(config, items):
    import torch

    # the modules with the most slow tests first (stable within a module): under pytest-xdist's --dist loadfile
    # (`make test`) the longest file, the whole-DAG tests, then starts on one worker while the other takes the rest
    slow = collections.Counter(item.module.__name__ for item in items if "slow" in item.keywords)
    items.sort(key=lambda item: -slow[item.module.__name__])
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
