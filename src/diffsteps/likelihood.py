"""Negative log-likelihood in bits/dim: the variational bound of a K-step ancestral chain, and VDM's
bound in discrete and continuous time (:func:`vdm_bound`).

For 8-bit data x_0 and a K-step chain τ (DDPM eq. 5 on the respaced chain),

    −log p(x_0) ≤ L_prior + Σ_{i=2..K} L_i + L_recon,
    L_prior = KL(q(x_{τ_K} | x_0) ‖ N(0, I)),
    L_i     = KL(q(x_{τ_{i−1}} | x_{τ_i}, x_0) ‖ p_θ(x_{τ_{i−1}} | x_{τ_i})),   x_{τ_i} ~ q(x_{τ_i} | x_0),
    L_recon = −log p_θ(x_0 | x_{τ_1}), a Gaussian discretised into 256 bins (DDPM §3.3).

Each L_i is estimated with one draw of x_{τ_i} per image; the terms come back per image in nats,
and :func:`bits_per_dim` is the one conversion to bits/dim.

VDM (arXiv 2107.00630, eqs. 11–17) bounds −log p(x) with the same three terms on a continuous-time
Gaussian process z_t = α_t x + σ_t ε of log-SNR γ(t):

    L_prior = KL(q(z_1 | x) ‖ N(0, I)),
    L_recon = −log p(x | z_0), the exact decoder over the 256 levels of each pixel,
    L_T     = ½·T·E_{i ~ U{1..T}}[expm1(γ(t_i) − γ(t_{i−1}))·‖ε − ε̂(z_{t_i}; t_i)‖²]   (T steps),
    L_∞     = ½·E_{t ~ U(0, 1)}[γ'(t)·‖ε − ε̂(z_t; t)‖²]                               (T → ∞).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch.nn import functional as F

from .noise.logsnr import LogSNRSchedule, VarianceGradient, alpha_sigma, grid_times
from .noise.schedule import Chain, TimeGrid
from .rng import RNG
from .noise.reverse import Denoiser, predict_x0


@dataclass(frozen=True)
class NLLTerms:
    """Per-image terms of the bound, in nats, each shape (B,); each image's value is the mean of
    ``draws`` Monte-Carlo draws (of x_t per step for a K-step chain, of (t, ε) for VDM)."""

    prior: torch.Tensor
    recon: torch.Tensor
    diffusion: torch.Tensor
    draws: int = 1

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


def pixel_levels(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The 256 levels of 8-bit data in model space, x_k = −1 + 2k/255, (256,)."""
    return torch.arange(256, device=device, dtype=dtype) * (2.0 / 255) - 1.0


def prior_kl(x: torch.Tensor, gamma_1: torch.Tensor) -> torch.Tensor:
    """KL(N(α_1 x, σ_1² I) ‖ N(0, I)) per image in nats, x (B, ...) → (B,)."""
    alpha_1, _ = alpha_sigma(gamma_1.to(x.dtype))
    logvar = F.logsigmoid(gamma_1.to(x.dtype))  # log σ_1², exact for large γ_1
    zero = torch.zeros_like(x)
    return gaussian_kl(alpha_1 * x, logvar.expand_as(x), zero, zero).flatten(1).sum(1)


def discrete_decoder_nll(x: torch.Tensor, z_0: torch.Tensor, gamma_0: torch.Tensor) -> torch.Tensor:
    """−log p(x | z_0) per image in nats, x on the 256-level grid, x and z_0 (B, ...) → (B,).

    Each pixel's decoder is the exact categorical distribution over the 256 levels x_k with
    p(x_k | z_0) ∝ N(z_0/α_0; x_k, σ_0²/α_0²) = softmax_k(−½·SNR_0·(z_0/α_0 − x_k)²), SNR_0 = e^{−γ_0}.
    Memory is (B, D, 256) in z_0's dtype.
    """
    alpha_0, _ = alpha_sigma(gamma_0.to(z_0.dtype))
    levels = pixel_levels(z_0.device, z_0.dtype)
    logits = -0.5 * torch.exp(-gamma_0.to(z_0.dtype)) * (z_0[..., None] / alpha_0 - levels) ** 2
    k = torch.round((x + 1.0) * 127.5).long().clamp(0, 255)
    log_p = torch.log_softmax(logits, dim=-1).gather(-1, k[..., None]).squeeze(-1)
    return -log_p.flatten(1).sum(1)


class LogSNRDenoiser(Protocol):
    """A continuous-time ε-prediction network with its schedule (:class:`~.models.vdm.VDMNetwork`)."""

    gamma: LogSNRSchedule

    def predict(self, z: torch.Tensor, gamma_t: torch.Tensor) -> torch.Tensor: ...


def vdm_bound(net: LogSNRDenoiser, x: torch.Tensor, u: torch.Tensor, eps: torch.Tensor, *, T: int | None = None,
              spacing: TimeGrid | None = None, clip_x0: bool = False, router: VarianceGradient | None = None
              ) -> NLLTerms:
    """One Monte-Carlo draw of VDM's bound per image (module docstring), in nats, for x (B, C, H, W)
    on the 256-level grid, with the draws supplied: u (B,) in [0, 1) picks the time (t = u for
    T = None, else step i = ⌊u·T⌋ + 1 of the ``spacing`` grid, uniform i/T without one) and ε (B, C, H, W) is
    shared by z_t and z_0.

    The network runs in float32 (or the caller's autocast); the terms are computed in x's dtype.
    ``clip_x0`` clips x̂ to [−1, 1] and uses the ε̂ consistent with it (as the samplers do); the bound
    stays valid, being that of the clipped reverse model. ``router`` (training) reroutes the schedule
    interior's gradient to the variance objective.
    """
    if router is not None and T is not None:
        raise ValueError(f"vdm_bound: a variance router with T = {T} is invalid: the discrete-T bound depends on the "
                         "schedule's interior and trains it itself; route only the continuous-time (T = None) loss")
    gamma_0, gamma_1 = net.gamma.endpoints()
    prior = prior_kl(x, gamma_1)
    alpha_0, sigma_0 = alpha_sigma(gamma_0.to(x.dtype))
    recon = discrete_decoder_nll(x, alpha_0 * x + sigma_0 * eps, gamma_0)
    if T is None:
        at = net.gamma.evaluate(u, slope=True, router=router)
        gamma_t, weight = at.gamma, 0.5 * at.slope
    else:
        grid = torch.from_numpy(grid_times(net.gamma, T, spacing)).to(u.device)
        i = (u.double() * T).floor().long().clamp(0, T - 1) + 1
        gamma_t = net.gamma.evaluate(grid[i], slope=False, router=router).gamma
        gamma_s = net.gamma.evaluate(grid[i - 1], slope=False, router=router).gamma
        weight = 0.5 * T * torch.expm1(gamma_t - gamma_s)
    g = gamma_t.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    alpha_t, sigma_t = alpha_sigma(g)
    z_t = alpha_t * x + sigma_t * eps
    eps_hat = net.predict(z_t.float(), gamma_t).to(x.dtype)
    if clip_x0:
        _, eps_hat = predict_x0(z_t, eps_hat, alpha_t**2, True)
    diffusion = weight.to(x.dtype) * (eps - eps_hat).pow(2).flatten(1).sum(1)
    return NLLTerms(prior=prior, recon=recon, diffusion=diffusion)
