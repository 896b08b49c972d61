"""Training objectives: small callables returning an unreduced per-sample loss (as in EDM's loss.py);
the adversarial one (DDGAN) returns the unreduced terms of its two players."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

from .likelihood import LogSNRDenoiser, bits_per_dim, vdm_bound
from .noise.base import NoiseProcess, expand_like
from .noise.logsnr import VarianceGradient
from .rng import RNG
from .noise.reverse import ancestral_step


class Objective(Protocol):
    """loss = objective(model, x0, rng): x0 (B, C, H, W) in [−1, 1] → (B,) unreduced loss."""

    def __call__(self, model: nn.Module, x0: torch.Tensor, rng: RNG) -> torch.Tensor: ...


class EpsilonObjective:
    """DDPM's simple loss, generalised to any noise process:

    t ~ U{1..T}, x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε_t, loss = process.loss(ε_θ(x_t, t), ε_t)
    (‖ε − ε_θ‖² for Gaussian noise).
    """

    def __init__(self, process: NoiseProcess):
        self.process = process

    def __call__(self, model: nn.Module, x0: torch.Tensor, rng: RNG) -> torch.Tensor:
        t = rng.randint(1, self.process.T + 1, (x0.shape[0],), device=x0.device)
        fs = self.process.q_sample(x0, t, rng)
        return self.process.loss(model(fs.x_t, t.float()), fs.eps)


class VDMObjective:
    """VDM's −VLB in bits/dim per sample: prior KL + exact 256-bin decoder + diffusion loss
    (:func:`~.likelihood.vdm_bound`), continuous-time (``T_train`` None) or the discrete-T bound.

    Times are low-discrepancy across the batch, t_b = (u + b/B) mod 1 with one u ~ U(0, 1) per batch
    (VDM appendix), which lowers the variance of the batch mean at no cost. In continuous time the
    schedule's interior (if it has one) is trained on the variance of the diffusion loss instead of
    the bound (:class:`~.noise.logsnr.VarianceGradient`); in discrete time the bound itself depends
    on the interior and trains it.
    """

    def __init__(self, T_train: int | None = None):
        self.T_train = T_train

    def __call__(self, model: LogSNRDenoiser, x0: torch.Tensor, rng: RNG) -> torch.Tensor:
        B, D = x0.shape[0], x0[0].numel()
        u = (rng.rand((1,), device=x0.device) + torch.arange(B, device=x0.device) / B) % 1.0
        eps = rng.randn(x0.shape, device=x0.device)
        router = VarianceGradient() if self.T_train is None and model.gamma.has_interior else None
        terms = vdm_bound(model, x0, u, eps, T=self.T_train, router=router)
        if router is not None:
            router.set_loss(bits_per_dim(terms.diffusion, D))
        return bits_per_dim(terms.total, D)


def forward_pair(process: NoiseProcess, x0: torch.Tensor, t: torch.Tensor, rng: RNG) -> tuple[torch.Tensor, torch.Tensor]:
    """A forward pair (x_{t−1}, x_t) of a Markov chain at per-sample times t (B,) in 1..T:
    x_{t−1} ~ q(x_{t−1} | x_0) (x_0 itself at t = 1), then x_t = √α_t x_{t−1} + √β_t ε."""
    prev = process.q_sample(x0, (t - 1).clamp(min=1), rng).x_t
    x_prev = torch.where(expand_like(t > 1, x0).bool(), prev, x0)
    return x_prev, process.forward_step(x_prev, t, rng)


def r1_penalty(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """‖∇_x Σ_b D_b‖² per sample, shape (B,): the R1 gradient penalty (Mescheder et al. 2018) on real
    inputs x (B, ...) that ``logits`` (B,) were computed from (x must require grad). The graph is kept,
    so the penalty itself can be differentiated with respect to D's weights."""
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.pow(2).flatten(1).sum(1)


