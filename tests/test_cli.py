"""``python -m diffsteps``: every command is named in ``cli.COMMANDS`` with the one stage module that registers
it, and running a command imports that module alone (its DVC dependencies are its imports)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from diffsteps.cli import COMMANDS, build_parser

from .conftest import ROOT


def _registered(parser) -> set[str]:
    return set(next(a for a in parser._actions if a.dest == "command").choices)


def test_commands_name_every_registered_command():
    assert _registered(build_parser()) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_is_registered_by_its_module(command):
    assert command in _registered(build_parser(command))


PROBE = """
import json, sys
from diffsteps.cli import build_parser
build_parser(sys.argv[1])
print(json.dumps({"stages": sorted(m for m in sys.modules if m.startswith("diffsteps.stages.")),
                  "seaborn": "seaborn" in sys.modules, "metrics": any(m.startswith("diffsteps.metrics") for m in sys.modules)}))
"""


def test_inception_weights_imports_only_its_own_module():
    out = subprocess.run([sys.executable, "-c", PROBE, "inception-weights"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    loaded = json.loads(out)
    assert loaded == {"stages": ["diffsteps.stages.common", "diffsteps.stages.inception"], "seaborn": False,
                      "metrics": False}, loaded
