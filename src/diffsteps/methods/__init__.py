"""The methods the study compares, one module per family (named as in :mod:`diffsteps.families`), each holding its
:class:`~.base.Method` as ``METHOD``. A stage imports the one family it runs (:func:`method_class`), never all of
them: the workflow declares that family's module as a code dependency of each job of its runs.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Method


def method_class(cfg: Any, run: str) -> type[Method]:
    """The method of the run ``run`` (a key of ``method_config``), importing its family's module only."""
    if run not in cfg.method_config:
        raise ValueError(f"--method = {run!r} is invalid: not a run read from method_config "
                         f"(read: {sorted(cfg.method_config)})")
    return importlib.import_module(f"{__name__}.{cfg.method_config[run].family_name()}").METHOD


def run_identity(cfg: Any, run: str) -> dict[str, str]:
    """The family and noise label of a run, as every row and record of its cells carries them."""
    cls = method_class(cfg, run)
    return {"family": cls.options_type.family_name(), "noise": cls.noise_label(cfg.method_config[run])}
