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


def _methods():
    from .methods import DDGAN, DDGM, DDPM, VDM, MixtureDDM

    reg: Registry = Registry("method family")
    for cls in (DDPM, DDGM, MixtureDDM, VDM, DDGAN):
        reg.register(cls.name, cls)
    return reg


METHODS = _methods()


def method_class(cfg, run: str):
    """The method class of the run ``run`` (a key of ``method_config``)."""
    if run not in cfg.method_config:
        raise ValueError(f"--method = {run!r} is invalid: not a run defined under method_config "
                         f"(defined: {sorted(cfg.method_config)})")
    return METHODS[cfg.method_config[run].family]


def run_identity(cfg, run: str) -> dict[str, str]:
    """The family and noise label of a run, as every row and record of its cells carries them."""
    cls = method_class(cfg, run)
    return {"family": cls.name, "noise": cls.noise_label(cfg.method_config[run])}
