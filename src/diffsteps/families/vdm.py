"""Variational Diffusion Models (arXiv 2107.00630): continuous time, a learned log-SNR schedule γ(t)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from .base import MethodOptions


@dataclass(frozen=True)
class VDMOptions(MethodOptions):
    """VDM: the log-SNR schedule (``fixed_linear``, ``learned_linear`` or ``monotone_net``) and its
    initial endpoints, the Fourier-feature range n = fourier_min..fourier_max−1, and the training
    time: continuous (``T_train`` null, VDM's best) or the discrete-T bound."""

    schema: ClassVar[Mapping[str, Any]] = {
        "additionalProperties": False,
        "properties": {
            "family": True,
            "schedule": {"enum": ["fixed_linear", "learned_linear", "monotone_net"],
                         "description": "log-SNR schedule γ(t): fixed linear, learned endpoints (linear), or learned "
                                        "endpoints and monotone-network interior"},
            "gamma_min": {"type": "number", "description": "initial γ(0) (VDM: -13.3)"},
            "gamma_max": {"type": "number", "description": "initial γ(1) (VDM: 5.0); must exceed gamma_min"},
            "fourier_min": {"type": "integer", "minimum": 0,
                            "description": "first n of the Fourier features sin/cos(2^n·2π·z)"},
            "fourier_max": {"type": "integer", "minimum": 0,
                            "description": "one past the last n (fourier_min = fourier_max: no features)"},
            "T_train": {"type": ["integer", "null"], "minimum": 1,
                        "description": "null: continuous-time loss; an integer T: the discrete-T loss"}}}
    continuous_time: ClassVar[bool] = True

    schedule: str = "monotone_net"
    gamma_min: float = -13.3
    gamma_max: float = 5.0
    fourier_min: int = 6
    fourier_max: int = 8
    T_train: int | None = None

    @classmethod
    def bound_reason(cls, variance):
        """VDM's K-step model is the posterior q(z_s | z_t, x = x̂) (σ² = β̃'): another reverse variance's bound is
        not VDM's."""
        if variance not in (None, "betatilde"):
            return ("VDM's K-step model is the posterior q(z_s | z_t, x = x̂) (σ² = β̃'); a bound with "
                    f"σ² = {variance} is not VDM's")
        return super().bound_reason(variance)

    def problems(self):
        out = []
        if self.gamma_max <= self.gamma_min:
            out.append(("gamma_max", self.gamma_max, f"must exceed gamma_min = {self.gamma_min} (γ is increasing)"))
        if self.fourier_max < self.fourier_min:
            out.append(("fourier_max", self.fourier_max, f"must be ≥ fourier_min = {self.fourier_min}"))
        return out

    def describe(self) -> str:
        return (f"schedule={self.schedule}, gamma={self.gamma_min:g}..{self.gamma_max:g}, "
                f"fourier={self.fourier_min}..{self.fourier_max - 1}, T_train={self.T_train or '∞'}")


OPTIONS = VDMOptions
