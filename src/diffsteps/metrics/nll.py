"""Negative log-likelihood in bits/dim: the variational bound of a K-step ancestral chain.

For 8-bit data x_0 and a K-step chain τ (DDPM eq. 5 on the respaced chain),

    −log p(x_0) ≤ L_prior + Σ_{i=2..K} L_i + L_recon,
    L_prior = KL(q(x_{τ_K} | x_0) ‖ N(0, I)),
    L_i     = KL(q(x_{τ_{i−1}} | x_{τ_i}, x_0) ‖ p_θ(x_{τ_{i−1}} | x_{τ_i})),   x_{τ_i} ~ q(x_{τ_i} | x_0),
    L_recon = −log p_θ(x_0 | x_{τ_1}), a Gaussian discretised into 256 bins (DDPM §3.3).

Each L_i is estimated with one draw of x_{τ_i} per image; the terms come back per image in nats,
and :func:`bits_per_dim` is the one conversion to bits/dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..noise.schedule import Chain
from ..rng import RNG
from ..samplers import Denoiser, predict_x0


@dataclass(frozen=True)
class NLLTerms:
    """Per-image terms of the bound, in nats, each shape (B,)."""

    prior: torch.Tensor
    recon: torch.Tensor
    diffusion: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.prior + self.recon + self.diffusion

    def bits_per_dim(self, num_dims: int) -> dict[str, torch.Tensor]:
        """Every term (and the total) in bits/dim, per image."""
        return {name: bits_per_dim(v, num_dims) for name, v in
                (("prior", self.prior), ("recon", self.recon), ("diffusion", self.diffusion), ("total", self.total))}


def bits_per_dim(nats: torch.Tensor, num_dims: int) -> torch.Tensor:
    """nats per image → bits per dimension: nats / (D · ln 2)."""
    return nats / (num_dims * math.log(2.0))


def gaussian_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) in nats."""
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log P(x) of N(mean, e^{2 log_scale}) discretised to the 256 levels of [−1, 1].

    Bin i covers [x − 1/255, x + 1/255]; the edge bins extend to ∓∞ (DDPM §3.3). x must lie on the
    grid {−1 + 2k/255}. Computed in float64 so that narrow bins do not underflow.
    """
    x, mean, log_scale = x.double(), mean.double(), log_scale.double()
    inv_std = torch.exp(-log_scale)
    cdf_plus = _std_normal_cdf(inv_std * (x - mean + 1.0 / 255))
    cdf_minus = _std_normal_cdf(inv_std * (x - mean - 1.0 / 255))
    tiny = 1e-300
    log_cdf_plus = torch.log(cdf_plus.clamp(min=tiny))
    log_one_minus_cdf_minus = torch.log((1.0 - cdf_minus).clamp(min=tiny))
    log_delta = torch.log((cdf_plus - cdf_minus).clamp(min=tiny))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, log_delta))


def reverse_variance(chain: Chain, variance: str) -> torch.Tensor:
    """σ_i² of p_θ(x_{i−1} | x_i), shape (K+1,): β̃'_i or β'_i.

    β̃'_1 = 0 makes the decoder degenerate, so the β̃ chain's decoder uses β̃'_2 (the clipped
    log-variance of the DDPM code); the β chain's decoder uses β'_1 = β_1.
    """
    if variance == "betatilde":
        var = chain.beta_tilde.clone()
        var[1] = var[2] if chain.K >= 2 else chain.beta[1]
        return var
    if variance == "beta":
        return chain.beta.clone()
    raise ValueError(f"variance = {variance!r} is invalid: must be one of ['betatilde', 'beta']")


@torch.no_grad()
def ancestral_vlb(denoiser: Denoiser, chain: Chain, x0: torch.Tensor, variance: str, rng: RNG, *,
                  clip_x0: bool = False) -> NLLTerms:
    """The K-step bound for x0 (B, C, H, W) on the 256-level grid of [−1, 1], Gaussian forward process.

    K network evaluations per image. Returns :class:`NLLTerms` in nats per image.
    """
    B = x0.shape[0]
    device = x0.device
    x0 = x0.double()
    ab = chain.alpha_bar.to(device)
    var = reverse_variance(chain, variance).to(device)
    c0, ct = (c.to(device) for c in chain.posterior_coefs())
    sum_dims = tuple(range(1, x0.dim()))

    # prior: KL(N(√ᾱ'_K x0, 1−ᾱ'_K) ‖ N(0, 1))
    abK = ab[chain.K]
    prior = gaussian_kl(abK.sqrt() * x0, torch.log(1 - abK).expand_as(x0), torch.zeros_like(x0),
                        torch.zeros_like(x0)).sum(sum_dims)

    diffusion = torch.zeros(B, dtype=torch.float64, device=device)
    recon = torch.zeros(B, dtype=torch.float64, device=device)
    for i in range(1, chain.K + 1):
        eps = rng.randn(x0.shape, dtype=torch.float64, device=device)
        x_i = ab[i].sqrt() * x0 + (1 - ab[i]).sqrt() * eps
        t = torch.full((B,), float(chain.tau[i]), device=device)
        eps_hat = denoiser(x_i.float(), t).double()
        x0_hat, _ = predict_x0(x_i, eps_hat, float(ab[i]), clip_x0)
        mean_p = c0[i] * x0_hat + ct[i] * x_i
        logvar_p = torch.log(var[i]).expand_as(x0)
        if i == 1:
            recon = -discretized_gaussian_log_likelihood(x0, mean_p, 0.5 * logvar_p).sum(sum_dims)
        else:
            mean_q = c0[i] * x0 + ct[i] * x_i
            logvar_q = torch.log(chain.beta_tilde[i].to(device)).expand_as(x0)
            diffusion = diffusion + gaussian_kl(mean_q, logvar_q, mean_p, logvar_p).sum(sum_dims)
    return NLLTerms(prior=prior, recon=recon, diffusion=diffusion)

