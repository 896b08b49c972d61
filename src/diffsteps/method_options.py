"""Typed options of the study's runs: ``method_config.<run>`` in params.yaml, one type per method family.

The schema (``schemas/params.schema.yaml``) checks each entry first; :func:`parse_method_options`
then builds the frozen options. A family's options are the keyword arguments of its noise process
(:meth:`MethodOptions.noise_kwargs`), so a new option needs no plumbing in between.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class MethodOptions:
    """One run of the study, as defined under ``method_config.<run>``: its method family and options.

    The fields after ``family`` are the keyword arguments of the family's noise process (see
    :meth:`noise_kwargs`), so a new option needs no plumbing between params.yaml and the process.
    """

    family: str

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

    p: float
    phi: PhiSchedule


@dataclass(frozen=True)
class VDMOptions(MethodOptions):
    """VDM: the log-SNR schedule (``fixed_linear``, ``learned_linear`` or ``monotone_net``) and its
    initial endpoints, the Fourier-feature range n = fourier_min..fourier_max−1, and the training
    time: continuous (``T_train`` null, VDM's best) or the discrete-T bound."""

    schedule: str = "monotone_net"
    gamma_min: float = -13.3
    gamma_max: float = 5.0
    fourier_min: int = 6
    fourier_max: int = 8
    T_train: int | None = None

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


#: method family → its options type; the family names are those of the method registry
FAMILY_OPTIONS: dict[str, type[MethodOptions]] = {"ddpm": DDPMOptions, "ddgm": DDGMOptions,
                                                   "mixture": MixtureOptions, "vdm": VDMOptions}


def parse_method_options(raw: Mapping[str, Any]) -> dict[str, MethodOptions]:
    """``method_config`` entries to their family's options type (the schema checked each entry)."""
    out = {}
    for run, entry in raw.items():
        entry = dict(entry)
        if "phi" in entry:  # a constant φ is the schedule that starts and ends at it
            phi = entry["phi"]
            entry["phi"] = PhiSchedule(phi, phi) if isinstance(phi, (int, float)) else PhiSchedule(**phi)
        out[run] = FAMILY_OPTIONS[entry["family"]](**entry)
    return out
