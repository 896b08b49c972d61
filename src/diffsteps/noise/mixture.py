"""Gaussian-mixture noise (Non-Gaussian DDM, Nachmani et al. 2021, arXiv 2106.07582).

    ε = b·N(m1, φ²) + (1 − b)·N(m2, φ²),   b ~ Bernoulli(p),
    m1 = √((1 − φ²)(1 − p)/p),   m2 = −p·m1/(1 − p),

which has zero mean and unit variance for every p, φ ∈ (0, 1); φ may follow a schedule φ_t over t.
The forward marginal is x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε_t. No Markov forward process has these
marginals: chaining one-step mixture noise sums many independent mixtures, which tends to a Gaussian
(excess kurtosis → 0), while the marginal keeps its shape. So there is no forward chain under which
to take a variational bound.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import NoiseProcess, expand_like, on_device
from ..families.mixture import MixtureOptions


class MixtureNoise(NoiseProcess):
    """Two-component Gaussian-mixture noise with weight p and component sd φ_t; loss ‖ε − ε_θ‖² (the default).

    ``phi`` is a constant or anything with ``start`` and ``end`` (φ_t linear from φ_1 to φ_T). The
    same object serves training (:meth:`sample_noise`) and sampling (the inherited
    :meth:`reverse_noise` and :meth:`prior_sample`), so p and φ cannot differ between the two.

    With a φ schedule, the reverse step i → i−1 injects noise with φ at its target time τ_{i−1}
    (the base-class convention, exact for Gamma noise). The mixture has no forward chain that
    would single out a time, so this is a choice, stated here; the prior uses φ_T.
    """

    name = "mixture"
    markov_forward = False
    nll_undefined_reason = MixtureOptions.nll_undefined_reason  # the family's declaration (diffsteps.families)

    def __init__(self, schedule, p: float, phi):
        super().__init__(schedule)
        start, end = (phi, phi) if isinstance(phi, (int, float)) else (phi.start, phi.end)
        for key, value in (("p", p), ("phi start", start), ("phi end", end)):
            if not 0 < value < 1:
                raise ValueError(f"MixtureNoise: {key} = {value!r} is invalid: must lie in (0, 1)")
        self.p = float(p)
        #: φ_t for t = 0..T (index 0 repeats φ_1 and is never used), float64
        self.phi = np.concatenate([[start], np.linspace(start, end, self.T)])
        #: component means m1_t, m2_t for t = 0..T
        self.m1 = np.sqrt((1 - self.phi**2) * (1 - self.p) / self.p)
        self.m2 = -self.p * self.m1 / (1 - self.p)

    def sample_noise(self, shape, t, rng, *, device="cpu", dtype=torch.float32):
        """The component b ~ Bernoulli(p), then its Gaussian: m_b + φ_t z (drawn by ``rng``, computed on ``device``).
        The inherited one-step kernel √α_t x + √β_t ε uses this same law; it is not the marginal."""
        t = self._check_t(t)
        b = rng.rand(shape, dtype=torch.float64, device=device) < self.p
        z = rng.randn(shape, dtype=dtype, device=device)
        m1, m2, phi = (expand_like(on_device(v, t.device)[t], z) for v in (self.m1, self.m2, self.phi))
        return torch.where(b, m1, m2) + phi * z

    def skewness(self, t):
        """E[ε³] = p·m1³ + (1 − p)·m2³ (the φ² terms cancel because the mean is zero)."""
        t = np.asarray(t)
        return self.p * self.m1[t] ** 3 + (1 - self.p) * self.m2[t] ** 3
