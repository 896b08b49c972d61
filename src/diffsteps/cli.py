"""``python -m diffsteps <command>``: one command per pipeline stage, plus study utilities.

Rules and stages call only these commands. Each command validates params.yaml before it does any
work, and exits with status 2 and a message naming the key when the input is bad. Only the module
of the command being run is imported, so a stage does not pay for the libraries of the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: command → stage module (in diffsteps.stages) that registers it
COMMANDS = {
    "prepare-data": "data", "download-data": "data", "train-domain": "domain", "inception-weights": "inception",
    "reference-stats": "refstats", "train": "train", "sample": "sample", "evaluate": "evaluate", "floor": "evaluate",
    "nll": "nll", "solver-error": "solver_error", "probe": "probe", "report": "report", "preset": "study",
    "validate": "study", "dvc-yaml": "study",
    "resources": "study",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for one command (its module only), or for all of them when ``command`` is None."""
    parser = argparse.ArgumentParser(prog="diffsteps", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else sorted(set(COMMANDS.values()))
    for name in dict.fromkeys(modules):
        importlib.import_module(f".stages.{name}", __package__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        # bad input (every input error of the package is a ValueError: ConfigError, DataError, ...):
        # one line naming what is wrong, exit status 2, no traceback
        print(f"diffsteps {args.command}: error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    except BlockingIOError as exc:
        # another live process holds the state this command would write (training.resume: its PID is named); this
        # one has written nothing: exit EX_TEMPFAIL
        print(f"diffsteps {args.command}: error: {exc.strerror}", file=sys.stderr)
        return 75
