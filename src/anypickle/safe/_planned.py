"""The planned load of safe loading: the C unpickler runs a stream that names non-inert globals, with
checks only at the calls and BUILDs the static pass would judge.

``_opwalk.safe_plan`` walks the stream without executing it and returns its *plan* (see "The plan" in
``_opwalk.c``): for each global occurrence, in the order the C unpickler will call ``find_class``,
how the stream uses it (called, used as a value, changed by BUILD or SETITEM, its results built,
changed or passed to other calls) and which argument positions of its calls hold a call result; the
same for each BUILD's state; and the stream rewritten so that every BUILD is a call of a function
that an inserted ``GLOBAL _ _`` puts on the stack. :class:`PlannedLoad` then loads the rewritten
stream with the C unpickler:

- ``find_class`` resolves each occurrence from the plan: the real global where the static pass would
  not look further (inert callables, globals only used as values, ``range`` when no result of it is
  passed to a call), a checking wrapper for the callables the static pass has argument rules for
  (``bytes``, ``bytearray``, ``Decimal``, ``defaultdict``, the copyreg helpers, ``_codecs.encode``
  and numpy's reconstructors), and :class:`NeedsScan` for everything else;
- each wrapper applies the static pass's rule for that callable (``_scanner._rules._arg_problem``)
  to the real arguments, knowing from the plan which positions are literals and which call results
  (``numpy.dtype(str, bool(0), True)`` is refused there, so it is here), then numpy's calls go
  through :class:`~anypickle.safe._numpy_guard.NumpyGuard` exactly as in the checked load;
- every BUILD goes through :meth:`PlannedLoad.build`: numpy objects through the same guard (dtype
  states compared before they are applied), anything else as a BUILD the C unpickler and pickle.py
  both do the same way (the static path loads with one or the other).

It only ever accepts a subset of what the static pass accepts: whatever it cannot prove the same
(a call result where the static pass wants a literal, a shape it does not know) raises
:class:`NeedsScan`, and the caller runs the static pass and the checked load as before. A planned
load that raises anything else is also redone that way, so errors and results are the static
path's.
"""

from __future__ import annotations

import functools
import io
import pickle
import sys
from typing import Any, Callable

from ._allowlist import CALL, INERT, NOBUILD, Allowlist, map_python2, resolve_global
from ._limits import Limits
from ._numpy_guard import NumpyGuard

__all__ = ["NeedsScan", "PlannedLoad"]

# The plan's bits (_opwalk.c, "The plan").
O_CALL, O_NEWOBJ, O_VALUE, O_MODIFIED, O_RES_BUILT, O_RES_MUTATED, O_RES_FED = 1, 2, 4, 8, 16, 32, 64
OCC_BUILDER = 1 << 62  # the GLOBAL the rewrite inserts for each BUILD
P_IS, P_HAS = 8, 24
B_IS, B_HAS = 1, 2
_HAS_0 = 1 << P_HAS
_ARRAY_LITERALS = (1 << P_HAS) | (1 << (P_HAS + 1)) | (1 << (P_HAS + 3))  # (1, shape, _, is_fortran, _)
_HAS_4, _IS_4 = 1 << (P_HAS + 4), 1 << (P_IS + 4)


class NeedsScan(Exception):
    """The planned load met something only the static pass may judge."""


def _has(bits: int, i: int) -> bool:
    """Position i of some call (or state) holds a call result, or a container holding one."""
    return bool(bits >> (P_HAS + i) & 1)


def _is(bits: int, i: int) -> bool:
    """Position i of some call (or state) is a call result."""
    return bool(bits >> (P_IS + i) & 1)


_LATIN1 = ("latin1", "latin-1")
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
_RULED_INERT = {("decimal", "Decimal"), ("collections", "defaultdict"), ("_codecs", "encode")}
_REAL, _WRAP, _SCAN = 0, 1, 2
_DECISIONS: dict[Allowlist, dict[tuple, tuple[int, Any, bool]]] = {}  # see PlannedLoad._decide


