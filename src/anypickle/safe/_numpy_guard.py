"""The numpy guard of safe loading: numpy reconstructions only in the shapes numpy's own pickler writes.

numpy's reconstructors trust their input: a dtype given a BUILD state with the object flag set makes
``scalar`` read raw bytes as an object pointer; an object array whose shape is larger than its item
list reads pointers past the list; a structured dtype whose object field overlaps an integer field
crashes when the array is printed or freed. So streams naming numpy load through a Python unpickler
whose REDUCE and BUILD pass every numpy call and state through :class:`NumpyGuard` first:

- ``numpy.dtype(str, bool, True)`` makes a *pending* dtype, which takes exactly one BUILD, and only
  with the state numpy's own ``__reduce__`` gives for the dtype that state describes (rebuilt through
  numpy's public constructor, which refuses overlapping object fields); it is then *sealed*;
- ``_reconstruct(numpy.ndarray, (0,), b'b')`` makes a pending array, which takes exactly one BUILD
  ``(1, shape, <sealed dtype>, is_fortran, data)`` with data of exactly the size the shape asks for:
  bytes, or for dtypes holding objects an item list of exactly prod(shape) items;
- ``scalar(<sealed dtype>, bytes)`` and ``_frombuffer(buffer, <sealed dtype>, shape, order)`` never
  with a dtype that holds objects, and with exactly as many bytes as the dtype and shape need.
Anything else numpy-shaped is refused with :class:`UnsafePickleError`.
"""

from __future__ import annotations

import copyreg
from typing import Any, Iterator

from ._limits import Limits
from ..errors import UnsafePickleError

__all__ = ["NumpyGuard"]


def _refuse(message: str, limit: str | None = None) -> UnsafePickleError:
    return UnsafePickleError(f"refused numpy reconstruction: {message}", limit=limit)


_STATIC: tuple | None = None  # (numpy, calls, classes, helpers): the same for every guard


def _static() -> tuple:
    global _STATIC
    if _STATIC is None:
        import numpy as np

        core = np._core if hasattr(np, "_core") else np.core
        # Unbound methods, so the guard holds no reference cycle: it (and the arrays it saw) must be
        # freed as soon as the load returns, not at the next garbage collection (an 8 MB array kept
        # alive until then makes the next load fault in fresh pages: 8x slower).
        calls: dict[int, Any] = {
            id(np.dtype): NumpyGuard._dtype,
            id(core.multiarray._reconstruct): NumpyGuard._reconstruct,
            id(core.multiarray.scalar): NumpyGuard._scalar,
        }
        frombuffer = getattr(core.numeric, "_frombuffer", None)
        if frombuffer is not None:
            calls[id(frombuffer)] = NumpyGuard._frombuffer
        helpers = frozenset(id(getattr(copyreg, name)) for name in ("__newobj__", "__newobj_ex__", "_reconstructor"))
        _STATIC = (np, calls, (np.dtype, np.ndarray, np.generic), helpers)
    return _STATIC


# dtype BUILD states found to be exactly what numpy writes, keyed by (args, state, the type of every
# value in the state), or by (args, state) for a plain state in the exact types numpy writes (see
# _build_dtype): the comparison below is a function of these alone (numpy's own __reduce__
# costs ~3 us a dtype). Only states of plain values and structured states whose fields' dtypes were
# themselves keyed are kept (no subarray), at most 4096.
_VERIFIED: dict[tuple, bool] = {}
_UNSEALED = object()  # sealed.get's default: no dtype (not even None) is it
_LEAF = frozenset({int, str, bytes, bool, type(None)})


