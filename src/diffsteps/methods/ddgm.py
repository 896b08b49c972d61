"""Denoising Diffusion Gamma Models (arXiv 2110.05948): Gamma noise, the same samplers and chains as DDPM."""

from __future__ import annotations

from ..families.ddgm import DDGMOptions
from ..noise.gamma import GammaNoise
from .diffusion import DiffusionMethod


class DDGM(DiffusionMethod):
    """Denoising Diffusion Gamma Models (arXiv 2110.05948): Gamma noise, the same samplers and chains."""

    options_type = DDGMOptions
    noise_cls = GammaNoise


METHOD = DDGM
