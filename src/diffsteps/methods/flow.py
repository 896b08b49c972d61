"""Flow matching (rectified flow; STUDY.md §6): the shared UNet predicts the velocity v = ε − x_0 of the linear
interpolant, and samples through the (x̂_0, ε̂) conversion (:class:`~..noise.flow.VelocityDenoiser`) on the chains of
a fixed log-SNR schedule (:class:`~..noise.flow.FlowSchedule`), with every sampler and spacing of the study."""

from __future__ import annotations

import torch

from ..families.flow import FlowOptions
from ..noise.flow import FlowGaussian, FlowObjective, FlowSchedule, VelocityDenoiser, flow_gamma
from ..objectives import Objective
from .base import ObjectiveMethod, generate_on_chain


class FlowMatching(ObjectiveMethod):
    """Flow matching: the same UNet as DDPM's (its output read as v̂), the same budget in images seen; sampled at
    any K from one model. It defines no bound (:attr:`FlowOptions.nll_undefined_reason`)."""

    options_type = FlowOptions

    @classmethod
    def noise_label(cls, options):
        return f"gaussian-flow({options.describe()})"

    def schedule(self) -> FlowSchedule:
        return FlowSchedule(self.options.t_min, self.options.t_max)

    def objective(self) -> Objective:
        return FlowObjective(self.options.time_sampling)

    def log_snr_curve(self, model):
        """γ(t) = 2·log(t/(1 − t)) over the chains' range [t_min, t_max], mapped to [0, 1]."""
        u = torch.linspace(0, 1, 201, dtype=torch.float64)
        return {"t": u.tolist(), "gamma": flow_gamma(self.schedule().time(u)).tolist()}

    @torch.no_grad()
    def generate(self, model, budget, sampler, spacing, n, seed, *, batch_size, device):
        schedule = self.schedule().to(device)
        process = FlowGaussian(schedule)
        chain = process.chain(budget, spacing)
        # the last step lands on z at t_min, √ᾱ'_0·x̂_0 + …: divided by √ᾱ'_0 it reads x_{t_min}/(1 − t_min)
        return generate_on_chain(self.cfg, VelocityDenoiser(model, schedule), process, chain,
                                 sampler, self.image_shape, n, seed, batch_size=batch_size, device=device,
                                 scale=float(chain.alpha_bar[0]) ** 0.5)

    def nll(self, model, images, budget, variance, spacing, seed, *, batch_size, device):
        self.require_bound(variance)  # never defined: raises with the family's reason


METHOD = FlowMatching