class PlannedLoad:
    """One planned load (see the module docstring): ``load()`` returns the object or raises."""

    __slots__ = ("allow", "limits", "occ", "builds", "next_occ", "next_build", "encoded_ids", "returned", "guard",
                 "decisions", "py2_names", "builder")

    def __init__(self, allow: Allowlist, limits: Limits, occ: tuple, builds: tuple) -> None:
        self.allow = allow
        decisions = _DECISIONS.get(allow)
        if decisions is None:
            decisions = _DECISIONS[allow] = {}
        self.decisions = decisions
        self.py2_names = False
        self.limits = limits
        self.occ = occ
        self.builds = builds
        self.next_occ = 0
        self.next_build = 0
        self.encoded_ids: dict[int, bytes] = {}  # id -> what _codecs.encode returned in this load
        self.returned: list[object] = []  # what find_class returned (globals, for identity tests)
        self.guard: NumpyGuard | None = None
        self.builder: Callable[[Any, Any], Any] | None = self.build  # bound once (close() unbinds it)

    # -- loading ------------------------------------------------------------------------------
    def load(self, rewritten: bytes, py2_names: bool) -> object:
        # A new unpickler each time: one reused would number MEMOIZE entries on from its last load
        # (clearing its memo does not reset the count).
        file = io.BytesIO(rewritten)
        unpickler = _PlannedUnpickler(file)
        self.py2_names = py2_names
        # an instance attribute: no method call in between
        unpickler.find_class = self.find_class  # type: ignore[method-assign]
        obj = unpickler.load()
        if file.tell() != len(rewritten) or self.next_occ != len(self.occ) or self.next_build != len(self.builds):
            raise NeedsScan  # the walk and the unpickler disagree: let the static pass decide
        return obj

    def close(self) -> None:
        self.builder = None
        self.encoded_ids.clear()
        self.returned.clear()
        if self.guard is not None:
            self.guard.close()

    # -- find_class ---------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> object:
        """The unpickler's find_class: the k-th call resolves the plan's k-th occurrence."""
        k = self.next_occ
        self.next_occ = k + 1
        try:
            bits = self.occ[k]
        except IndexError:
            raise NeedsScan from None
        if bits == OCC_BUILDER:
            if module != "_" or name != "_" or self.builder is None:
                raise NeedsScan
            return self.builder
        decisions = self.decisions
        key = (module, name, self.py2_names, bits)
        decision = decisions.get(key)
        if decision is None:
            decision = self._decide(module, name, self.py2_names, bits)
            if len(decisions) < 4096:
                decisions[key] = decision
        kind, payload, numpy = decision
        if numpy and self.guard is None:
            self.guard = NumpyGuard(self.limits)
        if kind == _REAL:
            obj = payload
        elif kind == _WRAP:
            obj = payload(self)
        else:
            raise NeedsScan
        self.returned.append(obj)
        return obj

    # -- BUILD --------------------------------------------------------------------------------
    def build(self, inst: Any, state: Any) -> Any:
        """BUILD, as the rewritten stream calls it: numpy's through the guard, others as pickle does."""
        k = self.next_build
        self.next_build = k + 1
        if k >= len(self.builds):
            raise NeedsScan
        bits = self.builds[k]
        guard = self.guard
        if guard is not None and isinstance(inst, guard.classes):
            # The static pass wants numpy states as literals (a dtype's version, an array's shape,
            # order flag and data), except the dtypes the guard checks by identity and the data
            # _codecs.encode makes at protocols 0-2.
            if bits & B_IS or type(state) is not tuple:
                raise NeedsScan
            if isinstance(inst, guard.np.dtype):
                if bits & _HAS_0:
                    raise NeedsScan
                guard._build_dtype(inst, state)
                return inst
            if isinstance(inst, guard.np.ndarray):
                if bits & _ARRAY_LITERALS:
                    raise NeedsScan
                if bits & _HAS_4 and len(state) == 5:
                    if bits & _IS_4:
                        if not self.encoded(state[4]):
                            raise NeedsScan
                    elif type(state[4]) is not list:
                        raise NeedsScan
                guard._build_array(inst, state)
                return inst
            guard.build(inst, state)  # refuses (a numpy scalar)
            return inst
        _build_as_both(inst, state)
        return inst

    def _decide(self, module: str, name: str, py2_names: bool, bits: int) -> tuple[int, Any, bool]:
        """How to resolve an occurrence: (_REAL, the global, names numpy), (_WRAP, a function making
        its checking wrapper for a load, ...) or (_SCAN, None, ...). A function of its arguments and
        the allowlist only, so it is cached."""
        pair = map_python2(module, name) if py2_names else (module, name)
        role = self.allow.role(*pair)
        numpy = pair[0] == "numpy" or pair[0] in _NUMPY_MODULES
        if not role or bits & O_MODIFIED:
            return _SCAN, None, numpy  # not allowed, or BUILD/SETITEM on a global: the static pass refuses
        use = bits & (O_CALL | O_NEWOBJ | O_VALUE)
        if use == O_VALUE:  # only a value: what the checked load's find_class returns
            if pair == ("_codecs", "encode"):
                return _SCAN, None, numpy  # the checked load returns its substitute here
            return _REAL, resolve_global(*pair), numpy
        if role & INERT and pair not in _RULED_INERT:
            return _REAL, resolve_global(*pair), numpy  # harmless to call with anything (INERT)
        if use != O_CALL or not role & CALL:
            return _SCAN, None, numpy  # NEWOBJ of a class with rules, or called and a value at once
        if role & NOBUILD and bits & (O_RES_BUILT | O_RES_MUTATED):
            return _SCAN, None, numpy  # what it returns may be shared: the static pass refuses BUILD on it
        if pair == ("builtins", "range"):
            # list(range(10**10)): the static pass refuses a range result fed to a call
            return (_SCAN, None, numpy) if bits & O_RES_FED else (_REAL, range, numpy)
        maker = _MAKERS.get(pair[1] if numpy else pair)
        if maker is None or (numpy and bits & O_RES_MUTATED):
            return _SCAN, None, numpy
        try:
            return _WRAP, maker(resolve_global(*pair), bits), numpy
        except NeedsScan:
            return _SCAN, None, numpy

    # -- the static pass's argument rules on real arguments (_scanner._rules._arg_problem) ----
    def encoded(self, value: object) -> bool:
        """value is what this load's _codecs.encode returned (not a literal, not another call's)."""
        return self.encoded_ids.get(id(value)) is value

    def inert_class(self, cls: object) -> bool:
        """cls is a global this load resolved, of an inert class without argument rules."""
        if not isinstance(cls, type) or not any(cls is g for g in self.returned):
            return False
        pair = (cls.__module__, cls.__qualname__)
        return bool(self.allow.role(*pair) & INERT) and pair not in _RULED_INERT and resolve_global(*pair) is cls


