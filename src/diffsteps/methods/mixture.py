"""Non-Gaussian DDM (arXiv 2106.07582): two-Gaussian mixture noise, the same samplers and chains as DDPM."""

from __future__ import annotations

from ..families.mixture import MixtureOptions
from ..noise.mixture import MixtureNoise
from .diffusion import DiffusionMethod


class MixtureDDM(DiffusionMethod):
    """Non-Gaussian DDM (arXiv 2106.07582) with two-Gaussian mixture noise, the same samplers and chains."""

    options_type = MixtureOptions
    noise_cls = MixtureNoise


METHOD = MixtureDDM
