"""dill: pure-Python pickler that ships the most, 20-70x slower than pickle on plain data."""

from __future__ import annotations

import pickle
from typing import IO, Any

import dill

from .._backend import Backend
from .._modules import ModulePolicy

PROTOCOL = 5


class DillBackend:
    """dill with its defaults when forced; with ``recurse=True`` when auto falls back to it.

    ``recurse=True`` makes dill ship the ``__main__`` globals a function uses (by default it expects
    the receiver's ``__main__`` to hold them, which a fresh process does not).
    """

    id = Backend.DILL
    carries_code = True
    dump_errors = (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError)

    def dump(
        self, obj: Any, file: IO[bytes], policy: ModulePolicy, *, auto: bool, persistent_id: Any = None,
        buffer_callback: Any = None,
    ) -> None:
        pickler = dill.Pickler(file, protocol=PROTOCOL, recurse=auto, buffer_callback=buffer_callback)
        if persistent_id is not None:
            pickler.persistent_id = persistent_id
        pickler.dump(obj)

    def loads(self, payload: memoryview) -> Any:
        return dill.loads(payload)
