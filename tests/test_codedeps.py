"""The import graph behind every job's code dependencies, checked module by module: no cycles; each stage depends on
what its command runs and nothing else (training never on the sampler registry, the spacings, the samplers, the
feature code, the report or another run's family; evaluation never on training); a job of a run adds its own
family's code; and the modules a command really loads are the ones its job declares."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from diffsteps import families
from diffsteps.codedeps import PKG, cycles, import_graph, module_closure, room_graph
from diffsteps.workflow import FAMILIES, METHODS, STAGE, STAGES, family_files

from .conftest import ROOT, SMOKE

#: every family's own code: its declaration and its method
FAMILY_FILES = {f: {f"{PKG}/families/{f}.py", f"{PKG}/methods/{f}.py"} for f in families.names()}


def test_no_import_cycles_between_modules_or_rooms():
    graph = import_graph()
    assert cycles(graph) == []
    assert cycles(room_graph(graph)) == []


def test_cycles_are_found():
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert room_graph({"diffsteps.x.a": frozenset({"diffsteps.y"}), "diffsteps.y": frozenset({"diffsteps.x.b"})}) \
        == {"diffsteps.x": frozenset({"diffsteps.y"}), "diffsteps.y": frozenset({"diffsteps.x"})}


def test_function_level_imports_are_dependencies_and_type_checking_ones_are_not():
    graph = import_graph()
    # the Inception weights' converter is imported inside functions: a dependency like any other
    closure = module_closure("diffsteps.stages.inception")
    assert f"{PKG}/features/inception_source.py" in closure and f"{PKG}/stages/__init__.py" in closure
    # config names the options type for type checkers only: that import never runs, so it is no dependency
    source = (ROOT / PKG / "config.py").read_text()
    assert "if TYPE_CHECKING:\n    from .families.base import MethodOptions" in source
    assert "diffsteps.families.base" not in graph["diffsteps.config"]


def _files(stage: str) -> set[str]:
    return set(STAGE[stage].modules)


@pytest.mark.parametrize("stage", [s.name for s in STAGES])
def test_no_stage_imports_a_family_or_the_stage_table(stage):
    """A family's code reaches a job only through its run (the workflow adds it per job); no stage imports the
    stage table, the full params validation or the import graph."""
    own = _files(stage)
    assert not own & set().union(*FAMILY_FILES.values()), stage
    assert not own & {f"{PKG}/{m}" for m in ("workflow.py", "codedeps.py", "reruns.py", "params.py", "cells.py")
                      if not (stage == "report" and m == "cells.py")}, stage


def test_training_runs_no_sampling_evaluation_or_report_code():
    """The modules the train command runs, whatever the run: none of the samplers' registry, the spacings, the
    samplers, the solver error, the feature code, the metrics or the report."""
    own = _files("train")
    never = {"sampler_registry.py", "spacing.py", "samplers.py", "solver_error.py"}
    assert not own & {f"{PKG}/{m}" for m in never}, own & {f"{PKG}/{m}" for m in never}
    assert not {f for f in own if f.startswith((f"{PKG}/features/", f"{PKG}/metrics/", f"{PKG}/reporting/"))}


@pytest.mark.parametrize("stage", ["evaluate", "floor", "reference_stats", "reference_stats_inception"])
def test_evaluation_runs_no_training(stage):
    own = _files(stage)
    assert not {f for f in own if f.startswith((f"{PKG}/training/", f"{PKG}/methods/", f"{PKG}/noise/"))}, stage
    assert not own & {f"{PKG}/{m}" for m in ("learners.py", "objectives.py", "samplers.py", "spacing.py")}, stage


@pytest.mark.parametrize("family", families.names())
def test_a_job_of_a_run_runs_its_own_family_and_no_other(family):
    """Per job, the workflow adds the closure of the run's family: its own method for the stages that run it, its
    declaration for the report; every other family's own files stay out."""
    others = set().union(*(files for f, files in FAMILY_FILES.items() if f != family))
    for code in (METHODS, FAMILIES):
        files = set(family_files(code, family))
        assert f"{PKG}/families/{family}.py" in files and not files & others, (code, family, files & others)
    assert f"{PKG}/methods/{family}.py" in family_files(METHODS, family)


def _loaded(tmp_path, *argv) -> set[str]:
    """The package files a command loads (run in a fresh interpreter, as the rule runs it)."""
    probe = ("import json, sys; from diffsteps.cli import main; code = main(sys.argv[1:]); "
             "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'diffsteps'))); "
             "sys.exit(code)")
    res = subprocess.run([sys.executable, "-c", probe, *argv, "--params", "params.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    root = sys.modules["diffsteps"].__file__.rsplit("/diffsteps/", 1)[0]
    return {f"src/{path.removeprefix(root + '/')}" for path in json.loads(res.stdout.strip().splitlines()[-1])}


@pytest.mark.slow
def test_the_commands_load_only_the_code_their_jobs_declare(tmp_path):
    """Train a Gamma-noise run and sample it: every package module each command loads is a code dependency of its
    job (so an edit of it reruns the job), and no other family's module is loaded."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw["train"]["images"] = 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    data, model = "results/data/digits", "results/models/digits/ddgm/train0"
    _loaded(tmp_path, "prepare-data", "--out-dir", data)
    runs = {"train": ("train", "--method", "ddgm", "--train-seed", "0", "--data-dir", data, "--out-dir", model),
            "sample": ("sample", "--method", "ddgm", "--sampler", "heun", "--spacing", "karras",
                       "--cell", "4", "0", "0", model, str(tmp_path / "s"))}
    others = set().union(*(files for f, files in FAMILY_FILES.items() if f != "ddgm"))
    for stage, argv in runs.items():
        loaded = _loaded(tmp_path, *argv)
        declared = set(STAGE[stage].code(raw, "ddgm"))
        assert loaded - {f"{PKG}/cli.py", f"{PKG}/__main__.py"} <= declared, (stage, loaded - declared)
        assert not loaded & others and FAMILY_FILES["ddgm"] <= loaded, stage
