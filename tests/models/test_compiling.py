"""``sampling.compile``: a compiled network samples the eager network's images."""

import dataclasses

import numpy as np
import pytest
import torch

from diffsteps.methods.ddpm import DDPM
from diffsteps.models import compiling
from diffsteps.samplers import sampler_for
from diffsteps.sampler_registry import SamplerSpec
from diffsteps.spacing import SPACINGS


@pytest.mark.parametrize("sampler", ["ddim-eta0", "ancestral-betatilde"])
def test_a_compiled_network_samples_the_eager_networks_images(smoke_cfg, monkeypatch, sampler):
    """Every budget and seed of a job goes through one compiled network (graph capture without code generation
    here); the images equal the eager network's to one grey level, the last batch's other size included."""
    monkeypatch.setattr(compiling, "BACKEND", "aot_eager")
    torch._dynamo.reset()
    cfg = dataclasses.replace(smoke_cfg, model=dataclasses.replace(smoke_cfg.model, channels=8))
    method = DDPM(cfg, "ddpm", (1, 8, 8))
    torch.manual_seed(0)
    net = method.build_model().eval()
    spec = sampler_for(SamplerSpec.parse(sampler))

    def images(network, K):
        return method.generate(network, K, spec, SPACINGS["uniform"], 7, 0, batch_size=4,
                               device=torch.device("cpu")).images.astype(int)

    counted = torch._dynamo.utils.counters
    counted.clear()
    fast = compiling.compiled(net, True)
    for K in (3, 5):
        assert np.abs(images(fast, K) - images(net, K)).max() <= 1
    assert counted["stats"]["unique_graphs"] >= 1  # the network did go through torch.compile
