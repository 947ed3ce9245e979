"""One module per serializer, behind one small protocol; :func:`get` is the registry."""

from __future__ import annotations

from typing import Any, Protocol

from ._id import Backend
from ._lines import LineCollector
from ..analysis._modules import ModulePolicy

__all__ = ["BackendImpl", "Writer", "get"]


class Writer(Protocol):
    """Where a backend writes: a binary file, or any object with its ``write`` (the facade's chunk sink)."""

    def write(self, data: bytes, /) -> object:
        """Take the next piece of the stream (a pickler hands over large buffers as they are)."""


class BackendImpl(Protocol):
    """What the facade needs of a serializer."""

    id: Backend
    carries_code: bool
    """True when payloads may hold bytecode: the envelope then records the interpreter."""
    dump_errors: tuple[type[BaseException], ...]
    """The exceptions that mean "this backend cannot serialize that object" (anything else propagates)."""
    library_version: str | None
    """The version of the third-party library behind the backend (recorded in envelopes), or None."""

    def dump(
        self, obj: Any, file: Writer, policy: ModulePolicy, *, auto: bool, persistent_id: Any = None,
        buffer_callback: Any = None, lines: LineCollector | None = None,
    ) -> None:
        """Write ``obj`` to ``file``; ``auto`` selects anypickle's enhanced settings over the raw library's.

        ``persistent_id``, when given, is installed as the pickler's hook of that name (receiver context).
        ``buffer_callback`` is pickle protocol 5's: large buffers go to it instead of into ``file``.
        ``lines``, when given, is told every code object written by value (its source lines travel).
        """

    def loads(self, payload: memoryview) -> Any:
        """Rebuild the object from a payload this backend wrote."""


def get(backend: Backend) -> BackendImpl:
    """The implementation of ``backend`` (imported on first use)."""
    impl = _REGISTRY.get(backend)
    if impl is None:
        impl = _REGISTRY[backend] = _load(backend)
    return impl


_REGISTRY: dict[Backend, BackendImpl] = {}


def _load(backend: Backend) -> BackendImpl:
    if backend is Backend.PICKLE:
        from ._pickle import PickleBackend as cls
    elif backend is Backend.MARSHAL:
        from ._marshal import MarshalBackend as cls  # type: ignore[assignment]
    elif backend is Backend.CLOUDPICKLE:
        from ._cloudpickle import CloudpickleBackend as cls  # type: ignore[assignment]
    else:
        from ._dill import DillBackend as cls  # type: ignore[assignment]
    return cls()
