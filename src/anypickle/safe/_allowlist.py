"""The exact allowlist shared by :mod:`anypickle.safe` and :mod:`anypickle.safe._scanner`: one source of truth.

Entries are ``(module, qualname)`` pairs, matched exactly, never by prefix. Each carries a role:
whether the global may only appear as a value (``builtins.int`` as a defaultdict factory), may be
called (REDUCE, NEWOBJ, OBJ, INST), and whether it is *inert*: safe to call with any data arguments and
immutable, so a stream that names only inert globals needs no static pass before the C unpickler runs.
"""

from __future__ import annotations

import functools
import sys
from typing import Iterable, Union

import _compat_pickle

from ..errors import DecodeError, UsageError

__all__ = [
    "CALL",
    "DEFAULT_ALLOW",
    "INERT",
    "NOBUILD",
    "VALUE",
    "Allowlist",
    "build_allowlist",
    "format_global",
    "map_python2",
    "resolve_global",
]

Pair = tuple[str, str]
AllowEntry = Union[str, Pair]

VALUE = 1  # may appear as a value on the stack (a class or constant stored as data)
CALL = 2  # may be the callable of REDUCE/OBJ/INST or the class of NEWOBJ
INERT = 4  # immutable and harmless to call with any data: the C unpickler may resolve it unscanned
NOBUILD = 8  # what it returns may be shared (an enum member): BUILD/SETITEMS on the result is refused

_INERT_CALL = VALUE | CALL | INERT

# Why each entry is here: the name ordinary pickles of that data kind write, at some protocol 0-5,
# after _compat_pickle maps Python 2 names (``__builtin__.xrange`` -> ``builtins.range``).
_DEFAULT: dict[Pair, int] = {
    # Protocols 0-3 write set/frozenset as REDUCE(set, (list,)); complex, slice always use REDUCE.
    ("builtins", "set"): _INERT_CALL,
    ("builtins", "frozenset"): _INERT_CALL,
    ("builtins", "complex"): _INERT_CALL,
    ("builtins", "slice"): _INERT_CALL,
    ("builtins", "list"): _INERT_CALL,
    ("builtins", "dict"): _INERT_CALL,
    ("builtins", "tuple"): _INERT_CALL,
    ("builtins", "float"): _INERT_CALL,
    ("builtins", "bool"): _INERT_CALL,
    # copyreg._reconstructor(cls, object, state) at protocols 0-1; NEWOBJ(object) for plain instances.
    ("builtins", "object"): _INERT_CALL,
    # int(Decimal("1e999999999")) takes minutes and str(b, encoding) looks a codec up by a name the
    # stream chooses: both may be values (defaultdict(int)), never called.
    ("builtins", "int"): VALUE,
    ("builtins", "str"): VALUE,
    ("builtins", "Ellipsis"): VALUE,
    ("builtins", "NotImplemented"): VALUE,
    # bytes(10**12) / range(10**18) amplify a few input bytes into gigabytes: callable, but only
    # after the static pass has checked their arguments (see anypickle.safe._scanner._rules).
    ("builtins", "bytes"): VALUE | CALL,
    ("builtins", "bytearray"): VALUE | CALL,
    ("builtins", "range"): VALUE | CALL,
    # Protocols 0-2 write bytes as _codecs.encode(str, "latin1"); safe.py substitutes a strict
    # latin-1-only function, so no codec lookup by a name chosen by the stream can happen.
    ("_codecs", "encode"): _INERT_CALL,
    ("datetime", "datetime"): _INERT_CALL,
    ("datetime", "date"): _INERT_CALL,
    ("datetime", "time"): _INERT_CALL,
    ("datetime", "timedelta"): _INERT_CALL,
    ("datetime", "timezone"): _INERT_CALL,
    ("decimal", "Decimal"): _INERT_CALL,
    ("collections", "OrderedDict"): _INERT_CALL,
    ("collections", "deque"): _INERT_CALL,
    ("collections", "defaultdict"): _INERT_CALL,
    # Pure-Python classes (heap types): setattr on the class itself would work, so only the static
    # pass, which refuses BUILD on a global, may let them through.
    ("collections", "Counter"): VALUE | CALL,
    ("fractions", "Fraction"): VALUE | CALL,
    # uuid.UUID is a pure-Python class too, but the C unpickler cannot change it: BUILD on the class
    # calls UUID.__setstate__(state) unbound, which lacks its second argument and raises TypeError
    # (3.10-3.13), and the class has no append/extend/add/__setitem__. Its constructor only parses
    # its arguments. So it is inert (tests/test_safe_opwalk.py proves the class stays unchanged).
    ("uuid", "UUID"): _INERT_CALL,
    ("uuid", "SafeUUID"): VALUE | CALL | NOBUILD,
    ("copyreg", "_reconstructor"): CALL,
    ("copyreg", "__newobj__"): CALL,
    ("copyreg", "__newobj_ex__"): CALL,
    # numpy: 2.x writes numpy._core, 1.x numpy.core; protocol 5 writes _frombuffer. numpy.dtype
    # with copy=False returns a process-wide singleton, so the static pass requires copy=True.
    ("numpy", "ndarray"): VALUE,
    ("numpy", "dtype"): VALUE | CALL,
    ("numpy.core.multiarray", "_reconstruct"): CALL,
    ("numpy._core.multiarray", "_reconstruct"): CALL,
    # scalar() may return numpy's shared np.True_/np.False_; numpy never BUILDs on a scalar.
    ("numpy.core.multiarray", "scalar"): CALL | NOBUILD,
    ("numpy._core.multiarray", "scalar"): CALL | NOBUILD,
    ("numpy.core.numeric", "_frombuffer"): CALL,
    ("numpy._core.numeric", "_frombuffer"): CALL,
}