def _state_key(args: tuple, state: tuple, keys: dict[int, tuple | None]) -> tuple | None:
    """The cache key of a dtype state (types included, so 1 and True differ), or None. A structured
    dtype's fields stand in by the keys their own dtypes were verified under (``keys``, by id: each
    is a sealed dtype of this load, which nothing changes after its one BUILD)."""
    if state[2] is not None:
        return None
    names, fields = state[3], state[4]
    if names is not None or fields is not None:
        if type(names) is not tuple or type(fields) is not dict or len(state) != 8:
            return None
        parts = []
        for name, value in fields.items():
            sub = keys.get(id(value[0]))
            rest = value[1:]
            rtypes = tuple(map(type, rest))
            if sub is None or type(name) is not str or not _LEAF.issuperset(rtypes):
                return None
            parts.append((name, sub, rest, rtypes))
        head = state[:3] + state[5:]
        types = tuple(map(type, head))
        if not _LEAF.issuperset(types):
            return None
        for n in names:
            if type(n) is not str:
                return None
        return (args, head, types, names, tuple(parts))
    types = tuple(map(type, state))
    if len(state) == 8:
        return (args, state, types) if _LEAF.issuperset(types) else None
    meta = state[8]  # a datetime's (None, (unit, num, den, events)), as numpy writes it
    if not (_LEAF.issuperset(types[:8]) and type(meta) is tuple and len(meta) == 2 and meta[0] is None
            and type(meta[1]) is tuple):
        return None
    inner = tuple(map(type, meta[1]))
    return (args, state, types, inner) if _LEAF.issuperset(inner) else None


def _datetime_meta(meta: object) -> bool:
    """meta is a datetime's metadata in exactly the types numpy writes: (None, (bytes, int, int, int))."""
    if type(meta) is not tuple or len(meta) != 2 or meta[0] is not None:
        return False
    inner = meta[1]
    return (type(inner) is tuple and len(inner) == 4 and type(inner[0]) is bytes and type(inner[1]) is int
            and type(inner[2]) is int and type(inner[3]) is int)


def nested_key(sealed: dict[int, Any], keys: dict[int, tuple | None], args: tuple, state: tuple) -> tuple | None:
    """A dtype state with a subarray, fields or metadata: every dtype inside it must be one this load
    sealed (``sealed``, by id); then its cache key (:func:`_state_key`, from ``keys``). Shared by
    :class:`NumpyGuard` and the planned load's C BUILD (``_planload.c``)."""
    if state[2] is not None:
        if not (type(state[2]) is tuple and len(state[2]) == 2):
            raise _refuse("malformed subarray in a dtype state")
        _check_sealed(sealed, state[2][0], "a subarray's base dtype")
    if state[4] is not None:
        if type(state[4]) is not dict:
            raise _refuse("malformed fields in a dtype state")
        for value in state[4].values():
            if not (type(value) is tuple and 2 <= len(value) <= 3):
                raise _refuse("malformed field in a dtype state")
            if sealed.get(id(value[0]), _UNSEALED) is not value[0]:  # _check_sealed(), inlined
                _check_sealed(sealed, value[0], "a field's dtype")
    return _state_key(args, state, keys)


def _check_sealed(sealed: dict[int, Any], dtype: object, what: str) -> Any:
    if id(dtype) not in sealed or sealed[id(dtype)] is not dtype:
        raise _refuse(f"{what} is not a dtype this stream made and set up as numpy writes it")
    return dtype


