"""Shared by the VDM tests: a continuous-time denoiser whose optimum is known in closed form."""

from __future__ import annotations

from torch import nn

from diffsteps.noise.logsnr import alpha_sigma


class GaussianDenoiser(nn.Module):
    """The exact E[ε | z_t] for data x ~ N(μ, s²) per dimension (LogSNRDenoiser protocol):
    z = αx + σε ⇒ E[ε | z] = σ(z − αμ)/(α²s² + σ²). A fixed, smooth function of (z, γ_t); with a
    wrong (μ, s²) it is a deliberately imperfect denoiser."""

    def __init__(self, gamma, mu: float, s2: float):
        super().__init__()
        self.gamma, self.mu, self.s2 = gamma, mu, s2

    def predict(self, z, gamma_t):
        a, s = alpha_sigma(gamma_t.reshape(-1, *[1] * (z.dim() - 1)).to(z.dtype))
        return s * (z - a * self.mu) / (a * a * self.s2 + s * s)
