"""Discrete ε-prediction diffusions over a noise process (DDPM, DDGM, mixture noise): trained once at T and sampled at
every budget on respaced chains with the stateless samplers. A family of this kind names its noise process."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..families.base import MethodOptions
from ..likelihood import ancestral_vlb
from ..noise.base import NoiseProcess
from ..noise.schedule import Schedule
from ..objectives import EpsilonObjective, Objective
from ..rng import StackedRNG
from .base import ObjectiveMethod, StudyConfig, discrete_log_snr, generate_on_chain, per_image_terms, to_model_space


class DiffusionMethod(ObjectiveMethod):
    """A discrete ε-prediction diffusion over a noise process, trained once at T and sampled at every
    budget on respaced chains with the stateless samplers."""

    noise_cls: ClassVar[type[NoiseProcess]]

    def __init__(self, cfg: StudyConfig, run: str, image_shape: tuple[int, int, int], T: int | None = None):
        super().__init__(cfg, run, image_shape, T)
        # the run's options are the process's keyword arguments: training and sampling share one process
        self.process = self.noise_cls(Schedule.from_config(cfg.noise), **self.options.noise_kwargs())

    @classmethod
    def noise_label(cls, options: MethodOptions) -> str:
        described = options.describe()
        return f"{cls.noise_cls.name}({described})" if described else cls.noise_cls.name

    def noise_skewness(self, t):
        return self.process.skewness(t)

    def log_snr_curve(self, model):
        return discrete_log_snr(self.process.alpha_bar)

    def objective(self) -> Objective:
        return EpsilonObjective(self.process)

    @torch.no_grad()
    def generate(self, model, budget, sampler, spacing, n, seed, *, batch_size, device):
        return generate_on_chain(self.cfg, model, self.process, self.process.schedule.chain(budget, spacing), sampler,
                                 self.image_shape, n, seed, batch_size=batch_size, device=device)

    @torch.no_grad()
    def nll(self, model, images, budget, variance, spacing, seed, *, batch_size, device):
        self.require_bound(variance)
        model.eval()
        chain = self.process.schedule.chain(budget, spacing)
        terms = []
        for start in range(0, len(images), batch_size):
            idx = range(start, min(len(images), start + batch_size))
            x0 = to_model_space(images[start:idx.stop]).to(device)
            terms.append(ancestral_vlb(model, chain, x0, variance, StackedRNG(seed, idx),
                                       clip_x0=self.cfg.sampling.clip_x0))
        return per_image_terms(terms)