class NumpyGuard:
    """Per-load bookkeeping of the dtypes and arrays a stream makes (see the module docstring)."""

    # numpy's module and the guard's tables, the same for every guard: set on the class by the first
    # guard (``_static()``), so making one per load costs no more than its four dicts.
    np: Any
    calls: dict[int, Any]
    classes: tuple
    helpers: frozenset

    def __init__(self, limits: Limits) -> None:
        if "np" not in NumpyGuard.__dict__:
            NumpyGuard.np, NumpyGuard.calls, NumpyGuard.classes, NumpyGuard.helpers = _static()
        self.limits = limits
        self.pending_dtypes: dict[int, tuple[Any, tuple]] = {}
        self.sealed: dict[int, Any] = {}  # id -> dtype (kept alive, so ids stay unique)
        self.keys: dict[int, tuple | None] = {}  # id of a sealed dtype -> the key it was verified under
        self.pending_arrays: dict[int, Any] = {}

    # -- calls --------------------------------------------------------------------------------
    def handles(self, func: Any) -> bool:
        """Whether ``func`` is one of numpy's reconstructors, a numpy class or a copyreg helper."""
        return (id(func) in self.calls or id(func) in self.helpers
                or (isinstance(func, type) and issubclass(func, self.classes)))

    def call(self, func: Any, args: tuple) -> Any:
        """``func(*args)`` when func is not numpy's, or numpy's checked call; refuses other numpy calls."""
        check = self.calls.get(id(func))
        if check is not None:
            if type(args) is not tuple:  # the static pass refuses these first; never unpack one here
                raise _refuse("a reconstructor's arguments must be a tuple")
            return check(self, func, *args)
        if isinstance(func, type) and issubclass(func, self.classes):
            raise _refuse(f"{func.__module__}.{func.__qualname__} may not be constructed directly")
        if id(func) in self.helpers and args and isinstance(args[0], type) and issubclass(args[0], self.classes):
            raise _refuse(f"copyreg.{func.__name__} may not construct {args[0].__qualname__}")
        return func(*args)

    def _dtype(self, func: Any, *args: Any) -> Any:
        if not (len(args) == 3 and type(args[0]) is str and type(args[1]) is bool and args[2] is True):
            raise _refuse("numpy.dtype must be called as numpy writes it: (str, bool, True)")
        dtype = func(*args)
        self.pending_dtypes[id(dtype)] = (dtype, args)
        return dtype

    def _sealed(self, dtype: object, what: str) -> Any:
        return _check_sealed(self.sealed, dtype, what)

    def _nbytes(self, shape: object, itemsize: int, what: str) -> int:
        if type(shape) is not tuple:
            raise _refuse(f"{what}: the shape must be a tuple of non-negative ints, not {shape!r}")
        items = 1
        for d in shape:
            if type(d) is not int or d < 0:
                raise _refuse(f"{what}: the shape must be a tuple of non-negative ints, not {shape!r}")
            items *= d
        nbytes = items * itemsize
        cap = self.limits.value("max_array_bytes")
        if cap >= 0 and nbytes > cap:
            raise _refuse(f"{what} of shape {shape} asks for {nbytes} bytes (limits.max_array_bytes is {cap})",
                          "max_array_bytes")
        return items

    def _reconstruct(self, func: Any, *args: Any) -> Any:
        if not (len(args) == 3 and args[0] is self.np.ndarray and args[1] == (0,) and type(args[1][0]) is int
                and args[2] == b"b"):
            raise _refuse("_reconstruct must be called as numpy writes it: (numpy.ndarray, (0,), b'b')")
        array = func(*args)
        self.pending_arrays[id(array)] = array
        return array

    def _scalar(self, func: Any, *args: Any) -> Any:
        if len(args) != 2:
            raise _refuse("scalar takes (dtype, bytes)")
        dtype = args[0]
        if self.sealed.get(id(dtype), _UNSEALED) is not dtype:  # self._sealed(), inlined
            self._sealed(dtype, "scalar's dtype")
        if dtype.hasobject:
            raise _refuse("scalar with a dtype holding objects (its bytes would be read as object pointers)")
        if type(args[1]) is not bytes or len(args[1]) != dtype.itemsize:
            raise _refuse(f"scalar of dtype {dtype} needs exactly {dtype.itemsize} bytes")
        return func(*args)

    def _frombuffer(self, func: Any, *args: Any) -> Any:
        if len(args) != 4 or args[3] not in ("C", "F"):
            raise _refuse("_frombuffer takes (buffer, dtype, shape, 'C' or 'F')")
        dtype = args[1]
        if self.sealed.get(id(dtype), _UNSEALED) is not dtype:  # self._sealed(), inlined
            self._sealed(dtype, "_frombuffer's dtype")
        if dtype.hasobject:
            raise _refuse("_frombuffer with a dtype holding objects (raw bytes would be read as object pointers)")
        items = self._nbytes(args[2], dtype.itemsize, "_frombuffer")
        try:
            size = memoryview(args[0]).nbytes
        except TypeError:
            raise _refuse("_frombuffer's buffer is not a bytes-like object") from None
        if size != items * dtype.itemsize:
            raise _refuse(f"_frombuffer given {size} bytes for shape {args[2]} of {dtype}")
        return func(*args)

    def close(self) -> None:
        """Drop every reference the guard holds (called when the load ends, whatever its outcome)."""
        self.pending_dtypes.clear()
        self.sealed.clear()
        self.keys.clear()
        self.pending_arrays.clear()

    # -- BUILD --------------------------------------------------------------------------------
    def build(self, inst: Any, state: Any) -> bool:
        """Apply a BUILD on a numpy object after checking it; False when inst is not numpy's."""
        np = self.np
        if isinstance(inst, np.dtype):
            self._build_dtype(inst, state)
            return True
        if isinstance(inst, np.ndarray):
            self._build_array(inst, state)
            return True
        if isinstance(inst, np.generic):
            raise _refuse("BUILD on a numpy scalar (numpy never writes it; scalars may be shared)")
        return False

    def _build_dtype(self, dtype: Any, state: Any) -> None:
        entry = self.pending_dtypes.pop(id(dtype), None)
        if entry is None or entry[0] is not dtype:
            raise _refuse("BUILD on a dtype this stream did not just make (a shared or already set-up dtype)")
        args = entry[1]
        if not (type(state) is tuple and len(state) in (8, 9)):
            raise _refuse("a dtype's BUILD state must be the 8- or 9-tuple numpy writes")
        if (state[2] is None and state[3] is None and state[4] is None
                and type(state[0]) is int and type(state[1]) is str and type(state[5]) is int
                and type(state[6]) is int and type(state[7]) is int
                and (len(state) == 8 or _datetime_meta(state[8]))):
            # A plain dtype (no subarray or fields; a datetime's metadata at most) in exactly the
            # types numpy writes, the common case: its key is (args, state) alone (args' types are
            # fixed by _dtype, the state's here), a 2-tuple no other key equals.
            key: tuple | None = (args, state)
            if key not in _VERIFIED:
                self._verify(args, state, key)
        else:
            key = self._nested_key(args, state)
            if key is None or key not in _VERIFIED:
                self._verify(args, state, key)
        # The state is exactly what numpy's own __reduce__ gives for a dtype built through numpy's
        # public, validating constructors: applying it is what unpickling numpy's own pickle does.
        # (numpy's __setstate__ itself trusts its input: a datetime type given a state without
        # metadata crashes inside it, so no state is applied before this comparison.)
        dtype.__setstate__(state)
        self.sealed[id(dtype)] = dtype
        self.keys[id(dtype)] = key

    def _nested_key(self, args: tuple, state: tuple) -> tuple | None:
        return nested_key(self.sealed, self.keys, args, state)

    def _verify(self, args: tuple, state: tuple, key: tuple | None) -> None:
        """Refuse unless ``state`` is what numpy's own ``__reduce__`` gives for a dtype made by its
        public constructors from ``args``; remember ``key`` as verified."""
        candidates = self._candidates(args[0], state)  # built one at a time, in order
        while True:
            try:
                canonical = next(candidates)
            except StopIteration:
                raise _refuse("a dtype BUILD state that is not what numpy writes for any dtype: "
                              f"{state!r:.200}") from None
            except UnsafePickleError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: not a state numpy writes
                raise _refuse(f"a dtype state numpy would not write ({type(exc).__name__}: {exc})") from None
            expected = canonical.__reduce__()
            if expected[1] == args and _same_state(expected[2], state):
                break
        if key is not None and len(_VERIFIED) < 4096:
            _VERIFIED[key] = True

    def _candidates(self, typestr: str, state: tuple) -> Iterator[Any]:
        """The dtypes a state could describe, built through numpy's public constructors only (lazily:
        the first one usually matches)."""
        np = self.np
        endian, sub, names, fields, elsize = state[1], state[2], state[3], state[4], state[5]
        if names is not None:
            if not (type(names) is tuple and all(type(n) is str for n in names) and type(fields) is dict
                    and all(n in fields for n in names)):
                raise _refuse("malformed names or fields in a dtype state")
            spec = {
                "names": list(names),
                "formats": [fields[n][0] for n in names],
                "offsets": [fields[n][1] for n in names],
                "titles": [fields[n][2] if len(fields[n]) > 2 else None for n in names],
                "itemsize": elsize,
            }
            found = 0
            for align in (False, True):  # numpy refuses offsets an aligned struct cannot have
                try:
                    candidate = np.dtype(spec, align=align)
                except (TypeError, ValueError):
                    continue
                found += 1
                yield candidate
            if not found:
                raise _refuse("a structured dtype numpy's constructor refuses (overlapping objects, bad offsets)")
            return
        if sub is not None:
            yield np.dtype((sub[0], sub[1]))
            return
        if type(endian) is not str or endian not in "<>|=" or len(endian) != 1:
            raise _refuse("malformed byte order in a dtype state")
        prefix = "" if endian == "|" else endian
        if len(state) == 9 and typestr[:1] in ("M", "m"):
            meta = state[8]
            if not (type(meta) is tuple and len(meta) == 2 and type(meta[1]) is tuple and len(meta[1]) == 4
                    and type(meta[1][0]) is bytes and type(meta[1][1]) is int):
                raise _refuse("malformed datetime metadata in a dtype state")
            unit, num = meta[1][0].decode("ascii"), meta[1][1]
            suffix = "" if unit == "generic" else f"[{num if num != 1 else ''}{unit}]"
            yield np.dtype(prefix + typestr + suffix)
            return
        yield np.dtype(prefix + typestr)

    def _build_array(self, array: Any, state: Any) -> None:
        if self.pending_arrays.pop(id(array), None) is not array:
            raise _refuse("BUILD on an array this stream did not just make with _reconstruct")
        if not (type(state) is tuple and len(state) == 5 and state[0] == 1 and type(state[3]) is bool):
            raise _refuse("an array's BUILD state must be (1, shape, dtype, is_fortran, data) as numpy writes it")
        _, shape, dtype, _fortran, data = state
        dtype = dtype
        if self.sealed.get(id(dtype), _UNSEALED) is not dtype:  # self._sealed(), inlined
            self._sealed(dtype, "the array's dtype")
        items = self._nbytes(shape, dtype.itemsize if not dtype.hasobject else max(dtype.itemsize, 8), "array")
        if dtype.hasobject:
            if type(data) is not list or len(data) != items:
                raise _refuse(f"an array of shape {shape} holding objects needs a list of exactly {items} items")
        else:
            try:
                size = memoryview(data).nbytes
            except TypeError:
                raise _refuse("an array's data must be bytes") from None
            if size != items * dtype.itemsize:
                raise _refuse(f"an array of shape {shape} and dtype {dtype} given {size} bytes")
        array.__setstate__(state)


def _same_state(expected: tuple, given: tuple) -> bool:
    """State tuples equal element by element, of the same types all the way down: a datetime's
    metadata ``(None, (b"D", 1, 1, 1))`` is not matched by ``(None, (b"D", 1, True, 1.0))``, nor a
    field's offset by a bool (dtypes inside compare by numpy's ==)."""
    return _same_value(expected, given)


def _same_value(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same_value(v, b[k]) for k, v in a.items())
    return bool(a == b)
