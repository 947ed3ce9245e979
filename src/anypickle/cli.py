"""The ``anypickle`` command line: ``anypickle explain``, ``check``, ``matrix``, ``scan``, ``bench``.

Each subcommand lives beside the feature it drives and adds itself with an ``add_*_parser`` function.
Exit status: 0 success, 1 a negative finding (unsafe file, failed check), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Sequence

from .analysis._modules import resolve_target
from .errors import AnyPickleError

__all__ = ["main"]


def _explain(args: argparse.Namespace) -> int:
    from .analysis._explain import explain

    report = explain(resolve_target(args.target))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0 if report.backend is not None else 1


def _add_explain_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="which backend auto picks for module:attr, and why")
    p.add_argument("target", help="module:attr naming the object, e.g. myscript:task")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_explain)


def versions() -> dict[str, str]:
    """What a bug report or a version-skew diagnosis needs first: anypickle's, its backends' and
    Python's versions, and whether the C helper ``anypickle.safe._opwalk`` is built."""
    import platform

    import cloudpickle
    import dill

    from . import __version__

    try:
        from .safe import _opwalk  # noqa: F401

        opwalk = "built"
    except ImportError as exc:
        opwalk = f"NOT built ({exc}); safe loading falls back to its slower pure-Python pass"
    return {
        "anypickle": __version__,
        "cloudpickle": cloudpickle.__version__,
        "dill": dill.__version__,
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "_opwalk": opwalk,
    }


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions of anypickle, cloudpickle, "
                         "dill and Python, and whether the C helper is built, then exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print("\n".join(f"{name}: {value}" for name, value in versions().items()))
        parser.exit()


def _check(args: argparse.Namespace) -> int:
    from .lab._check import check

    result = check(resolve_target(args.target), backend=args.backend, python=args.python, timeout=args.timeout)
    where = f"the Python at {args.python}" if args.python else "a fresh interpreter"
    if result.backend is None:  # dumps raised: nothing was sent
        print(f"{args.target}: {result.outcome} (dumps with backend {args.backend} raised; nothing was sent)")
    else:
        verdict = "arrived intact" if result.ok else "did not arrive intact"
        print(f"{args.target}: {result.outcome} (written by {result.backend}, loaded and exercised in "
              f"{where}: {verdict})")
    if result.detail:
        print(f"  reason: {result.detail}")
    return 0 if result.ok else 1


def _add_check_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check", help="dump module:attr here, load and exercise it in a fresh interpreter",
        description="Dump the object here, load it in a fresh interpreter (in an empty folder, without "
                    "this __main__ nor local modules) and compare it with the original; print the "
                    "outcome and the reason. Exit 0 when it arrives intact, 1 otherwise.")
    p.add_argument("target", help="module:attr naming the object, e.g. myscript:task")
    p.add_argument("--backend", default="auto", help="the backend to dump with: auto (default), pickle, marshal, cloudpickle, dill or portable")
    p.add_argument("--python", metavar="PATH", default=None,
                   help="the receiving interpreter (default: this one); another version gets the "
                        "backends installed into anypickle's cache")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before the load counts as a hang")
    p.set_defaults(handler=_check)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="anypickle", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_explain_parser(sub)
    _add_check_parser(sub)
    from .bench import add_bench_parser
    from .lab.matrix import add_matrix_parser
    from .safe._scanner._cli import add_scan_parser

    add_matrix_parser(sub)
    add_scan_parser(sub)
    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except AnyPickleError as exc:
        print(f"anypickle {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
