"""The method families: one module each in this package (``ddpm``, ``ddgm``, ...), named by the family and holding
its options type as ``OPTIONS`` (:class:`~.base.MethodOptions`: options, schema, traits, grid; no torch).

A family module is imported only when a run of that family is read (:func:`options_type`), never all at once by a
stage, so that the code a job depends on holds its own family and no other: the workflow adds the family's module
to each job of the run (``diffsteps.workflow``), and an edit of one family reruns the jobs of its runs alone. A new
family is a new module here (and its method in ``diffsteps.methods``): nothing lists the names.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..config import read_raw, schema_error
from ..errors import ConfigError
from .base import MethodOptions

if TYPE_CHECKING:
    from ..config import StudyConfig

#: modules of this package that declare no family
_NOT_FAMILIES = frozenset({"base"})


@functools.lru_cache(maxsize=None)
def names() -> tuple[str, ...]:
    """Every family: the modules of this package (sorted)."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _NOT_FAMILIES))


def module_name(family: str) -> str:
    """The dotted module that declares ``family`` (its code is a dependency of every job of its runs)."""
    return f"{__name__}.{family}"


def options_type(family: str, key: str = "family") -> type[MethodOptions]:
    """The options type of ``family``, importing its module; an unknown name is a :class:`ConfigError` at ``key``."""
    if family not in names():
        raise ConfigError(key, family, f"must be one of the method families {list(names())}")
    return importlib.import_module(module_name(family)).OPTIONS


def entry_schema(family: str) -> dict[str, Any]:
    """The JSON schema of one method_config entry of ``family`` (its ``family`` key fixed to the name)."""
    schema = dict(options_type(family).schema)
    return {**schema, "type": "object", "properties": {**schema.get("properties", {}), "family": {"const": family}}}


def parse_run(run: str, entry: Mapping[str, Any], source: str = "params.yaml") -> MethodOptions:
    """``method_config.<run>`` to its family's options, validated against the family's schema first."""
    import jsonschema

    if not isinstance(entry, Mapping) or "family" not in entry:
        raise ConfigError(f"method_config.{run}.family", None, "a required key is missing", source)
    family = entry["family"]
    cls = options_type(family, f"method_config.{run}.family")
    errors = sorted(jsonschema.Draft202012Validator(entry_schema(family)).iter_errors(entry),
                    key=lambda e: (len(e.absolute_path), str(e.absolute_path)))  # the outermost first
    if errors:
        raise schema_error(errors[0], source, prefix=f"method_config.{run}")
    options = cls.from_params(entry)
    for field, value, expected in options.problems():
        raise ConfigError(f"method_config.{run}.{field}", value, expected, source)
    return options


def parse_runs(raw: Mapping[str, Any], runs: Iterable[str], source: str = "params.yaml") -> Mapping[str, MethodOptions]:
    """The options of ``runs`` (read-only), each checked against its family's schema and rules."""
    configs = raw.get("method_config") or {}
    options = {}
    for run in runs:
        if run not in configs:
            raise ConfigError(f"method_config.{run}", None, f"the run is not defined; defined runs are "
                              f"{sorted(configs)}", source)
        options[run] = parse_run(run, configs[run], source)
    return MappingProxyType(options)


def with_runs(cfg: "StudyConfig", path: str | Path, runs: Iterable[str] | None = None) -> "StudyConfig":
    """``cfg`` (a command's slice of ``path``) with the options of ``runs`` (default: the runs of ``methods``): the
    families of those runs are the only ones imported."""
    raw = read_raw(path)
    return dataclasses.replace(cfg, method_config=parse_runs(raw, raw["methods"] if runs is None else runs, str(path)))