@dataclass(frozen=True)
class DiscriminatorLoss:
    """Unreduced (B,) terms of one discriminator step. ``accuracy`` is the share of the two decisions
    (real pair called real, fake pair called fake) that D gets right, per sample, in {0, ½, 1}."""

    real: torch.Tensor  # softplus(−D(x_{t−1}, x_t, t))
    fake: torch.Tensor  # softplus(D(x'_{t−1}, x_t, t))
    r1: torch.Tensor  # r1_gamma/2 · ‖∇D‖² · lazy interval on steps that regularise, else zeros
    accuracy: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.real + self.fake + self.r1


class AdversarialObjective:
    """Denoising Diffusion GAN's losses (arXiv 2112.07804, eq. 4–6) on a T-step Gaussian chain.

    Pairs: t ~ U{1..T}, (x_{t−1}, x_t) from :func:`forward_pair`. Fakes: x̂_0 = G(x_t, t, z), z ~ N(0, I),
    then x'_{t−1} ~ q(x_{t−1} | x_t, x̂_0) (the Gaussian posterior, no noise at t = 1). Losses are the
    non-saturating ones, L_D = softplus(−D(real)) + softplus(D(fake)) + R1, L_G = softplus(−D(fake)),
    with the R1 penalty γ/2·‖∇_{x_{t−1}} D‖² on real pairs, applied every ``lazy_reg`` steps and scaled
    by ``lazy_reg`` so that its average strength does not depend on the interval (StyleGAN2's lazy
    regularisation).
    """

    def __init__(self, process: NoiseProcess, latent_dim: int, r1_gamma: float, lazy_reg: int):
        self.process, self.latent_dim = process, latent_dim
        self.r1_gamma, self.lazy_reg = r1_gamma, lazy_reg
        self.chain = process.schedule.chain()

    def pairs(self, x0: torch.Tensor, rng: RNG) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t (B,) float on x0's device, x_{t−1}, x_t)."""
        t = rng.randint(1, self.process.T + 1, (x0.shape[0],), device=x0.device)
        x_prev, x_t = forward_pair(self.process, x0, t, rng)
        return t.float(), x_prev, x_t

    def fake(self, generator: nn.Module, x_t: torch.Tensor, t: torch.Tensor, rng: RNG) -> torch.Tensor:
        """x'_{t−1} ~ q(x_{t−1} | x_t, x̂_0 = G(x_t, t, z)): the generator's side of a pair."""
        z = rng.randn((x_t.shape[0], self.latent_dim), device=x_t.device)
        x0_hat = generator(x_t, t, z).float()
        noise = rng.randn(x_t.shape, device=x_t.device)
        return ancestral_step(x_t.float(), x0_hat, self.chain, t.long(), "betatilde", noise)

    def discriminator_loss(self, discriminator: nn.Module, generator: nn.Module, x0: torch.Tensor, rng: RNG,
                           regularise: bool) -> DiscriminatorLoss:
        t, x_prev, x_t = self.pairs(x0, rng)
        if regularise:
            # the penalty differentiates D's input gradient again: that pass runs in float32 even under autocast
            x_prev = x_prev.detach().float().requires_grad_(True)
            with torch.autocast(device_type=x0.device.type, enabled=False):
                d_real = discriminator(x_prev, x_t.float(), t).float()
                r1 = 0.5 * self.r1_gamma * self.lazy_reg * r1_penalty(d_real, x_prev)
        else:
            d_real = discriminator(x_prev, x_t, t).float()
            r1 = torch.zeros_like(d_real)
        with torch.no_grad():  # D's step does not train G: no graph through the generator
            fake = self.fake(generator, x_t, t, rng)
        d_fake = discriminator(fake, x_t, t).float()
        accuracy = ((d_real > 0).float() + (d_fake < 0).float()) / 2
        return DiscriminatorLoss(real=F.softplus(-d_real), fake=F.softplus(d_fake), r1=r1, accuracy=accuracy)

    def generator_loss(self, discriminator: nn.Module, generator: nn.Module, x0: torch.Tensor, rng: RNG) -> torch.Tensor:
        """softplus(−D(x'_{t−1}, x_t, t)), (B,), on fresh pairs of the same data batch."""
        t, _, x_t = self.pairs(x0, rng)
        return F.softplus(-discriminator(self.fake(generator, x_t, t, rng), x_t, t).float())
