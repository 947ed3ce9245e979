"""A wrapper that plain ``pickle`` can ship, whatever it wraps: :func:`wrap` and :class:`Wrapped`.

Engines that pickle tasks themselves (multiprocessing, ``concurrent.futures``, Dask, Ray, loky) fail,
or silently ship a reference the worker cannot resolve, on ``__main__`` lambdas, closures and code
from local modules. ``wrap(f)`` reduces to a module-level reconstructor in anypickle plus the
anypickle bytes of ``f``, so any pickler writes it as one importable call; the receiver only needs
anypickle installed. The wrapped object is loaded on first use (not when the wrapper is unpickled:
a scheduler that merely forwards a task never runs its code) and once per process per payload.
"""

from __future__ import annotations

import _thread
from collections import OrderedDict
from typing import Any, Generic, TypeVar

from .. import _reducers
from .._api import dumps, loads, note_skew

__all__ = ["Wrapped", "wrap"]

T = TypeVar("T")

_MISSING: Any = object()

# Loaded objects by payload digest, so a task wrapper unpickled once per task still loads its function
# once per process. Bounded: a long-lived worker that receives many distinct wrappers keeps the most
# recently used ones.
_CACHE_SIZE = 256
_cache: "OrderedDict[bytes, Any]" = OrderedDict()
_cache_lock = _thread.allocate_lock()  # threading.Lock itself: importing threading costs ~1 ms
# One lock per digest being loaded, so two threads needing the same payload load it once, and a slow
# load does not block threads that need another payload.
_loading: dict[bytes, _thread.LockType] = {}


_blake2b: Any = None  # hashlib.blake2b, imported by the first digest: hashlib loads OpenSSL (~2 ms of import)


def _digest(payload: bytes) -> bytes:
    global _blake2b
    if _blake2b is None:
        import hashlib

        _blake2b = hashlib.blake2b
    return _blake2b(payload, digest_size=20).digest()


def _load_cached(payload: bytes, digest: bytes) -> Any:
    with _cache_lock:
        obj = _cache.get(digest, _MISSING)
        if obj is not _MISSING:
            _cache.move_to_end(digest)
            return obj
        lock = _loading.setdefault(digest, _thread.allocate_lock())
    with lock:
        with _cache_lock:
            obj = _cache.get(digest, _MISSING)
        if obj is _MISSING:
            obj = loads(payload)
            with _cache_lock:
                _cache[digest] = obj
                if len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
                _loading.pop(digest, None)
    return obj


class Wrapped(Generic[T]):
    """Holds an object and the anypickle bytes that rebuild it; pickles as those bytes.

    Calling the wrapper calls the object; :meth:`unwrap` returns it. The bytes are made at the first
    pickling and reused after that, so later changes to a wrapped mutable object do not travel.
    """

    __slots__ = ("_obj", "_payload", "_digest", "_name", "_lock", "_options", "__weakref__")

    def __init__(self, obj: T, **options: Any) -> None:
        if isinstance(obj, Wrapped):
            raise TypeError("anypickle.wrap() got an object that is already wrapped")
        self._obj: Any = obj
        self._payload: bytes | None = None
        self._digest: bytes | None = None
        self._name = _describe(obj)
        self._lock = _thread.allocate_lock()
        self._options = options

    @classmethod
    def _from_payload(cls, payload: bytes, name: str) -> "Wrapped[Any]":
        self = cls.__new__(cls)
        self._obj = _MISSING
        self._payload = payload
        self._digest = None
        self._name = name
        self._lock = _thread.allocate_lock()
        self._options = {}
        return self

    def _bytes(self) -> bytes:
        payload = self._payload
        if payload is None:
            with self._lock:
                if self._payload is None:
                    self._payload = dumps(self._obj, **self._options)
                payload = self._payload
        return payload

    def unwrap(self) -> T:
        """The wrapped object (loaded on first use in a process that received the wrapper)."""
        obj = self._obj
        if obj is _MISSING:
            payload = self._payload
            assert payload is not None
            with self._lock:
                if self._digest is None:
                    self._digest = _digest(payload)
            obj = self._obj = _load_cached(payload, self._digest)
        return obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.unwrap()(*args, **kwargs)  # type: ignore[operator]
        except BaseException as exc:
            note_skew(exc, self._bytes())
            raise

    def __reduce__(self) -> tuple[Any, tuple[bytes, str]]:
        return _rebuild, (self._bytes(), self._name)

    @property
    def __name__(self) -> str:
        # Engines name tasks after the function (Dask's funcname, logging): answer without loading it.
        return self._name.rpartition(".")[2]

    def __dask_tokenize__(self) -> tuple[str, bytes]:
        # A deterministic Dask key: equal payloads are the same task function.
        payload = self._bytes()
        if self._digest is None:
            self._digest = _digest(payload)
        return ("anypickle.Wrapped", self._digest)

    def __repr__(self) -> str:
        state = "" if self._obj is not _MISSING else ", not loaded yet"
        return f"anypickle.wrap({self._name}{state})"


def _describe(obj: Any) -> str:
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(qualname, str):
        module = getattr(obj, "__module__", None)
        return f"{module}.{qualname}" if isinstance(module, str) else qualname
    return f"<{type(obj).__qualname__} object>"


def _rebuild(payload: bytes, name: str) -> Wrapped[Any]:
    """The reconstructor pickle records for a :class:`Wrapped`: nothing is loaded until first use."""
    return Wrapped._from_payload(payload, name)


def wrap(obj: T, **options: Any) -> Wrapped[T]:
    """Wrap ``obj`` so that plain ``pickle`` (and every engine built on it) can ship it to a fresh process.

    ``options`` go to :func:`anypickle.dumps` (``by_value``, ``by_reference``, ``key``...). A signed
    wrapper (``key=``) still loads unverified on the receiver, which has no key to check it with:
    use ``dumps``/``loads`` with keys on both sides when the transport is untrusted.

    >>> import pickle, anypickle
    >>> w = pickle.loads(pickle.dumps(anypickle.wrap(lambda x: x + 1)))
    >>> w(41)
    42
    """
    return Wrapped(obj, **options)


# Payloads name Wrapped and its rebuilder as anypickle.wrap.*, where they lived before the shipping/
# folder: they keep that name on the wire (anypickle._reducers.WIRE_NAMES), while the attribute
# anypickle.wrap is the function.
_reducers.keep_wire_name(globals(), "anypickle.wrap")
