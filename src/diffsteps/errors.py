"""The errors that name a bad input: every configuration check's (params.yaml, the command line, a sampler name)
and every metric input's."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A value in params.yaml is invalid. The message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, expected: str, source: str = "params.yaml"):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{source}: {key} = {value!r} is invalid: {expected}")


class MetricInputError(ValueError):
    """An input to a metric (images, labels, checkpoint, statistics) is not what is expected."""
