"""The bound job of one run (stages/nll.py): which cells it holds and which chains it computes."""

from __future__ import annotations

import pytest

import importlib

from diffsteps import families
from diffsteps.stages.nll import bound_cells

SPACINGS = ("uniform", "quad", "logsnr")


def test_a_discrete_chain_at_K_equal_T_is_one_chain_whatever_the_spacing():
    cells = bound_cells([10, 1000], ["betatilde", "beta"], SPACINGS, 1000, continuous_time=False)
    assert len(cells) == 2 * 2 * len(SPACINGS) + 1 and cells[-1] == {"variance": None, "spacing": None,
                                                                     "budget": None, "chain": None}
    chains = {c["chain"] for c in cells[:-1]}
    # K = 10: one chain per variance and spacing; K = T: one per variance (Schedule.chain gives the full chain)
    assert len(chains) == 2 * len(SPACINGS) + 2


def test_continuous_time_chains_differ_by_spacing_at_every_K():
    cells = bound_cells([1000], ["betatilde"], SPACINGS, 1000, continuous_time=True)
    assert len({c["chain"] for c in cells[:-1]}) == len(SPACINGS)


@pytest.mark.parametrize("family", families.names())
def test_the_method_classes_take_the_declarations_of_their_family(family, smoke_cfg):
    """One source: the torch-free options type declares the bound; the method answers from it."""
    declared = families.options_type(family)
    method_cls = importlib.import_module(f"diffsteps.methods.{family}").METHOD
    run = next(r for r in smoke_cfg.methods if type(smoke_cfg.method_config[r]) is declared)
    per_T = "budget" in declared.grid.models
    method = method_cls(smoke_cfg, run, (1, 8, 8), 2 if per_T else None)
    assert method.options_type is declared and method.continuous_time == declared.continuous_time
    for variance in ("betatilde", "beta", None):
        assert method.nll_reason(variance) == declared.bound_reason(variance)
