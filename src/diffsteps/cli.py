"""``python -m diffsteps <command>``: one command per pipeline stage, plus study utilities.

Rules and stages call only these commands. Each command validates params.yaml before it does any
work, and exits with status 2 and a message naming the key when the input is bad.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .config import ConfigError
from .stages import data, evaluate, features, nll, report, sample, study, train

COMMANDS = (data, features, train, sample, evaluate, nll, report, study)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffsteps", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"diffsteps {args.command}: error: {exc}", file=sys.stderr)
        return 2
