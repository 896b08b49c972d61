"""Non-Gaussian DDM (arXiv 2106.07582): noise drawn from a two-Gaussian mixture of weight p and component sd φ_t."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from .base import MethodOptions

_PHI = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}


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

    schema: ClassVar[Mapping[str, Any]] = {
        "additionalProperties": False, "required": ["p", "phi"],
        "properties": {"family": True,
                       "p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                             "description": "weight of the first component"},
                       "phi": {"description": "component sd φ in (0, 1): a constant, or {start, end} linear over "
                                              "t = 1..T",
                               "oneOf": [_PHI, {"type": "object", "additionalProperties": False,
                                                "required": ["start", "end"],
                                                "properties": {"start": _PHI, "end": _PHI}}]}}}
    gaussian_marginals: ClassVar[bool] = False
    # no Markov forward chain has these marginals, so the reverse chain on E[ε | x_t] is no posterior chain
    stochastic_reaches_data_law: ClassVar[bool] = False
    nll_undefined_reason: ClassVar[str | None] = (
        "no Markov forward process has these mixture marginals (one-step mixture noising drifts to a Gaussian: its "
        "excess kurtosis tends to 0), so the variational bound has no forward chain to be taken under")

    p: float
    phi: PhiSchedule

    @classmethod
    def from_params(cls, entry):
        phi = entry["phi"]  # a constant φ is the schedule that starts and ends at it
        return cls(**{**entry, "phi": PhiSchedule(phi, phi) if isinstance(phi, (int, float)) else PhiSchedule(**phi)})


OPTIONS = MixtureOptions
