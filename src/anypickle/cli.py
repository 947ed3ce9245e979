"""The ``anypickle`` command line: one subcommand per tool."""

from __future__ import annotations

import argparse
import sys

from .errors import AnyPickleError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anypickle", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    from .matrix import add_matrix_parser

    add_matrix_parser(subparsers)
    return parser


def main(argv: "list[str] | None" = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except AnyPickleError as exc:
        print(f"anypickle {args.command}: {exc}", file=sys.stderr)
        return 2
