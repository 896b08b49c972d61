"""Variational Diffusion Models (arXiv 2107.00630): continuous time, a learned log-SNR schedule, the exact bound."""

from __future__ import annotations

import torch
from torch import nn

from ..families.vdm import VDMOptions
from ..likelihood import NLLTerms, vdm_bound
from ..models.unet import UNetSpec
from ..models.vdm import VDMNetwork
from ..noise.logsnr import ContinuousGaussian, build_schedule
from ..objectives import Objective, VDMObjective
from ..rng import StackedRNG
from .base import ObjectiveMethod, generate_on_chain, per_image_terms, to_model_space


class VDM(ObjectiveMethod):
    """Variational Diffusion Models (arXiv 2107.00630): continuous time, a learned log-SNR schedule,
    the exact bound in discrete and continuous time, ancestral sampling at any step count K from one
    trained model (the K-step chain of the trained schedule, :meth:`ContinuousGaussian.chain`).

    Its K-step model is p(z_s | z_t) = q(z_s | z_t, x = x̂), whose variance is the posterior β̃'; the
    bound of another reverse variance is not VDM's and is not reported.
    """

    options_type = VDMOptions

    @classmethod
    def noise_label(cls, options):
        return f"gaussian-vdm({options.describe()})"

    def build_model(self) -> nn.Module:
        C, H, _ = self.image_shape
        o = self.options
        return VDMNetwork(UNetSpec.from_config(self.cfg.model, image_size=H, in_channels=C),
                          build_schedule(o.schedule, o.gamma_min, o.gamma_max), o.fourier_min, o.fourier_max)

    def objective(self) -> Objective:
        return VDMObjective(self.options.T_train)

    @torch.no_grad()
    def log_snr_curve(self, model):
        t = torch.linspace(0, 1, 201, device=model.gamma.gamma_0.device)
        init = build_schedule(self.options.schedule, self.options.gamma_min, self.options.gamma_max).to(t.device)
        return {"t": t.cpu().tolist(), "gamma": model.gamma(t).cpu().tolist(), "init": init(t).cpu().tolist()}

    @torch.no_grad()
    def generate(self, model, budget, sampler, spacing, n, seed, *, batch_size, device):
        process = ContinuousGaussian(model.gamma)
        chain = process.chain(budget, spacing)
        return generate_on_chain(self.cfg, model, process, chain, sampler, self.image_shape, n, seed,
                                 batch_size=batch_size, device=device, scale=float(chain.alpha_bar[0]) ** 0.5)

    @torch.no_grad()
    def nll(self, model, images, budget, variance, spacing, seed, *, batch_size, device):
        """Each image's bound is the mean of ``evaluation.nll.draws`` draws of (t, ε), the times
        stratified per image, t_d = (u + d/draws) mod 1, so that every draw covers another part of [0, 1)."""
        self.require_bound(variance)
        model.eval()
        draws = self.cfg.evaluation.nll.draws
        batches = []
        for start in range(0, len(images), batch_size):
            idx = range(start, min(len(images), start + batch_size))
            rng = StackedRNG(seed, idx)
            x = to_model_space(images[start:idx.stop]).to(device).double()
            u = rng.rand((len(idx),), dtype=torch.float64, device=device)
            acc = []
            for d in range(draws):
                eps = rng.randn(x.shape, dtype=torch.float64, device=device)
                acc.append(vdm_bound(model, x, (u + d / draws) % 1.0, eps, T=budget, spacing=spacing,
                                     clip_x0=self.cfg.sampling.clip_x0))
            batches.append(NLLTerms(*(sum(getattr(t, f) for t in acc) / draws for f in ("prior", "recon", "diffusion")),
                                    draws=draws))
        return per_image_terms(batches)


METHOD = VDM
