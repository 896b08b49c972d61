"""Denoising Diffusion GAN (arXiv 2112.07804): one conditional GAN per T of the run's options."""

from __future__ import annotations

import torch
from torch import nn

from ..families.ddgan import DDGANOptions
from ..learners import AdversarialLearner
from ..models.ddgan import DDGANGenerator, Discriminator, DiscriminatorSpec
from ..models.unet import UNetSpec
from ..noise.gaussian import GaussianNoise
from ..noise.schedule import Schedule, vp_sde_betas
from ..objectives import AdversarialObjective
from .base import Method, StudyConfig, discrete_log_snr, generate_on_chain


class DDGAN(Method):
    """Denoising Diffusion GAN (arXiv 2112.07804): T steps fixed at training (one of its options' T), one model per T.

    The chain is the VP-SDE discretised at T steps (:func:`~.noise.schedule.vp_sde_betas`). The
    generator predicts x̂_0 = G(x_t, t, z) and a reverse step draws x_{t−1} ~ q(x_{t−1} | x_t, x̂_0),
    the Gaussian posterior (ancestral β̃ on the T-step chain: the family's own sampler); a time-dependent
    discriminator D(x_{t−1}, x_t, t) trains it (:class:`~.objectives.AdversarialObjective`). NFE = T.
    """

    options_type = DDGANOptions

    def __init__(self, cfg: StudyConfig, run: str, image_shape: tuple[int, int, int], T: int | None = None):
        super().__init__(cfg, run, image_shape, T)
        o = self.options
        self.process = GaussianNoise(Schedule(vp_sde_betas(self.T, o.beta_min, o.beta_max)))

    @classmethod
    def noise_label(cls, options):
        return f"gaussian-vpsde({options.describe()})"

    def log_snr_curve(self, model):
        return discrete_log_snr(self.process.alpha_bar)

    def build_model(self) -> nn.Module:
        C, H, _ = self.image_shape
        return DDGANGenerator(UNetSpec.from_config(self.cfg.model, image_size=H, in_channels=C,
                                                   latent_dim=self.options.latent_dim))

    def learner(self, model, cfg):
        o = self.options
        objective = AdversarialObjective(self.process, o.latent_dim, o.r1_gamma, o.lazy_reg)
        return AdversarialLearner(model, Discriminator(DiscriminatorSpec.from_unet(model.spec)), objective, cfg,
                                  lr_g=o.lr_g, lr_d=o.lr_d, betas=o.adam_betas, collapse_steps=o.collapse_steps)

    @torch.no_grad()
    def generate(self, model, budget, sampler, spacing, n, seed, *, batch_size, device):
        own = self.options_type
        if budget != self.T or sampler.name != own.own_sampler or spacing.name != own.own_spacing:
            raise ValueError(f"{self.run} (DDGAN, trained at T = {self.T}) samples only its own chain: budget {self.T}, "
                             f"sampler {own.own_sampler}, spacing {own.own_spacing}; got budget {budget}, sampler "
                             f"{sampler.name}, spacing {spacing.name}")
        return generate_on_chain(self.cfg, model, self.process, self.process.schedule.chain(), sampler,
                                 self.image_shape, n, seed, batch_size=batch_size, device=device,
                                 latent_dim=self.options.latent_dim)

    def nll(self, model, images, budget, variance, spacing, seed, *, batch_size, device):
        """Never defined: raises ValueError with the family's reason."""
        raise ValueError(f"NLL is not defined for {self.name}: {self.options_type.nll_undefined_reason}")


METHOD = DDGAN
