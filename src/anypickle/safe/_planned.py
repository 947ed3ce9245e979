"""The planned load of safe loading: the C unpickler runs a stream that names non-inert globals, with
checks only at the calls and BUILDs the static pass would judge.

``_opwalk.safe_plan`` walks the stream without executing it and returns its *plan* (see "The plan" in
``_opwalk.c``): for each global occurrence, in the order the C unpickler will call ``find_class``,
how the stream uses it (called, used as a value, changed by BUILD or SETITEM, its results built,
changed or passed to other calls) and which argument positions of its calls hold a call result; the
same for each BUILD's state; and the stream rewritten so that every BUILD is a call of a function
placed in the memo. :class:`PlannedLoad` then loads the rewritten stream with the C unpickler:

- ``find_class`` resolves each occurrence from the plan: the real global where the static pass would
  not look further (inert callables, globals only used as values), a checking wrapper for the
  callables the static pass has argument rules for (``bytes``, ``bytearray``, ``range``, ``Decimal``,
  ``defaultdict``, the copyreg helpers, ``_codecs.encode`` and numpy's reconstructors), and
  :class:`NeedsScan` for everything else;
- each wrapper applies the static pass's rule for that callable (``_scanner._rules._arg_problem``)
  to the real arguments, knowing from the plan which positions are literals and which call results
  (``numpy.dtype(str, bool(0), True)`` is refused there, so it is here), then numpy's calls go
  through :class:`~anypickle.safe._numpy_guard.NumpyGuard` exactly as in the checked load;
- every BUILD goes through :meth:`PlannedLoad.build`: numpy objects through the same guard (dtype
  states compared before they are applied), anything else through ``pickle``'s own BUILD.

It only ever accepts a subset of what the static pass accepts: whatever it cannot prove the same
(a call result where the static pass wants a literal, a shape it does not know) raises
:class:`NeedsScan`, and the caller runs the static pass and the checked load as before. A planned
load that raises anything else is also redone that way, so errors and results are the static
path's.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from typing import Any, Callable

from ._allowlist import CALL, INERT, NOBUILD, VALUE, Allowlist, map_python2, resolve_global
from ._limits import Limits
from ._numpy_guard import NumpyGuard

__all__ = ["NeedsScan", "PlannedLoad"]

# The plan's bits (_opwalk.c, "The plan").
O_CALL, O_NEWOBJ, O_VALUE, O_MODIFIED, O_RES_BUILT, O_RES_MUTATED, O_RES_FED = 1, 2, 4, 8, 16, 32, 64
OCC_BUILDER = 1 << 62  # the GLOBAL the rewrite inserts for each BUILD
P_IS, P_HAS = 8, 24
B_IS, B_HAS = 1, 2


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


class PlannedLoad:
    """One planned load (see the module docstring): ``load()`` returns the object or raises."""

    __slots__ = ("allow", "limits", "occ", "builds", "next_occ", "next_build", "encoded", "returned", "guard")

    def __init__(self, allow: Allowlist, limits: Limits, occ: tuple, builds: tuple) -> None:
        self.allow = allow
        self.limits = limits
        self.occ = occ
        self.builds = builds
        self.next_occ = 0
        self.next_build = 0
        self.encoded: dict[int, bytes] = {}  # id -> what _codecs.encode returned in this load
        self.returned: list[object] = []  # what find_class returned (globals, for identity tests)
        self.guard: NumpyGuard | None = None

    # -- loading ------------------------------------------------------------------------------
    def load(self, rewritten: bytes, py2_names: bool) -> object:
        file = io.BytesIO(rewritten)
        unpickler = _PlannedUnpickler(file)
        unpickler._plan = self
        unpickler._py2_names = py2_names
        obj = unpickler.load()
        if file.tell() != len(rewritten) or self.next_occ != len(self.occ) or self.next_build != len(self.builds):
            raise NeedsScan  # the walk and the unpickler disagree: let the static pass decide
        return obj

    def close(self) -> None:
        self.encoded.clear()
        self.returned.clear()
        if self.guard is not None:
            self.guard.close()

    # -- find_class ---------------------------------------------------------------------------
    def resolve(self, module: str, name: str, py2_names: bool) -> object:
        k = self.next_occ
        self.next_occ = k + 1
        if k >= len(self.occ):
            raise NeedsScan
        bits = self.occ[k]
        if bits == OCC_BUILDER:
            if module != "_" or name != "_":
                raise NeedsScan
            return self.build
        pair = map_python2(module, name) if py2_names else (module, name)
        role = self.allow.role(*pair)
        if not role or bits & O_MODIFIED:
            raise NeedsScan  # not allowed, or BUILD/SETITEM on a global: the static pass refuses
        if pair[0] == "numpy" or pair[0] in _NUMPY_MODULES:
            if self.guard is None:
                self.guard = NumpyGuard(self.limits)
        use = bits & (O_CALL | O_NEWOBJ | O_VALUE)
        if use == O_VALUE:  # only a value: what the checked load's find_class returns
            if pair == ("_codecs", "encode"):
                raise NeedsScan  # the checked load returns its substitute here
            obj = resolve_global(*pair)
        elif role & INERT and pair not in _RULED_INERT:
            obj = resolve_global(*pair)  # harmless to call with anything (the allowlist's INERT)
        elif use == O_CALL and role & CALL:
            obj = self._wrapper(pair, role, bits)
        else:
            raise NeedsScan  # NEWOBJ of a class with rules, or called and a value at once
        self.returned.append(obj)
        return obj

    def _wrapper(self, pair: tuple[str, str], role: int, bits: int) -> Callable[..., Any]:
        if role & NOBUILD and bits & (O_RES_BUILT | O_RES_MUTATED):
            raise NeedsScan  # what it returns may be shared: the static pass refuses BUILD on it
        module, name = pair
        if pair == ("_codecs", "encode"):
            return self._encode_for(bits)
        if pair in (("builtins", "bytes"), ("builtins", "bytearray")):
            return self._bytes_for(resolve_global(*pair), bits)
        if pair == ("builtins", "range"):
            if bits & O_RES_FED:
                raise NeedsScan  # list(range(10**10)): the static pass refuses a range fed to a call
            return range
        if pair == ("decimal", "Decimal"):
            return self._decimal_for(resolve_global(*pair), bits)
        if pair == ("collections", "defaultdict"):
            return self._defaultdict_for(resolve_global(*pair), bits)
        if pair == ("copyreg", "_reconstructor"):
            return self._reconstructor_for(bits)
        if pair == ("copyreg", "__newobj__"):
            return self._newobj_for(bits)
        if bits & O_RES_MUTATED:
            raise NeedsScan
        if pair == ("numpy", "dtype"):
            return self._numpy_for(pair, bits)
        if module in _NUMPY_MODULES and name in ("_reconstruct", "scalar", "_frombuffer"):
            return self._numpy_for(pair, bits)
        raise NeedsScan

    # -- the static pass's argument rules on real arguments (_scanner._rules._arg_problem) ----
    def _encoded(self, value: object) -> bool:
        """value is what this load's _codecs.encode returned (not a literal, not another call's)."""
        return self.encoded.get(id(value)) is value

    def _encode_for(self, bits: int) -> Callable[..., bytes]:
        if _has(bits, 0) or _has(bits, 1):
            raise NeedsScan

        def encode(*args: object) -> bytes:
            # only encode(<str>, 'latin1'), as protocols 0-2 write bytes
            if not (len(args) == 2 and type(args[0]) is str and type(args[1]) is str and args[1] in _LATIN1):
                raise NeedsScan
            out = args[0].encode("latin-1")  # type: ignore[union-attr]
            self.encoded[id(out)] = out
            return out

        return encode

    def _bytes_for(self, cls: Any, bits: int) -> Callable[..., Any]:
        if _has(bits, 1):
            raise NeedsScan

        def make(*args: object) -> Any:
            # bytes/bytearray only of a literal str or bytes, or of _codecs.encode's result; no
            # size, no codec but latin1
            first = args[0] if args else b""
            if _has(bits, 0) and not (_is(bits, 0) and self._encoded(first)):
                raise NeedsScan
            if not (len(args) <= 2 and type(first) in (str, bytes)
                    and (len(args) < 2 or (type(args[1]) is str and args[1] in _LATIN1))
                    and (type(first) is not str or len(args) == 2)):
                raise NeedsScan
            return cls(*args)

        return make

    def _decimal_for(self, cls: Any, bits: int) -> Callable[..., Any]:
        if _has(bits, 0):
            raise NeedsScan

        def make(*args: object) -> Any:
            if not (len(args) == 1 and type(args[0]) is str):
                raise NeedsScan  # Decimal(<int>) has a digits limit: the static pass judges it
            return cls(*args)

        return make

    def _defaultdict_for(self, cls: Any, bits: int) -> Callable[..., Any]:
        if _has(bits, 0):
            raise NeedsScan

        def make(*args: object) -> Any:
            if args and not (args[0] is None or any(args[0] is g for g in self.returned)):
                raise NeedsScan  # the factory must be None or a global
            return cls(*args)

        return make

    def _inert_class(self, cls: object) -> bool:
        """cls is a global this load resolved, of an inert class without argument rules."""
        if not any(cls is g for g in self.returned) or not isinstance(cls, type):
            return False
        pair = (cls.__module__, cls.__qualname__)
        return bool(self.allow.role(*pair) & INERT) and pair not in _RULED_INERT and resolve_global(*pair) is cls

    def _reconstructor_for(self, bits: int) -> Callable[..., Any]:
        if _has(bits, 0) or _has(bits, 1):
            raise NeedsScan

        def make(*args: object) -> Any:
            # _reconstructor(cls, object, state), what protocols 0-1 write for plain instances
            if not (len(args) == 3 and args[1] is object and self._inert_class(args[0])):
                raise NeedsScan
            return copyreg._reconstructor(*args)  # type: ignore[attr-defined]

        return make

    def _newobj_for(self, bits: int) -> Callable[..., Any]:
        if _has(bits, 0):
            raise NeedsScan

        def make(*args: object) -> Any:
            if not (args and self._inert_class(args[0])):
                raise NeedsScan
            return copyreg.__newobj__(*args)  # type: ignore[arg-type]

        return make

    def _numpy_for(self, pair: tuple[str, str], bits: int) -> Callable[..., Any]:
        func = resolve_global(*pair)
        guard = self.guard
        assert guard is not None
        name = pair[1]
        if name == "dtype":
            pure: tuple[int, ...] = (0, 1, 2)  # (str, bool, True)
        elif name == "_reconstruct":
            pure = (0, 1)  # (numpy.ndarray, (0,), b'b')
        elif name == "scalar":
            pure = ()  # (<dtype>, <bytes>)
        else:
            pure = (2, 3)  # _frombuffer(<buffer>, <dtype>, <shape>, 'C' or 'F')
        if any(_has(bits, i) for i in pure):
            raise NeedsScan

        def call(*args: object) -> Any:
            if name == "_reconstruct" and len(args) == 3:
                if _has(bits, 2) and not (_is(bits, 2) and self._encoded(args[2])):
                    raise NeedsScan
            elif name == "scalar" and len(args) == 2:
                if _has(bits, 1) and not (_is(bits, 1) and self._encoded(args[1])):
                    raise NeedsScan
            return guard.call(func, args)

        return call

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
            if bits & B_IS or not isinstance(state, tuple):
                raise NeedsScan
            if isinstance(inst, guard.np.ndarray):
                if any(_has(bits, i) for i in (0, 1, 3)):
                    raise NeedsScan
                if _has(bits, 4) and len(state) == 5:
                    data = state[4]
                    if not ((_is(bits, 4) and self._encoded(data)) or (not _is(bits, 4) and type(data) is list)):
                        raise NeedsScan
            elif _has(bits, 0):
                raise NeedsScan
            if guard.build(inst, state):
                return inst
        _PY_BUILD(_Stack([inst, state]))  # pickle's own BUILD, as the checked load does it
        return inst


class _Stack:
    """What pickle._Unpickler.load_build reads: a stack holding (inst, state)."""

    __slots__ = ("stack",)

    def __init__(self, stack: list) -> None:
        self.stack = stack


_PY_BUILD: Callable[[Any], None] = pickle._Unpickler.load_build  # type: ignore[attr-defined]


class _PlannedUnpickler(pickle.Unpickler):
    _plan: PlannedLoad
    _py2_names: bool

    def find_class(self, module: str, name: str) -> object:
        return self._plan.resolve(module, name, self._py2_names)

    def persistent_load(self, pid: object) -> object:
        raise NeedsScan