# Each maker: (the global, the occurrence's bits) -> (a PlannedLoad -> the checking wrapper), or
# NeedsScan when the bits alone show a shape the static pass would judge differently.
Maker = Callable[[Any, int], Callable[[PlannedLoad], Callable[..., Any]]]


def _make_encode(func: Any, bits: int) -> Callable[[PlannedLoad], Callable[..., bytes]]:
    if _has(bits, 0) or _has(bits, 1):
        raise NeedsScan

    def for_load(load: PlannedLoad) -> Callable[..., bytes]:
        def encode(*args: object) -> bytes:
            # only encode(<str>, 'latin1'), as protocols 0-2 write bytes
            if not (len(args) == 2 and type(args[0]) is str and type(args[1]) is str and args[1] in _LATIN1):
                raise NeedsScan
            out = args[0].encode("latin-1")
            load.encoded_ids[id(out)] = out
            return out
        return encode
    return for_load


def _make_bytes(cls: Any, bits: int) -> Callable[[PlannedLoad], Callable[..., Any]]:
    if _has(bits, 1):
        raise NeedsScan
    first_made = _has(bits, 0)
    first_may_be_encoded = _is(bits, 0)

    def for_load(load: PlannedLoad) -> Callable[..., Any]:
        def make(*args: object) -> Any:
            # bytes/bytearray only of a literal str or bytes, or of _codecs.encode's result; no
            # size, no codec but latin1
            first = args[0] if args else b""
            if args and first_made and not (first_may_be_encoded and load.encoded(first)):
                raise NeedsScan
            if not (len(args) <= 2 and type(first) in (str, bytes)
                    and (len(args) < 2 or (type(args[1]) is str and args[1] in _LATIN1))
                    and (type(first) is not str or len(args) == 2)):
                raise NeedsScan
            return cls(*args)
        return make
    return for_load


def _make_decimal(cls: Any, bits: int) -> Callable[[PlannedLoad], Callable[..., Any]]:
    if _has(bits, 0):
        raise NeedsScan

    def make(*args: object) -> Any:
        if not (len(args) == 1 and type(args[0]) is str):
            raise NeedsScan  # Decimal(<int>) has a digits limit: the static pass judges it
        return cls(*args)
    return lambda load: make


def _make_defaultdict(cls: Any, bits: int) -> Callable[[PlannedLoad], Callable[..., Any]]:
    if _has(bits, 0):
        raise NeedsScan

    def for_load(load: PlannedLoad) -> Callable[..., Any]:
        def make(*args: object) -> Any:
            if args and not (args[0] is None or any(args[0] is g for g in load.returned)):
                raise NeedsScan  # the factory must be None or a global
            return cls(*args)
        return make
    return for_load


