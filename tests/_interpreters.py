"""The installed CPython 3.10-3.13 interpreters, each able to import this checkout's anypickle.

A thin layer over :mod:`anypickle.lab._interpreters`, which ``anypickle matrix`` uses too: the same
finder (pyenv, then ``python3.X`` on PATH) and the same cache of cloudpickle and dill installed once
per interpreter (``pip --target``). anypickle itself always comes from ``<repo>/src``, so no cache
holds a stale copy of the code under test.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from anypickle.lab._interpreters import Receiver, find_other_pythons, prepare_receiver, same_interpreter

SRC = Path(__file__).resolve().parent.parent / "src"
VERSIONS = ("3.10", "3.11", "3.12", "3.13")
_HERE = "%d.%d" % sys.version_info[:2]


@lru_cache(maxsize=None)
def _found() -> dict[str, tuple[str, tuple[int, ...]]]:
    found, _ = find_other_pythons()
    return {"%d.%d" % version[:2]: (path, version) for path, version in found}


def find_interpreter(version: str) -> str | None:
    """The newest installed CPython ``version`` (e.g. ``"3.12"``), or None."""
    if version == _HERE:
        return sys.executable
    hit = _found().get(version)
    return hit[0] if hit else None


_receivers: dict[str, Receiver] = {}


def receiver_for(version: str) -> Receiver:
    """The lab runner's receiver (:mod:`anypickle.lab.runner`) for Python ``version``: this interpreter, or
    an installed one given cloudpickle and dill once (then reused). Raises ``LookupError`` if it is missing."""
    if version == _HERE:
        return same_interpreter()
    hit = _found().get(version)
    if hit is None:
        raise LookupError(f"Python {version} is not installed")
    path, full = hit
    if path not in _receivers:
        _receivers[path] = prepare_receiver(path, full, str(SRC))
    return _receivers[path]
