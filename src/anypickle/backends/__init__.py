"""One module per serializer, behind one small protocol; :func:`get` and :func:`enhanced` are the registry.

A serializer has up to two writers, each its own registered implementation: the library's own
(:func:`get`: what ``dumps(obj, backend=...)`` forces, and what ``explain`` tries) and anypickle's
enhanced one (:func:`enhanced`: what auto falls back to: cloudpickle through
:class:`~anypickle.backends._cloudpickle.AnyPickler`, dill with ``recurse=True`` and anypickle's refusals).
pickle and marshal have one writer, which both return. Both writers of a serializer read each other's
payloads (the envelope names the serializer, not the writer).

Each backend owns both directions: ``dump`` (with the receiver context's ``persistent_id`` and pickle
protocol 5's ``buffer_callback``) and ``loads`` (with the out-of-band ``buffers`` and the context's
``persistent_load``). What a backend *cannot* serialize it says by raising one of its ``dump_errors``;
the facade (:mod:`anypickle._api`) then tries the next one or raises :class:`~anypickle.EncodeError`.
Portable mode (:mod:`._portable`, with :mod:`._source`, :mod:`._recompile`, :mod:`._classes` and
:mod:`._lines`) ships code as source and is readable by plain ``pickle.loads``.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable, Iterable, Protocol

from ._id import Backend
from ._lines import LineCollector
from ..analysis._modules import ModulePolicy

__all__ = ["PICKLER_ERRORS", "Backend", "BackendImpl", "PicklerBackend", "Writer", "enhanced", "get",
           "load_pickle_stream"]


class Writer(Protocol):
    """Where a backend writes: a binary file, or any object with its ``write`` (the facade's chunk sink)."""

    def write(self, data: bytes, /) -> object:
        """Take the next piece of the stream (a pickler hands over large buffers as they are)."""


class BackendImpl(Protocol):
    """What the facade needs of a serializer."""

    id: Backend
    name: str
    """This writer's own name: the library's (``"cloudpickle"``) or anypickle's (``"cloudpickle+anypickle"``)."""
    carries_code: bool
    """True when payloads may hold bytecode: the envelope then records the interpreter."""
    dump_errors: tuple[type[BaseException], ...]
    """The exceptions that mean "this backend cannot serialize that object" (anything else propagates)."""
    library_version: str | None
    """The version of the third-party library behind the backend (recorded in envelopes), or None."""

    def dump(
        self, obj: Any, file: Writer, policy: ModulePolicy, *, persistent_id: Any = None,
        buffer_callback: Any = None, lines: LineCollector | None = None,
    ) -> None:
        """Write ``obj`` to ``file``.

        ``persistent_id``, when given, is installed as the pickler's hook of that name (receiver context).
        ``buffer_callback`` is pickle protocol 5's: large buffers go to it instead of into ``file``.
        ``lines``, when given, is told every code object written by value (its source lines travel).
        """

    def loads(
        self, payload: memoryview, *, buffers: Iterable[Any] | None = None,
        persistent_load: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Rebuild the object from a payload this backend wrote.

        ``buffers`` are the out-of-band buffers in order (protocol 5); ``persistent_load`` resolves the
        persistent ids ``dump(persistent_id=...)`` wrote (the receiver context).
        """


PICKLER_ERRORS: tuple[type[BaseException], ...] = (
    pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError)
"""A pickler's "cannot": what pickle, cloudpickle and dill raise for an object they cannot write.
The facade still asks :func:`anypickle._api.is_refusal` whether one was raised by the pickler itself
or by the object's own code (which propagates)."""


class _Unpickler(pickle.Unpickler):
    """The C unpickler, as a subclass: since Python 3.13 only subclass instances accept a ``persistent_load``."""


def load_pickle_stream(
    payload: memoryview, buffers: Iterable[Any] | None = None, persistent_load: Callable[[Any], Any] | None = None,
    unpickler: Callable[..., Any] = _Unpickler,
) -> Any:
    """Unpickle ``payload`` with ``unpickler`` (the C one by default), its buffers and persistent ids."""
    if persistent_load is None and unpickler is _Unpickler:
        return pickle.loads(payload, buffers=buffers)
    reader = unpickler(io.BytesIO(payload), buffers=buffers)
    if persistent_load is not None:
        reader.persistent_load = persistent_load
    return reader.load()


def get(backend: Backend) -> BackendImpl:
    """The library's own writer of ``backend`` (imported on first use): what a forced backend uses."""
    impl = _REGISTRY.get(backend)
    if impl is None:
        impl = _REGISTRY[backend] = _load(backend, enhanced=False)
    return impl


def enhanced(backend: Backend) -> BackendImpl:
    """anypickle's writer of ``backend``, the one auto uses (for pickle and marshal: the only one)."""
    impl = _ENHANCED.get(backend)
    if impl is None:
        impl = _ENHANCED[backend] = _load(backend, enhanced=True)
    return impl


_REGISTRY: dict[Backend, BackendImpl] = {}
_ENHANCED: dict[Backend, BackendImpl] = {}


def _load(backend: Backend, enhanced: bool) -> BackendImpl:
    if backend is Backend.CLOUDPICKLE:
        from ._cloudpickle import AnyCloudpickleBackend, CloudpickleBackend

        return AnyCloudpickleBackend() if enhanced else CloudpickleBackend()
    if backend is Backend.DILL:
        from ._dill import AnyDillBackend, DillBackend

        return AnyDillBackend() if enhanced else DillBackend()
    if enhanced:  # pickle and marshal have one writer
        return get(backend)
    if backend is Backend.PICKLE:
        from ._pickle import PickleBackend

        return PickleBackend()
    from ._marshal import MarshalBackend

    return MarshalBackend()


class PicklerBackend:
    """A backend that writes a pickle stream with a pickler class of its library; subclasses say which
    (:meth:`make_pickler`) and with which unpickler it is read back (``unpickler``)."""

    id: Backend
    carries_code = True
    library_version: str | None = None
    dump_errors = PICKLER_ERRORS
    unpickler: Callable[..., Any] = _Unpickler

    def make_pickler(
        self, file: Writer, policy: ModulePolicy, *, buffer_callback: Any, lines: LineCollector | None,
    ) -> Any:
        """The pickler of one dump."""
        raise NotImplementedError

    def dump(
        self, obj: Any, file: Writer, policy: ModulePolicy, *, persistent_id: Any = None,
        buffer_callback: Any = None, lines: LineCollector | None = None,
    ) -> None:
        pickler = self.make_pickler(file, policy, buffer_callback=buffer_callback, lines=lines)
        if persistent_id is not None:
            pickler.persistent_id = persistent_id
        pickler.dump(obj)

    def loads(
        self, payload: memoryview, *, buffers: Iterable[Any] | None = None,
        persistent_load: Callable[[Any], Any] | None = None,
    ) -> Any:
        return load_pickle_stream(payload, buffers, persistent_load, self.unpickler)
