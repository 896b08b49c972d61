"""Flow matching (rectified flow; STUDY.md §6): the linear interpolant x_t = (1 − t)·x_0 + t·ε with a velocity-predicting
network, sampled through the (x̂_0, ε̂) conversion by every sampler and spacing of the study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from .base import MethodOptions


@dataclass(frozen=True)
class FlowOptions(MethodOptions):
    """Flow matching: the ends t_min < t_max of the sampling chains (λ is infinite at 0 and 1) and the law of the
    training times (``uniform`` or SD3's ``logit_normal``)."""

    schema: ClassVar[Mapping[str, Any]] = {
        "additionalProperties": False,
        "properties": {
            "family": True,
            "t_min": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                      "description": "the data end of every sampling chain: t = t_min, read as x_t/(1 − t) (default 1e-3)"},
            "t_max": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                      "description": "the noise end of every sampling chain: N(0, I) stands for x_t at t = t_max "
                                     "(default 0.999)"},
            "time_sampling": {"enum": ["uniform", "logit_normal"],
                              "description": "the law of the training times: U(0, 1), or sigmoid(N(0, 1)) (SD3)"}}}
    #: chains on t ∈ [t_min, t_max] at any K from one model; a stochastic chain's limit is reached by refining K
    continuous_time: ClassVar[bool] = True
    nll_undefined_reason: ClassVar[str | None] = (
        "flow matching has no discrete VLB: its likelihood is the ODE's (change of variables along the flow), "
        "which this study does not compute")

    t_min: float = 1e-3
    t_max: float = 1.0 - 1e-3
    time_sampling: str = "uniform"

    @classmethod
    def not_noise(cls) -> frozenset[str]:
        return frozenset({"family", "time_sampling"})

    def problems(self):
        if self.t_max <= self.t_min:
            return [("t_max", self.t_max, f"must exceed t_min = {self.t_min}")]
        return []

    def describe(self) -> str:
        return f"t={self.t_min:g}..{self.t_max:g}, time_sampling={self.time_sampling}"


OPTIONS = FlowOptions