DEFAULT_ALLOW: frozenset[str] = frozenset(f"{m}.{n}" for m, n in _DEFAULT)
"""The default allowlist as ``"module.qualname"`` strings (documentation and reports)."""


def format_global(module: str, name: str) -> str:
    """``"module.qualname"``, the way errors and reports name a global."""
    return f"{module}.{name}"


def map_python2(module: str, name: str) -> Pair:
    """Map a Python 2 name as ``pickle``'s find_class does with fix_imports (protocols 0-2)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    if module in _compat_pickle.IMPORT_MAPPING:
        return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


def _parse_entry(entry: AllowEntry) -> Pair:
    """``"mod.name"`` splits at the last dot; ``"pkg.mod:Outer.Inner"`` names a nested qualname."""
    if isinstance(entry, tuple) and len(entry) == 2 and all(isinstance(p, str) for p in entry):
        module, name = entry
    elif isinstance(entry, str):
        if ":" in entry:
            module, _, name = entry.partition(":")
        else:
            module, _, name = entry.rpartition(".")
    else:
        raise UsageError(f"allow entries are 'module.qualname' strings, got {entry!r}")
    if not module or not name or any(not part for part in name.split(".")):
        raise UsageError(
            f"allow entry {entry!r} must be 'module.name' (or 'module:Outer.Inner' for a nested name)"
        )
    return module, name


class Allowlist:
    """An immutable map from ``(module, qualname)`` to role flags; unknown pairs have role 0."""

    __slots__ = ("_roles",)

    def __init__(self, roles: dict[Pair, int]) -> None:
        self._roles = roles

    def role(self, module: str, name: str) -> int:
        """The role flags of exactly this global (0: not allowed)."""
        return self._roles.get((module, name), 0)

    def __contains__(self, pair: object) -> bool:
        return pair in self._roles


@functools.lru_cache(maxsize=64)
def _build(extra: tuple[Pair, ...]) -> Allowlist:
    roles = dict(_DEFAULT)
    for pair in extra:
        # A user entry may be called and built: the user vouches for the class.
        roles[pair] = (roles.get(pair, 0) & ~(INERT | NOBUILD)) | VALUE | CALL
    return Allowlist(roles)


def build_allowlist(allow: Iterable[AllowEntry] = ()) -> Allowlist:
    """The default allowlist plus the user's exact ``allow`` entries."""
    if not allow and isinstance(allow, (tuple, list)):
        return _build(())  # the common case (lru-cached): no set, no sort per call
    if isinstance(allow, (str, bytes)):
        raise UsageError("allow must be a list of 'module.qualname' strings, not a single string")
    return _build(tuple(sorted({_parse_entry(entry) for entry in allow})))


def resolve_global(module: str, name: str) -> object:
    """Import an allowed module and walk ``name``'s dots with getattr, as pickle's find_class does."""
    try:
        __import__(module, level=0)
        obj: object = sys.modules[module]
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, KeyError) as exc:
        raise DecodeError(
            f"allowed global {format_global(module, name)} cannot be imported here: {exc}"
        ) from exc
    return obj
