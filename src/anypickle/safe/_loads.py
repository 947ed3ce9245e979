"""Safe loading (the implementation behind `anypickle.safe`): ``safe_loads`` loads ordinary data from any
pickle protocol and refuses everything else.

Two guards, both exact allowlists (:mod:`anypickle.safe._allowlist`):

1. The static pass (:mod:`anypickle.safe._scanner`) walks the stream without executing it and refuses any
   global outside the allowlist, computed globals, EXT and persistent ids, BUILD on shared objects,
   malformed streams and trailing bytes, with the byte position.
2. A ``pickle.Unpickler`` subclass whose ``find_class`` resolves only allowed globals, and whose
   ``persistent_load`` refuses: defence in depth should the two ever disagree.

When the optional C helper :mod:`anypickle.safe._opwalk` is built (``C_FIRST``, see below), a stream whose
memo discipline it proves sound is first loaded by the C unpickler resolving only *inert* globals, or
by the planned load (:mod:`anypickle.safe._planned`), which applies the static pass's rules at each
call and BUILD; anything else (a refusal, a global neither takes, any error) goes to the static pass,
then to the restricted load. Every error comes from the static pass, so errors name the global and
byte position. With the default allowlist and limits, ``_opwalk.safe_fast`` runs these C-first steps
in one C call before any of the Python below (which it only ever shortcuts).
"""

from __future__ import annotations

import copyreg
import io
import pickle
import struct
import sys
from typing import Any, Iterable

from ._allowlist import (
    DEFAULT_ALLOW,
    INERT,
    AllowEntry,
    Allowlist,
    build_allowlist,
    format_global,
    map_python2,
    resolve_global,
)
from ._limits import DEFAULT_LIMITS, Limits, check_limits
from ._numpy_guard import NumpyGuard
from ._tracking import track
from ..errors import AnyPickleError, DecodeError, UnsafePickleError, UsageError

__all__ = ["DEFAULT_ALLOW", "DEFAULT_LIMITS", "Limits", "safe_loads"]


class _NeedsScan(Exception):
    """The optimistic load met something only the static pass may judge."""