def _make_reconstructor(func: Any, bits: int) -> Callable[[PlannedLoad], Callable[..., Any]]:
    if _has(bits, 0) or _has(bits, 1):
        raise NeedsScan

    def for_load(load: PlannedLoad) -> Callable[..., Any]:
        def make(*args: object) -> Any:
            # _reconstructor(cls, object, state), what protocols 0-1 write for plain instances
            if not (len(args) == 3 and args[1] is object and load.inert_class(args[0])):
                raise NeedsScan
            return func(*args)
        return make
    return for_load


def _make_newobj(func: Any, bits: int) -> Callable[[PlannedLoad], Callable[..., Any]]:
    if _has(bits, 0):
        raise NeedsScan

    def for_load(load: PlannedLoad) -> Callable[..., Any]:
        def make(*args: object) -> Any:
            if not (args and load.inert_class(args[0])):
                raise NeedsScan
            return func(*args)
        return make
    return for_load


def _numpy_maker(check: Callable[..., Any], pure: tuple[int, ...],
                 encoded_at: int | None) -> Maker:
    """numpy's reconstructors: positions ``pure`` must hold literals; ``encoded_at`` may hold what
    _codecs.encode returned (protocols 0-2 write bytes so); then the guard's own check."""

    def maker(func: Any, bits: int) -> Callable[[PlannedLoad], Callable[..., Any]]:
        if any(_has(bits, i) for i in pure):
            raise NeedsScan
        at = encoded_at if encoded_at is not None and _has(bits, encoded_at) else None
        if at is not None and not _is(bits, at):
            raise NeedsScan

        pos = -1 if at is None else at

        def for_load(load: PlannedLoad) -> Callable[..., Any]:
            guard = load.guard
            assert guard is not None  # made when the occurrence resolved (it names numpy)
            if at is None:
                # what guard.call(func, args) runs for func (a partial: no Python frame of its own)
                return functools.partial(check, guard, func)

            def call_encoded(*args: object) -> Any:
                if len(args) > pos and not load.encoded(args[pos]):
                    raise NeedsScan
                return check(guard, func, *args)
            return call_encoded
        return for_load
    return maker


_MAKERS: dict[object, Maker] = {
    ("_codecs", "encode"): _make_encode,
    ("builtins", "bytes"): _make_bytes,
    ("builtins", "bytearray"): _make_bytes,
    ("decimal", "Decimal"): _make_decimal,
    ("collections", "defaultdict"): _make_defaultdict,
    ("copyreg", "_reconstructor"): _make_reconstructor,
    ("copyreg", "__newobj__"): _make_newobj,
    # numpy (keyed by name; the module is one of _NUMPY_MODULES, or numpy for dtype)
    "dtype": _numpy_maker(NumpyGuard._dtype, (0, 1, 2), None),  # (str, bool, True)
    "_reconstruct": _numpy_maker(NumpyGuard._reconstruct, (0, 1), 2),  # (numpy.ndarray, (0,), b'b')
    "scalar": _numpy_maker(NumpyGuard._scalar, (), 1),  # (<dtype>, <bytes>)
    "_frombuffer": _numpy_maker(NumpyGuard._frombuffer, (2, 3), None),  # (<buffer>, <dtype>, <shape>, order)
}


_NO = object()


def _build_as_both(inst: Any, state: Any) -> None:
    """BUILD where the C unpickler (the static path's load of a stream without numpy) and pickle.py
    (its load of a stream naming numpy) do the same, NeedsScan where they differ: a state that is
    not a dict is an error in C and skipped by pickle.py when falsy; an empty dict makes C fetch
    __dict__, which pickle.py does not."""
    setstate: Any = getattr(inst, "__setstate__", _NO)
    if setstate is not _NO:
        setstate(state)
        return
    slotstate = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slotstate = state
    if state is not None:
        if type(state) is not dict or (not state and not hasattr(inst, "__dict__")):
            raise NeedsScan
        inst_dict = inst.__dict__
        for k, v in state.items():
            inst_dict[sys.intern(k) if type(k) is str else k] = v
    if slotstate is not None:
        if type(slotstate) is not dict:
            raise NeedsScan
        for k, v in slotstate.items():
            setattr(inst, k, v)


class _PlannedUnpickler(pickle.Unpickler):
    """The C unpickler with an instance __dict__ (PlannedLoad.load sets its find_class)."""

    def persistent_load(self, pid: object) -> object:
        raise NeedsScan
