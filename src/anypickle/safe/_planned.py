"""The planned load of safe loading: the C unpickler runs a stream that names non-inert globals, with
checks only at the calls and BUILDs the static pass would judge.

``_opwalk.safe_plan`` walks the stream without executing it and returns its *plan* (see "The plan" in
``_opwalk.c``): for each global occurrence, in the order the C unpickler will call ``find_class``,
how the stream uses it (called, used as a value, changed by BUILD or SETITEM, its results built,
changed or passed to other calls) and which argument positions of its calls hold a call result; the
same for each BUILD's state; and the stream rewritten so that every BUILD is a call of a function
that an inserted ``GLOBAL _ _`` puts on the stack. ``_opwalk.planned_load`` (``_planload.c``) then
loads the rewritten stream with the C unpickler and three hooks written in C, so a small load runs no
Python frame of ours once its decisions are cached:

- ``find_class`` resolves each occurrence as :func:`decide` says (once per module, name and bits):
  the real global where the static pass would not look further (inert callables, globals only used
  as values, ``range`` when no result of it is passed to a call), a checking wrapper for the
  callables the static pass has argument rules for (``bytes``, ``bytearray``, ``Decimal``,
  ``defaultdict``, the copyreg helpers, ``_codecs.encode`` and numpy's reconstructors), and
  :class:`NeedsScan` for everything else;
- each wrapper applies the static pass's rule for that callable (``_scanner._rules._arg_problem``)
  to the real arguments, knowing from the plan which positions are literals and which call results
  (``numpy.dtype(str, bool(0), True)`` is refused there, so it is here); numpy's calls then get the
  checks of :class:`~anypickle.safe._numpy_guard.NumpyGuard`, the guard of the checked load;
- every BUILD is a call of the load's state: numpy's dtypes and arrays are checked as the guard
  checks them (a dtype's state compared with what numpy writes, through the guard's cache of
  verified states and its own Python code on a miss), anything else runs only as a BUILD the C
  unpickler and pickle.py both do the same way (the static path loads with one or the other).

It only ever accepts a subset of what the static pass accepts: whatever it cannot prove the same
(a call result where the static pass wants a literal, a shape it does not know) raises
:class:`NeedsScan`, and ``planned_load`` returns ``MISS``: the caller runs the static pass and the
checked load as before. A planned load that raises anything else is also redone that way, so errors
and results are the static path's.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable, Mapping

from ._allowlist import CALL, INERT, NOBUILD, Allowlist, map_python2, resolve_global
from ._opwalk import configure_planned, planned_load

__all__ = ["NeedsScan", "configure", "decide", "planned_load"]

# The plan's bits (_opwalk.c, "The plan").
O_CALL, O_NEWOBJ, O_VALUE, O_MODIFIED, O_RES_BUILT, O_RES_MUTATED, O_RES_FED = 1, 2, 4, 8, 16, 32, 64
P_IS, P_HAS = 8, 24

# What decide() returns, (kind, object, names numpy, rule, argument): the kinds and the rules of
# _planload.c.
K_REAL, K_WRAP, K_SCAN = 0, 1, 2
(R_ENCODE, R_BYTES, R_DECIMAL, R_DEFAULTDICT, R_RECONSTRUCTOR, R_NEWOBJ,
 R_NP_DTYPE, R_NP_RECONSTRUCT, R_NP_SCALAR, R_NP_FROMBUFFER) = range(1, 11)
BYTES_FIRST_MADE, BYTES_FIRST_ENCODED = 1, 2


class NeedsScan(Exception):
    """The planned load met something only the static pass may judge."""


def _has(bits: int, i: int) -> bool:
    """Position i of some call (or state) holds a call result, or a container holding one."""
    return bool(bits >> (P_HAS + i) & 1)


def _is(bits: int, i: int) -> bool:
    """Position i of some call (or state) is a call result."""
    return bool(bits >> (P_IS + i) & 1)


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
_RULED_INERT = {("decimal", "Decimal"), ("collections", "defaultdict"), ("_codecs", "encode")}
Decision = tuple[int, Any, bool, int, int]


def decide(allow: Allowlist, module: str, name: str, py2_names: bool, bits: int) -> Decision:
    """How the planned load resolves one global occurrence: ``(K_REAL, the global, names numpy, 0,
    0)``, ``(K_WRAP, the global, names numpy, rule, argument)`` for a checking wrapper of
    ``_planload.c``, or ``(K_SCAN, None, names numpy, 0, 0)``. A function of its arguments only, so
    the load caches it."""
    pair = map_python2(module, name) if py2_names else (module, name)
    role = allow.role(*pair)
    numpy = pair[0] == "numpy" or pair[0] in _NUMPY_MODULES
    scan = (K_SCAN, None, numpy, 0, 0)
    if not role or bits & O_MODIFIED:
        return scan  # not allowed, or BUILD/SETITEM on a global: the static pass refuses
    use = bits & (O_CALL | O_NEWOBJ | O_VALUE)
    if use == O_VALUE:  # only a value: what the checked load's find_class returns
        if pair == ("_codecs", "encode"):
            return scan  # the checked load returns its substitute here
        return K_REAL, resolve_global(*pair), numpy, 0, 0
    if role & INERT and pair not in _RULED_INERT:
        return K_REAL, resolve_global(*pair), numpy, 0, 0  # harmless to call with anything (INERT)
    if use != O_CALL or not role & CALL:
        return scan  # NEWOBJ of a class with rules, or called and a value at once
    if role & NOBUILD and bits & (O_RES_BUILT | O_RES_MUTATED):
        return scan  # what it returns may be shared: the static pass refuses BUILD on it
    if pair == ("builtins", "range"):
        # list(range(10**10)): the static pass refuses a range result fed to a call
        return scan if bits & O_RES_FED else (K_REAL, range, numpy, 0, 0)
    rule = _RULES.get(pair[1] if numpy else pair)
    if rule is None or (numpy and bits & O_RES_MUTATED):
        return scan
    try:
        code, arg = rule(bits)
    except NeedsScan:
        return scan
    return K_WRAP, resolve_global(*pair), numpy, code, arg


# The static pass's argument rules (_scanner._rules._arg_problem), as far as the bits alone tell:
# each returns the rule of _planload.c that checks the real arguments, and its argument, or raises
# NeedsScan for a shape (a call result where the static pass wants a literal) it would judge apart.
Rule = Callable[[int], tuple[int, int]]


def _needs_literals(code: int, *positions: int) -> Rule:
    def rule(bits: int) -> tuple[int, int]:
        if any(_has(bits, i) for i in positions):
            raise NeedsScan
        return code, 0
    return rule


def _bytes_rule(bits: int) -> tuple[int, int]:
    # bytes/bytearray only of a literal str or bytes, or of _codecs.encode's result; no size, no
    # codec but latin1
    if _has(bits, 1):
        raise NeedsScan
    return R_BYTES, (BYTES_FIRST_MADE if _has(bits, 0) else 0) | (BYTES_FIRST_ENCODED if _is(bits, 0) else 0)


def _numpy_rule(code: int, pure: tuple[int, ...], encoded_at: int | None) -> Rule:
    """numpy's reconstructors: positions ``pure`` must hold literals; ``encoded_at`` may hold what
    _codecs.encode returned (protocols 0-2 write bytes so); then the numpy guard's own check."""

    def rule(bits: int) -> tuple[int, int]:
        if any(_has(bits, i) for i in pure):
            raise NeedsScan
        at = encoded_at if encoded_at is not None and _has(bits, encoded_at) else None
        if at is not None and not _is(bits, at):
            raise NeedsScan
        return code, -1 if at is None else at
    return rule


