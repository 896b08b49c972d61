"""DDPM (arXiv 2006.11239): Gaussian noise, no options; the baseline every other family is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from .base import MethodOptions


@dataclass(frozen=True)
class DDPMOptions(MethodOptions):
    """Gaussian noise (DDPM): no options."""

    schema: ClassVar[Mapping[str, Any]] = {"additionalProperties": False, "properties": {"family": True}}


OPTIONS = DDPMOptions
