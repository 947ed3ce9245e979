"""``anypickle scan FILE... [--json]``: exit 0 when every file is safe, 1 when any is unsafe, 2 on usage errors."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ...errors import UsageError

__all__ = ["add_scan_parser", "run_scan"]


def run_scan(args: argparse.Namespace) -> int:
    """Scan every file named on the command line; print a report for each (or one JSON document)."""
    from . import scan

    missing = [path for path in args.files if not os.path.isfile(path)]
    if missing:
        # Checked before scanning anything: a typo must not read as "all safe".
        raise UsageError("no such file: " + ", ".join(missing))
    reports = [scan(path, allow=args.allow) for path in args.files]
    if args.json:
        print(json.dumps({"safe": all(r.safe for r in reports), "files": [r.to_dict() for r in reports]}, indent=2))
    else:
        print("\n\n".join(str(r) for r in reports))
    return 0 if all(r.safe for r in reports) else 1


def add_scan_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``scan`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser(
        "scan",
        help="statically scan pickle files (and zip containers such as PyTorch .pt) without loading them",
        description="Statically scan pickle files without executing them. Exit status: 0 all safe, "
        "1 any unsafe, 2 usage error.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="pickle file or zip container to scan")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument(
        "--allow", action="append", default=[], metavar="MODULE.QUALNAME",
        help="also allow this exact global (repeatable)",
    )
    p.set_defaults(handler=run_scan)
    return p
