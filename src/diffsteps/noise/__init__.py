"""Noise processes: the forward corruption, kept apart from networks and samplers."""

from .base import ForwardSample, NoiseProcess, expand_like
from .gamma import GammaNoise
from .gaussian import GaussianNoise
from .mixture import MixtureNoise
from .schedule import Chain, Schedule, make_betas, vp_sde_betas

__all__ = ["Chain", "ForwardSample", "GammaNoise", "GaussianNoise", "MixtureNoise", "NoiseProcess", "Schedule", "expand_like",
           "make_betas", "vp_sde_betas"]
