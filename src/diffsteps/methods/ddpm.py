"""DDPM (arXiv 2006.11239): Gaussian noise, ancestral and DDIM (arXiv 2010.02502) sampling, the study's baseline."""

from __future__ import annotations

from ..families.ddpm import DDPMOptions
from ..noise.gaussian import GaussianNoise
from .diffusion import DiffusionMethod


class DDPM(DiffusionMethod):
    """DDPM (arXiv 2006.11239) with ancestral and DDIM (arXiv 2010.02502) sampling."""

    options_type = DDPMOptions
    noise_cls = GaussianNoise


METHOD = DDPM
