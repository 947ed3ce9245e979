"""dill: pure-Python pickler that ships the most, and the slowest on plain data (measured: README, Performance)."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import dill

from .._backend import Backend
from .._modules import ModulePolicy

if TYPE_CHECKING:
    from . import Writer

PROTOCOL = 5


class DillBackend:
    """dill with its defaults when forced; with ``recurse=True`` when auto falls back to it.

    ``recurse=True`` makes dill ship the ``__main__`` globals a function uses (by default it expects
    the receiver's ``__main__`` to hold them, which a fresh process does not).
    """

    id = Backend.DILL
    carries_code = True
    dump_errors: tuple[type[BaseException], ...] = (
        pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError)

    def dump(
        self, obj: Any, file: Writer, policy: ModulePolicy, *, auto: bool, persistent_id: Any = None,
        buffer_callback: Any = None,
    ) -> None:
        pickler = dill.Pickler(file, protocol=PROTOCOL, recurse=auto, buffer_callback=buffer_callback)
        if persistent_id is not None:
            pickler.persistent_id = persistent_id
        pickler.dump(obj)

    def loads(self, payload: memoryview) -> Any:
        return dill.loads(payload)
