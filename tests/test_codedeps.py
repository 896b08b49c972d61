"""The import graph behind every stage's code dependencies: no cycles, and each stage depends on what its
command runs (training never on the metrics, the report or the samplers; evaluation never on training; no
stage on the stage table)."""

from __future__ import annotations

import pytest

from diffsteps.codedeps import PKG, cycles, import_graph, module_closure, room_graph
from diffsteps.workflow import STAGE, STAGES


def test_no_import_cycles_between_modules_or_rooms():
    graph = import_graph()
    assert cycles(graph) == []
    assert cycles(room_graph(graph)) == []


def test_cycles_are_found():
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert room_graph({"diffsteps.x.a": frozenset({"diffsteps.y"}), "diffsteps.y": frozenset({"diffsteps.x.b"})}) \
        == {"diffsteps.x": frozenset({"diffsteps.y"}), "diffsteps.y": frozenset({"diffsteps.x"})}


def test_function_level_imports_are_dependencies():
    # params.yaml's loader is imported at module level; the Inception weights' converter inside functions too
    graph = import_graph()
    assert "diffsteps.params" in graph["diffsteps.stages.common"]
    closure = module_closure("diffsteps.stages.inception")
    assert f"{PKG}/features/inception_source.py" in closure and f"{PKG}/stages/__init__.py" in closure


def _rooms(stage: str) -> set[str]:
    return {m.removeprefix(PKG + "/").split("/")[0].removesuffix(".py") for m in STAGE[stage].modules}


def test_training_runs_no_metrics_report_samplers_or_stage_table():
    assert not _rooms("train") & {"metrics", "reporting", "samplers", "workflow", "cells", "reruns"}, _rooms("train")


@pytest.mark.parametrize("stage", ["evaluate", "floor", "reference_stats", "reference_stats_inception"])
def test_evaluation_runs_no_training(stage):
    assert not _rooms(stage) & {"training", "learners", "objectives", "methods", "samplers"}, _rooms(stage)


def test_no_stage_imports_the_stage_table():
    for stage in STAGES:
        assert not {f"{PKG}/workflow.py", f"{PKG}/codedeps.py", f"{PKG}/reruns.py"} & set(stage.modules), stage.name
