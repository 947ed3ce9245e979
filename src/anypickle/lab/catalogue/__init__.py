"""The catalogue of object kinds the compatibility matrix ships through every backend.

A :class:`Case` is the *source* of a sender script (run as ``__main__`` in its own folder), optionally
the source of a helper module ``example_helper.py`` placed beside it, an expression that builds the
object in the script's namespace, and the source of a function ``check(obj)`` that exercises the object
and returns JSON-able data. The sender runs ``check`` on the original object; a receiver runs it on
the loaded object; the cell is ``ok`` only when both agree.

``expect`` records, per backend column, the outcome in the *fresh process* mode; ``expect_same``
overrides the *same process* mode where it differs from the default (a dumps-side failure carries
over, everything else is ``ok``). Tests assert every recorded outcome, so a backend upgrade that
changes behaviour fails a test instead of silently changing the published matrix.
"""

from __future__ import annotations

import fnmatch
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Mapping

__all__ = [
    "BACKENDS",
    "CLEAR",
    "DUMPS",
    "LOADS",
    "OK",
    "OUTCOMES",
    "WRONG",
    "Case",
    "all_cases",
    "select_cases",
]

# The outcome vocabulary is the lab's (anypickle.lab); the catalogue's cases use these short names.
from .. import CLEAR_ERROR as CLEAR
from .. import DUMPS_FAILS as DUMPS
from .. import LOADS_FAILS as LOADS
from .. import OK, OUTCOMES
from .. import WRONG_RESULT as WRONG

BACKENDS = ("pickle", "marshal", "cloudpickle", "dill", "auto", "portable")


@dataclass(frozen=True)
class Case:
    """One object kind: how to make it in a script, how to exercise it, what each backend does."""

    name: str
    group: str
    script: str
    build: str
    check: str
    expect: Mapping[str, str]
    expect_same: Mapping[str, str] = field(default_factory=dict)
    # fresh-process outcomes that change with the sender's Python: {(3, 12): {"dill": OK}} applies
    # from Python 3.12 on (later keys win)
    expect_from: Mapping[tuple, Mapping[str, str]] = field(default_factory=dict)
    helper: "str | None" = None
    receiver_has_helper: bool = False
    # auto's payload carries bytecode (it ships code by value, or falls back to cloudpickle/dill):
    # another Python version must refuse it with a clear error.
    carries_code: bool = True
    requires: tuple = ()
    note: str = ""
    # seconds before a load that does not finish counts as a hang (None: the run's default); set
    # on rows known to hang so that a run does not wait the full default there
    timeout: "float | None" = None
    # the object's own __reduce__ raises: every column, auto included, lets that exception through
    # unchanged (as pickle, cloudpickle and dill do), so "dumps fails" is auto's right outcome here
    raises_own: bool = False
    # the portable column (``dumps(obj, backend="portable")``: code as source) where it differs from auto:
    # its fresh-process outcome, and its same-process outcome when that differs again
    portable: "str | None" = None
    portable_same: "str | None" = None
    # the portable column on another Python, where the *receiver's* version matters: {(3, 13): WRONG}
    # applies when the receiver is 3.13 or newer and the sender older (later keys win)
    portable_to: Mapping[tuple, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "script", textwrap.dedent(self.script).strip() + "\n")
        object.__setattr__(self, "check", textwrap.dedent(self.check).strip() + "\n")
        if self.helper is not None:
            object.__setattr__(self, "helper", textwrap.dedent(self.helper).strip() + "\n")
        if self.portable is not None:
            object.__setattr__(self, "expect", {**self.expect, "portable": self.portable})
        if self.portable_same is not None:
            object.__setattr__(self, "expect_same", {**self.expect_same, "portable": self.portable_same})
        missing = set(BACKENDS) - set(self.expect)
        if missing:
            raise ValueError(f"case {self.name}: no expected outcome for {sorted(missing)}")
        overrides = [o for per_version in self.expect_from.values() for o in per_version.values()]
        overrides += list(self.portable_to.values())
        for outcome in list(self.expect.values()) + list(self.expect_same.values()) + overrides:
            if outcome not in OUTCOMES:
                raise ValueError(f"case {self.name}: unknown outcome {outcome!r}")

    def expected(self, backend: str, mode: str, receiver: "tuple | None" = None,
                 sender: "tuple | None" = None) -> str:
        """The outcome this case records for ``backend`` in ``mode`` ("same", "fresh" or "other").

        ``receiver`` is the (major, minor) version of the other Python in mode "other"; ``sender`` the
        sender's (default: the running interpreter).
        """
        here = tuple(sender[:2]) if sender is not None else tuple(sys.version_info[:2])
        fresh = self.expect[backend]
        for version in sorted(self.expect_from):
            if here >= version:
                fresh = self.expect_from[version].get(backend, fresh)
        if mode == "fresh":
            return fresh
        if mode == "same":
            if backend in self.expect_same:
                return self.expect_same[backend]
            return fresh if fresh in (DUMPS, CLEAR) else OK
        if mode == "other":
            # Another Python version: dumps-side outcomes carry over; pickle payloads name things
            # and behave as in a fresh process; every payload anypickle marks as carrying bytecode
            # (forced marshal, cloudpickle and dill always; auto when it ships code) must be
            # refused with InterpreterMismatchError before anything is unpickled.
            if backend == "portable" and receiver is not None:
                for version in sorted(self.portable_to):
                    if receiver[:2] >= version > here:
                        fresh = self.portable_to[version]
            if fresh in (DUMPS, CLEAR) or backend in ("pickle", "portable"):
                return fresh  # (portable ships source, no bytecode: it behaves as in a fresh process)
            if backend == "auto" and not self.carries_code:
                return fresh
            return CLEAR
        raise ValueError(f"unknown mode {mode!r}")


def exp(pickle: str, marshal: str, cloudpickle: str, dill: str, auto: str, portable: "str | None" = None) -> dict:
    """Fresh-process outcomes, one per column, in column order; portable defaults to auto's."""
    return {"pickle": pickle, "marshal": marshal, "cloudpickle": cloudpickle, "dill": dill, "auto": auto,
            "portable": auto if portable is None else portable}


def all_cases() -> list:
    """Every case of the built-in catalogue, sorted by group then name."""
    from . import _classes, _containers, _functions, _helper, _installed, _outside, _patched, _source, _unshippable

    cases = []
    for module in (_functions, _classes, _patched, _helper, _installed, _containers, _unshippable, _outside,
                   _source):
        cases.extend(module.CASES)
    names = [case.name for case in cases]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"duplicate case names: {sorted(duplicates)}")
    return sorted(cases, key=lambda case: (case.group, case.name))


def select_cases(pattern: "str | None" = None) -> list:
    """Cases whose name or group matches the glob ``pattern`` (comma-separated globs allowed)."""
    cases = all_cases()
    if not pattern:
        return cases
    globs = [part.strip() for part in pattern.split(",") if part.strip()]
    return [
        case for case in cases
        if any(fnmatch.fnmatchcase(case.name, g) or fnmatch.fnmatchcase(case.group, g)
               or g in case.name for g in globs)
    ]