_RULES: dict[object, Rule] = {
    ("_codecs", "encode"): _needs_literals(R_ENCODE, 0, 1),  # encode(<str>, 'latin1')
    ("builtins", "bytes"): _bytes_rule,
    ("builtins", "bytearray"): _bytes_rule,
    ("decimal", "Decimal"): _needs_literals(R_DECIMAL, 0),  # Decimal(<int>) has a digits limit
    ("collections", "defaultdict"): _needs_literals(R_DEFAULTDICT, 0),  # factory None or a global
    ("copyreg", "_reconstructor"): _needs_literals(R_RECONSTRUCTOR, 0, 1),  # (cls, object, state)
    ("copyreg", "__newobj__"): _needs_literals(R_NEWOBJ, 0),
    # numpy (keyed by name; the module is one of _NUMPY_MODULES, or numpy for dtype)
    "dtype": _numpy_rule(R_NP_DTYPE, (0, 1, 2), None),  # (str, bool, True)
    "_reconstruct": _numpy_rule(R_NP_RECONSTRUCT, (0, 1), 2),  # (numpy.ndarray, (0,), b'b')
    "scalar": _numpy_rule(R_NP_SCALAR, (), 1),  # (<dtype>, <bytes>)
    "_frombuffer": _numpy_rule(R_NP_FROMBUFFER, (2, 3), None),  # (<buffer>, <dtype>, <shape>, order)
}


class _PlannedUnpickler(pickle.Unpickler):
    """The C unpickler with an instance __dict__ (planned_load sets its find_class)."""

    def persistent_load(self, pid: object) -> object:
        raise NeedsScan


def _numpy() -> tuple:
    """What the C BUILD of numpy objects shares with the numpy guard (imported on the first stream
    naming numpy)."""
    from . import _numpy_guard
    from ._limits import DEFAULT_LIMITS

    guard = _numpy_guard.NumpyGuard(DEFAULT_LIMITS)  # for its _verify, which uses no per-load state
    return guard.classes, guard.np.dtype, guard.np.ndarray, _numpy_guard._VERIFIED, guard._verify, _numpy_guard.nested_key


def configure(allow: Allowlist, substitutes: Mapping[tuple[str, str], object]) -> None:
    """Point the C planned load, and the C inert-only load, at ``allow`` (the default allowlist:
    streams loaded with extra ``allow`` entries take the Python steps); ``substitutes`` stand in for
    some inert globals in the inert-only load (``_loads._SUBSTITUTES``)."""
    decisions: dict[tuple, Decision] = {}
    inert: dict[tuple, object] = {}

    def decide_cached(module: str, name: str, py2_names: bool, bits: int) -> Decision:
        decision = decide(allow, module, name, py2_names, bits)
        if len(decisions) < 4096:
            decisions[(module, name, py2_names, bits)] = decision
        return decision

    def inert_class(cls: type) -> bool:
        pair = (cls.__module__, cls.__qualname__)
        return bool(allow.role(*pair) & INERT) and pair not in _RULED_INERT and resolve_global(*pair) is cls

    def inert_global(module: str, name: str, py2_names: bool) -> object:
        """The inert-only load's find_class (``_loads._SafeUnpickler`` with ``inert_only``): the global
        (or its substitute) when it is INERT, else None."""
        pair = map_python2(module, name) if py2_names else (module, name)
        found: object = None
        if allow.role(*pair) & INERT:
            found = substitutes.get(pair)
            if found is None:
                found = resolve_global(*pair)
        if len(inert) < 4096:
            inert[(module, name, py2_names)] = found
        return found

    configure_planned(_PlannedUnpickler, io.BytesIO, decisions, decide_cached, NeedsScan, inert_class, _numpy,
                      inert, inert_global, io.BufferedReader)
