"""stdlib pickle: by reference only, and the fastest by far."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from . import PICKLER_ERRORS, load_pickle_stream
from ._id import Backend
from ..analysis._modules import ModulePolicy

if TYPE_CHECKING:
    from ._lines import LineCollector
    from . import Writer

PROTOCOL = 5  # out-of-band buffers and compact framing; readable by Python >= 3.8


class _Pickler(pickle.Pickler):
    """The C pickler, as a subclass: since Python 3.13 only subclass instances accept a ``persistent_id``."""


class PickleBackend:
    """Plain ``pickle`` at protocol 5."""

    id = Backend.PICKLE
    name = "pickle"
    carries_code = False
    library_version: str | None = None
    dump_errors = PICKLER_ERRORS

    def dump(
        self, obj: Any, file: Writer, policy: ModulePolicy, *, persistent_id: Any = None,
        buffer_callback: Any = None, lines: LineCollector | None = None,
    ) -> None:
        if persistent_id is None:
            pickle.Pickler(file, PROTOCOL, buffer_callback=buffer_callback).dump(obj)
        else:
            pickler = _Pickler(file, PROTOCOL, buffer_callback=buffer_callback)
            # The per-instance hook pickle documents; typeshed declares it as a method only.
            pickler.persistent_id = persistent_id  # type: ignore[method-assign]
            pickler.dump(obj)

    def loads(self, payload: memoryview, *, buffers: Any = None, persistent_load: Any = None) -> Any:
        if buffers is None and persistent_load is None:
            return pickle.loads(payload)
        return load_pickle_stream(payload, buffers, persistent_load)