class _Latin1Encode:
    """Stands in for _codecs.encode: protocols 0-2 write bytes as encode(str, "latin1"); any other
    use would look a codec up by a name the stream chose. An instance without ``__dict__`` or
    ``__setstate__``, so a BUILD naming it cannot store anything on it."""

    __slots__ = ()

    def __call__(self, obj: object, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        if type(obj) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise UnsafePickleError(
                "_codecs.encode is only allowed as encode(<str>, 'latin1')", global_name="_codecs.encode"
            )
        return obj.encode("latin-1")


_SUBSTITUTES = {("_codecs", "encode"): _Latin1Encode()}


class _SafeUnpickler(pickle.Unpickler):
    """A C unpickler that resolves allowed globals only (inert ones only, when ``inert_only``)."""

    # Set by _load after construction: no Python-level __init__ on a path that must cost close to
    # pickle.loads for small payloads.
    _allow: Allowlist
    _inert_only: bool
    _py2_names: bool

    def find_class(self, module: str, name: str) -> object:
        # We resolve names ourselves instead of calling super().find_class, so the name checked is
        # exactly the name imported (the C find_class would map Python 2 names a second time).
        pair = map_python2(module, name) if self._py2_names else (module, name)
        role = self._allow.role(*pair)
        if self._inert_only:
            if not role & INERT:
                raise _NeedsScan
        elif not role:
            raise UnsafePickleError(
                f"global {format_global(*pair)} is not in the allowlist", global_name=format_global(*pair)
            )
        substitute = _SUBSTITUTES.get(pair)
        return substitute if substitute is not None else resolve_global(*pair)

    def persistent_load(self, pid: object) -> object:
        if self._inert_only:
            raise _NeedsScan
        raise UnsafePickleError("persistent ids are refused by safe loading")


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise UsageError(f"safe_loads takes bytes, bytearray or memoryview, not {type(data).__name__}")


# The dicts themselves (copyreg only ever changes them in place; the C unpickler, too, holds these
# objects from its import on).
_INVERTED_REGISTRY: dict = copyreg._inverted_registry  # type: ignore[attr-defined]
_EXTENSION_CACHE: dict = copyreg._extension_cache  # type: ignore[attr-defined]


def _extension_registry_in_use() -> bool:
    # EXT1/2/4 resolve through copyreg's registry and *cache* without calling find_class; while
    # both are empty (as in any process that never called copyreg.add_extension) EXT always fails.
    return bool(_INVERTED_REGISTRY or _EXTENSION_CACHE)


def _refusal(data: bytes, allow: Allowlist, limits: Limits = DEFAULT_LIMITS) -> tuple[UnsafePickleError | None, bool]:
    """The static pass's verdict as an error naming the first unsafe global or opcode, or None; and
    whether the stream names numpy (it then loads through the numpy guard)."""
    from ._scanner import Severity, scan_bytes  # the scanner imports this package's allowlist, not this module

    names, findings = scan_bytes(data, allow, limits=limits)
    for finding in findings:
        if finding.severity is Severity.UNSAFE:
            what = finding.global_name or finding.opcode
            return UnsafePickleError(
                f"refused {what} at byte {finding.position}: {finding.message}",
                global_name=finding.global_name,
                position=finding.position,
                limit=finding.limit,
            ), False
    return None, any(mapped.startswith("numpy.") for _raw, mapped in names)


def _limit_error(verdict: tuple, limits: Limits) -> UnsafePickleError:
    position, _message, name, measured = verdict
    return UnsafePickleError(
        f"refused at byte {position}: the stream exceeds limits.{name} = {limits.value(name)} "
        f"(it reaches {measured}); pass loads(..., safe=True, limits=anypickle.Limits({name}=...)) "
        "to allow more",
        position=position,
        limit=name,
    )


_PyUnpickler: Any = pickle._Unpickler


class _CheckedUnpickler(_PyUnpickler):
    """The pure-Python unpickler, restricted like _SafeUnpickler, for streams that name numpy: its
    REDUCE, NEWOBJ and BUILD pass numpy's calls and states through :class:`NumpyGuard` (numpy's
    reconstructors trust their input; the C unpickler offers no hook between a call and a BUILD)."""

    _allow: Allowlist
    _py2_names: bool
    _guard: NumpyGuard
    _raw: Any  # the file, for reading large buffers straight into place

    find_class = _SafeUnpickler.find_class
    _inert_only = False

    def persistent_load(self, pid: object) -> object:
        raise UnsafePickleError("persistent ids are refused by safe loading")

    def _reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        stack[-1] = self._guard.call(stack[-1], args)

    def _newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if isinstance(cls, type) and issubclass(cls, self._guard.classes):
            raise UnsafePickleError(f"refused numpy reconstruction: NEWOBJ of {cls.__qualname__}")
        self.stack.append(cls.__new__(cls, *args))

    def _newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if isinstance(cls, type) and issubclass(cls, self._guard.classes):
            raise UnsafePickleError(f"refused numpy reconstruction: NEWOBJ_EX of {cls.__qualname__}")
        self.stack.append(cls.__new__(cls, *args, **kwargs))

    def _instantiate(self, klass: Any, args: tuple) -> None:
        # OBJ and INST: the same guard as REDUCE (a scalar() reached through OBJ is still numpy's).
        if self._guard.handles(klass):
            self.append(self._guard.call(klass, args))
            return
        super()._instantiate(klass, args)

    def _build(self) -> None:
        state = self.stack[-1]
        if self._guard.build(self.stack[-2], state):
            self.stack.pop()
            return
        _PyUnpickler.load_build(self)

    def _bytearray8(self) -> None:
        # pickle.py fills a fresh bytearray through readinto (slow for an 8 MB array): read, copy once.
        (size,) = struct.unpack("<Q", self.read(8))
        if size > sys.maxsize:
            raise pickle.UnpicklingError("BYTEARRAY8 exceeds system's maximum size")
        frame = self._unframer.current_frame
        if frame is not None:  # a frame read to its end is no frame (what _Unframer.read checks)
            pos = frame.tell()
            if frame.seek(0, io.SEEK_END) == pos:
                self._unframer.current_frame = frame = None
            else:
                frame.seek(pos)
        if frame is None and size > 1 << 16:  # outside frames, as picklers write large buffers
            array = bytearray(size)
            if self._raw.readinto(array) != size:
                raise pickle.UnpicklingError("pickle data was truncated")
            self.append(array)
            return
        self.append(bytearray(self.read(size)))

    dispatch = dict(_PyUnpickler.dispatch)
    dispatch[pickle.BYTEARRAY8[0]] = _bytearray8
    dispatch[pickle.REDUCE[0]] = _reduce
    dispatch[pickle.NEWOBJ[0]] = _newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _newobj_ex
    dispatch[pickle.BUILD[0]] = _build


def _load(data: bytes, allow: Allowlist, *, inert_only: bool, buffers, guard: NumpyGuard | None = None) -> object:
    proto = data[1] if len(data) >= 2 and data[0] == 0x80 else 0
    # Protocols 4-5 come in 64 KiB FRAMEs the C unpickler reads whole; older streams are read
    # opcode by opcode through file.read() unless the file offers peek(), which BufferedReader does
    # (3x faster on 100k small ints). Either way file.tell() ends at the byte after STOP.
    file: io.BytesIO | io.BufferedReader = io.BytesIO(data)
    if proto < 4:
        file = io.BufferedReader(file, buffer_size=1 << 16)
    py2_names = proto < 3
    unpickler: _SafeUnpickler | _CheckedUnpickler
    if guard is not None:
        unpickler = _CheckedUnpickler(file, buffers=buffers)
        unpickler._guard = guard
        unpickler._raw = file
    else:
        unpickler = _SafeUnpickler(file, buffers=buffers)
    unpickler._allow = allow
    unpickler._inert_only = inert_only
    unpickler._py2_names = py2_names
    obj = unpickler.load()
    if file.tell() != len(data):
        raise _NeedsScan  # bytes after STOP: let the static pass name them
    return obj


try:
    from ._opwalk import MISS as _MISS
    from ._opwalk import memo_check as _memo_check
    from ._opwalk import plain_data as _plain_data
    from ._opwalk import safe_plan as _safe_plan
    from ._opwalk import configure_fast as _configure_fast
    from ._opwalk import safe_fast as _safe_fast
    from ._opwalk import PLAN_FIRST as _PLAN_FIRST_C
    from ._opwalk import PLAN_MAX as _PLAN_MAX_C
    from ._planned import configure as _configure_planned
    from ._planned import planned_load as _c_planned_load
except ImportError:  # pragma: no cover - built optionally (setup.py); CI asserts it is built
    _MISS = object()
    _memo_check = None
    _plain_data = None
    _safe_plan = None
    _safe_fast = None

# The C-first path: load with a find_class that resolves inert globals only, and run the static pass
# only when that attempt meets anything else: as fast as pickle.loads, and it can execute nothing
# outside the allowlist. It needs one guard the C unpickler lacks: it sizes its memo array from the
# largest LONG_BINPUT/PUT index, so an 8-byte stream can make it allocate and zero tens of
# gigabytes (CPython gh-115952, unfixed in the 3.10-3.13 builds tested here). _opwalk.memo_check
# walks the opcodes in C first and refuses any memo index that is not the next free one, and any
# opcode straddling a FRAME's end (where the file-reading C unpickler would parse another stream).
# Without the extension the static pass, which checks the same, runs first on every stream.
C_FIRST = _memo_check is not None

# The planned load (anypickle.safe._planned), part of the C-first path: a stream that names
# non-inert globals (numpy's reconstructors, bytearray, range, the copyreg helpers...) is loaded
# by the C unpickler with the static pass's rules applied at each call and BUILD, instead of the
# static pass plus a second load. Whatever it cannot prove the same goes the static way.
PLANNED = _safe_plan is not None
_DEFAULT_C_ARGS = DEFAULT_LIMITS.c_args()
_DEFAULT_ALLOWLIST = build_allowlist(())  # what build_allowlist(()) returns (lru-cached there)
_PLAN_MAX = _PLAN_MAX_C if PLANNED else 1 << 20  # larger: the rewritten copy would cost more than it saves
# Streams up to this size are planned first (_opwalk.safe_fast too). Larger ones first take the
# inert-only load (its walk is cheaper per opcode than the plan's), and are planned when it meets a
# non-inert global.
_PLAN_FIRST = _PLAN_FIRST_C if PLANNED else 8192
_DEFAULT_ARRAY_CAP = DEFAULT_LIMITS.value("max_array_bytes")
if PLANNED:
    _configure_planned(_DEFAULT_ALLOWLIST, _SUBSTITUTES)
    _configure_fast(*_DEFAULT_C_ARGS, _DEFAULT_ARRAY_CAP)


def _planned_load(raw: bytes, allow: Allowlist, limits: Limits, plan: tuple) -> object:
    """The planned load of ``raw`` (anypickle.safe._planned), or _MISS when the static path must
    decide (NeedsScan, a refusal, any error: that path names what is wrong)."""
    if allow is not _DEFAULT_ALLOWLIST:  # pragma: no cover - safe_loads plans default loads only
        return _MISS
    cap = _DEFAULT_ARRAY_CAP if limits is DEFAULT_LIMITS else limits.value("max_array_bytes")
    return _c_planned_load(plan, not (raw[0] == 0x80 and raw[1] >= 3), cap)


def safe_loads(
    data: bytes | bytearray | memoryview, *, allow: Iterable[AllowEntry] = (), buffers=None,
    limits: Limits | None = None,
) -> object:
    """Load ordinary data from a pickle stream of any protocol; refuse anything else before it runs.

    ``allow`` adds exact ``"module.qualname"`` globals (``"pkg.mod:Outer.Inner"`` for nested names).
    ``limits`` (:class:`anypickle.Limits`) bounds nesting depth, copies, digits and array sizes.
    Raises :class:`~anypickle.errors.UnsafePickleError` naming the global and byte position (and
    ``.limit`` when a limit is exceeded), or :class:`~anypickle.errors.DecodeError` when an allowed
    stream still fails to load. The result is type-identical to ``pickle.loads(data)``.
    """
    plain_judged = False
    if limits is None and _safe_fast is not None and C_FIRST and buffers is None and not allow:
        # The common case in one C call (_opwalk.safe_fast): plain data, the planned load or the
        # inert-only one, as below; MISS sends anything else the usual way below.
        if type(data) is not bytes:
            data = _as_bytes(data)  # the copy the way below makes anyway (a large envelope's payload)
        obj = _safe_fast(data)
        if obj is not _MISS:
            return obj
        plain_judged = True  # safe_fast has tried the plain-data step
    if limits is None:  # the common case, without calls (a small load pays every 50 ns)
        lim, c_args = DEFAULT_LIMITS, _DEFAULT_C_ARGS
    else:
        lim = check_limits(limits)
        c_args = _DEFAULT_C_ARGS if lim is DEFAULT_LIMITS else lim.c_args()
    if not plain_judged and _plain_data is not None and not allow and buffers is None and _plain_data(data, *c_args):
        # Only builtin containers and scalars can come out of a stream with sound memo indices and
        # no opcode that imports, calls or builds (checked in C, with the nesting and copy limits):
        # pickle.loads itself is safe on it, and it is the fastest loader there is.
        try:
            return pickle.loads(data)
        except Exception:  # noqa: BLE001 - not swallowed: a stream pickle cannot load falls
            pass  # through to the static pass below, which names what is wrong (UnsafePickleError)
    raw = data if type(data) is bytes else _as_bytes(data)
    allowlist = _DEFAULT_ALLOWLIST if type(allow) is tuple and not allow else build_allowlist(allow)
    planned = C_FIRST and PLANNED and not allow and buffers is None and len(raw) <= _PLAN_MAX
    if planned and len(raw) <= _PLAN_FIRST:
        verdict = _safe_plan(raw, *c_args)
    else:
        verdict = _memo_check(raw, *c_args) if _memo_check is not None else track(raw, lim)
    if type(verdict) is tuple and len(verdict) == 4:
        raise _limit_error(verdict, lim)
    if type(verdict) is tuple and len(verdict) == 3:  # a plan: the stream is sound, as with None
        if not (_INVERTED_REGISTRY or _EXTENSION_CACHE):  # _extension_registry_in_use(), inlined
            obj = _planned_load(raw, allowlist, lim, verdict)
            if obj is not _MISS:
                return obj
        verdict = False  # sound, and tried: the static path below decides
    # verdict: None (sound), False (sound, but holds integers too long for the unchecked path), or
    # (position, message) for a stream the C walk cannot follow.
    if C_FIRST and verdict is None and not _extension_registry_in_use():
        try:
            return _load(raw, allowlist, inert_only=True, buffers=buffers)
        except _NeedsScan:
            if planned:  # a larger stream naming a non-inert global: the planned load next
                plan = _safe_plan(raw, *c_args)
                if type(plan) is tuple and len(plan) == 3:
                    obj = _planned_load(raw, allowlist, lim, plan)
                    if obj is not _MISS:
                        return obj
        except Exception as exc:  # the C unpickler's many error types: let the static pass classify
            refusal, _ = _refusal(raw, allowlist, lim)
            if refusal is not None:
                raise refusal from None
            if isinstance(exc, AnyPickleError):
                raise
            raise DecodeError(f"cannot load this pickle: {type(exc).__name__}: {exc}") from exc
    refusal, names_numpy = _refusal(raw, allowlist, lim)
    if refusal is not None:
        raise refusal
    if type(verdict) is tuple:  # fail closed: the C walk's refusal stands even if the scanner missed it
        raise UnsafePickleError(f"refused at byte {verdict[0]}: {verdict[1]}", position=verdict[0])
    guard = NumpyGuard(lim) if names_numpy else None
    try:
        return _load(raw, allowlist, inert_only=False, buffers=buffers, guard=guard)
    except _NeedsScan:  # pragma: no cover - the static pass refuses trailing bytes first
        raise UnsafePickleError("bytes after STOP") from None
    except AnyPickleError:
        raise
    except RecursionError as exc:
        raise UnsafePickleError(f"refused: the stream nests too deeply to load ({exc})", limit="max_depth") from None
    except Exception as exc:
        raise DecodeError(f"cannot load this pickle: {type(exc).__name__}: {exc}") from exc
    finally:
        if guard is not None:
            guard.close()
