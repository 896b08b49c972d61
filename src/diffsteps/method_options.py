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


#: method family → its options type; the family names are those of the method registry
FAMILY_OPTIONS: dict[str, type[MethodOptions]] = {"ddpm": DDPMOptions, "ddgm": DDGMOptions,
                                                   "mixture": MixtureOptions}


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
