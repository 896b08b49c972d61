"""Typed options of the study's runs: ``method_config.<run>`` in params.yaml, one type per method family.

The schema (``schemas/params.schema.yaml``) checks each entry first; :func:`parse_method_options`
then builds the frozen options. A family's options are the keyword arguments of its noise process
(:meth:`MethodOptions.noise_kwargs`), so a new option needs no plumbing in between.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping


@dataclass(frozen=True)
class MethodOptions:
    """One run of the study, as defined under ``method_config.<run>``: its method family and options.

    The fields after ``family`` are the keyword arguments of the family's noise process (see
    :meth:`noise_kwargs`), so a new option needs no plumbing between params.yaml and the process.
    """

    family: str
    #: the family's step count is fixed at training (one model per T, listed under fixed_T in params.yaml)
    fixed_T: ClassVar[bool] = False
    #: None when the family defines a likelihood bound; else the reason the report prints instead of a number.
    #: Declared here, without torch, so that the workflow (which bound cells exist), the params checks and the
    #: report read it; the method classes and noise processes take it from here.
    nll_undefined_reason: ClassVar[str | None] = None
    #: whether the family has a continuous-time bound (T = ∞) besides its K-step ones
    continuous_time: ClassVar[bool] = False

    @classmethod
    def bound_reason(cls, variance: str | None) -> str | None:
        """Why a bound cell of this family is not defined (None when it is): ``variance`` is the reverse variance
        of a K-step ancestral chain (``betatilde`` or ``beta``), or None for the continuous-time (T = ∞) bound."""
        if cls.nll_undefined_reason is not None:
            return cls.nll_undefined_reason
        if variance is None and not cls.continuous_time:
            return (f"{cls.family_name()} is a discrete-time model (trained on a fixed T-step chain): its bound exists "
                    "on K-step chains only, not at T = ∞")
        return None

    @classmethod
    def family_name(cls) -> str:
        """The family this options type belongs to (its key in :data:`FAMILY_OPTIONS`)."""
        return next(name for name, t in FAMILY_OPTIONS.items() if t is cls)

    def noise_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "family"}

    def problems(self) -> list[tuple[str, Any, str]]:
        """Cross-field errors the schema cannot state, as (option, value, what is expected); none by default."""
        return []

    def describe(self) -> str:
        """The options as written in result rows, e.g. ``theta0=0.5, loss=l1`` ('' when there are none)."""
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.noise_kwargs().items())


@dataclass(frozen=True)
class DDPMOptions(MethodOptions):
    """Gaussian noise (DDPM): no options."""


@dataclass(frozen=True)
class DDGMOptions(MethodOptions):
    """Gamma noise (DDGM): scale θ0 of θ_t = √ᾱ_t θ0, and the loss on the standardised noise."""

    nll_undefined_reason: ClassVar[str | None] = (
        "the reverse kernel of Gamma noise is a shifted Gamma with one-sided support (x_{t−1} ≥ μ_θ(x_t) − "
        "σ_t √k̄_{t−1}), so the posterior of a held-out image puts mass where the model has none and every KL term "
        "of the variational bound is infinite")

    theta0: float
    loss: str = "l1"


@dataclass(frozen=True)
class PhiSchedule:
    """The mixture components' standard deviation φ_t, linear in t from φ_1 = ``start`` to φ_T = ``end``."""

    start: float
    end: float

    def __str__(self) -> str:
        return f"{self.start:g}" if self.start == self.end else f"{self.start:g}→{self.end:g}"


@dataclass(frozen=True)
class MixtureOptions(MethodOptions):
    """Two-Gaussian mixture noise: weight p of the first component and its φ schedule."""

    nll_undefined_reason: ClassVar[str | None] = (
        "no Markov forward process has these mixture marginals (one-step mixture noising drifts to a Gaussian: its "
        "excess kurtosis tends to 0), so the variational bound has no forward chain to be taken under")

    p: float
    phi: PhiSchedule


@dataclass(frozen=True)
class VDMOptions(MethodOptions):
    """VDM: the log-SNR schedule (``fixed_linear``, ``learned_linear`` or ``monotone_net``) and its
    initial endpoints, the Fourier-feature range n = fourier_min..fourier_max−1, and the training
    time: continuous (``T_train`` null, VDM's best) or the discrete-T bound."""

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


@dataclass(frozen=True)
class DDGANOptions(MethodOptions):
    """Denoising Diffusion GAN: the VP-SDE's β(s) range, the latent size, each player's Adam learning rate
    (shared β = (β1, β2)), the R1 weight γ and its lazy interval (steps), the collapse rule (stop after
    this many consecutive steps with discriminator accuracy 1) and the domain-FID probe (every
    ``probe_every`` steps on ``probe_n`` samples; 0 disables it). Defaults are the paper's CIFAR-10 values
    where it has one."""

    fixed_T: ClassVar[bool] = True
    nll_undefined_reason: ClassVar[str | None] = (
        "DDGAN is an implicit model: x̂_0 = G(x_t, t, z) with z ~ N(0, I) defines how to sample p(x_{t−1} | x_t) "
        "but not its density, so no likelihood bound exists")

    beta_min: float = 0.1
    beta_max: float = 20.0
    latent_dim: int = 100
    lr_g: float = 1.6e-4
    lr_d: float = 1.25e-4
    adam_betas: tuple[float, float] = (0.5, 0.9)
    r1_gamma: float = 0.02
    lazy_reg: int = 15
    collapse_steps: int = 500
    probe_every: int = 0
    probe_n: int = 256

    def problems(self):
        out = []
        if self.beta_max <= self.beta_min:
            out.append(("beta_max", self.beta_max, f"must exceed beta_min = {self.beta_min}"))
        return out

    def describe(self) -> str:
        return (f"beta={self.beta_min:g}..{self.beta_max:g}, nz={self.latent_dim}, lr_g={self.lr_g:g}, "
                f"lr_d={self.lr_d:g}, r1={self.r1_gamma:g}/{self.lazy_reg}")


#: method family → its options type; the family names are those of the method registry
FAMILY_OPTIONS: dict[str, type[MethodOptions]] = {"ddpm": DDPMOptions, "ddgm": DDGMOptions,
                                                   "mixture": MixtureOptions, "vdm": VDMOptions, "ddgan": DDGANOptions}


def parse_method_options(raw: Mapping[str, Any]) -> dict[str, MethodOptions]:
    """``method_config`` entries to their family's options type (the schema checked each entry)."""
    out = {}
    for run, entry in raw.items():
        entry = dict(entry)
        if "phi" in entry:  # a constant φ is the schedule that starts and ends at it
            phi = entry["phi"]
            entry["phi"] = PhiSchedule(phi, phi) if isinstance(phi, (int, float)) else PhiSchedule(**phi)
        if "adam_betas" in entry:  # a YAML list; frozen options hold tuples
            entry["adam_betas"] = tuple(entry["adam_betas"])
        out[run] = FAMILY_OPTIONS[entry["family"]](**entry)
    return out
