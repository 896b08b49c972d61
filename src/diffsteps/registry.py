"""Explicit registries: names in params.yaml map to classes here, never through class-name strings."""

from __future__ import annotations

from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object table whose lookup errors list the valid names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self._items)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)



def _noise_processes():
    from .noise.gaussian import GaussianNoise

    reg: Registry = Registry("noise process")
    reg.register(GaussianNoise.name, GaussianNoise)
    return reg


def _methods():
    from .methods import DDPM

    reg: Registry = Registry("method")
    reg.register(DDPM.name, DDPM)
    return reg


NOISE_PROCESSES = _noise_processes()
METHODS = _methods()


def validate_methods(cfg, source: str = "params.yaml") -> None:
    """``methods`` must name registered methods. Kept out of :mod:`diffsteps.config` so that the
    config (imported by every stage) does not depend on the method code (imported by few)."""
    from .config import ConfigError

    for i, name in enumerate(cfg.methods):
        if name not in METHODS:
            raise ConfigError(f"methods[{i}]", name, f"unknown method; registered methods are {list(METHODS)}", source)
