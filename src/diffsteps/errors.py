"""The error every configuration check raises (params.yaml, the command line, a sampler name)."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A value in params.yaml is invalid. The message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, expected: str, source: str = "params.yaml"):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{source}: {key} = {value!r} is invalid: {expected}")
