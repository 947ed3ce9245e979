"""Dask integration: ``import anypickle.dask`` registers the serialization family ``"anypickle"``.

Data that a client scatters, and that workers hand each other, then travels through anypickle: a
``__main__`` class instance, or an object whose class lives in a local module of the client's script,
loads on a worker that has neither. Large numpy arrays inside such objects go as out-of-band frames
(no copy into the pickle stream).

Use it on both sides::

    import anypickle.dask
    from distributed import Client, LocalCluster

    cluster = LocalCluster(preload=["anypickle.dask"])          # workers register the family too
    client = Client(cluster, serializers=anypickle.dask.SERIALIZERS,
                    deserializers=anypickle.dask.DESERIALIZERS)
    future = client.scatter(MyMainClass())                     # goes through anypickle

    client.submit(anypickle.wrap(f), x)                        # task functions: wrap them

Workers started elsewhere: ``dask worker --preload anypickle.dask`` or
``anypickle.dask.register_on_workers(client)``.

Task *functions* do not go through serialization families (Dask pickles the task graph itself, with
cloudpickle when plain pickle fails): ship them with :func:`anypickle.wrap`, which Dask pickles as
a reference to anypickle plus the anypickle bytes, loaded on the worker once per process.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol.serialize import register_serialization_family

from . import _context
from ._api import dumps, loads

__all__ = ["DESERIALIZERS", "FAMILY", "SERIALIZERS", "deserialize", "register_on_workers", "serialize"]

FAMILY = "anypickle"
SERIALIZERS = ["dask", FAMILY]
"""Client ``serializers``: Dask's own per-type serializers first (numpy, pandas...), then anypickle."""
DESERIALIZERS = ["dask", FAMILY, "pickle", "msgpack", "error"]
"""Client ``deserializers``: also reads what workers send with Dask's defaults."""

# Arrays at least this large travel as their own frame instead of inside the pickle stream.
OUT_OF_BAND_BYTES = 64 * 1024
_BUFFER = "anypickle.dask.buffer"


# TODO: switch to anypickle.dumps(obj, buffers=True) (pickle protocol 5 buffer_callback) once it is
# on main; until then large arrays leave the stream through the persistent-id hook of the receiver
# context machinery, which every anypickle pickler supports.
class _OutOfBand(_context.Marker):
    """A ``persistent_id`` hook that moves large plain numpy arrays into separate frames."""

    __slots__ = ("frames", "writeable", "_ndarray")

    def __init__(self) -> None:
        super().__init__({})
        self.frames: list[memoryview] = []
        self.writeable: list[bool] = []
        numpy = sys.modules.get("numpy")
        self._ndarray = numpy.ndarray if numpy is not None else None

    def __call__(self, obj: Any) -> Any:
        if type(obj) is not self._ndarray or obj.nbytes < OUT_OF_BAND_BYTES:
            return None
        dtype = obj.dtype
        if dtype.hasobject or dtype.fields is not None:
            return None
        if obj.flags.c_contiguous:
            order = "C"
        elif obj.flags.f_contiguous:
            order = "F"
        else:
            return None
        self.used = True
        self.frames.append(memoryview(obj.ravel(order="K")).cast("B"))
        self.writeable.append(bool(obj.flags.writeable))
        return (_BUFFER, len(self.frames) - 1, dtype.str, obj.shape, order)


class _Frames(dict):  # type: ignore[type-arg]
    """The receiver side: resolves each out-of-band reference to an array over its frame."""

    def __init__(self, frames: Sequence[Any], writeable: Sequence[bool]) -> None:
        super().__init__()
        self._frames = frames
        self._writeable = writeable

    def __getitem__(self, pid: Any) -> Any:
        import numpy

        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == _BUFFER):
            raise KeyError(pid)
        _, index, dtype, shape, order = pid
        frame = memoryview(self._frames[index])
        if self._writeable[index] and frame.readonly:
            frame = memoryview(bytearray(frame))  # the sender's array was writeable: so is this one
        array = numpy.frombuffer(frame, dtype=numpy.dtype(dtype))
        return array.reshape(shape, order=order)


def serialize(obj: Any) -> tuple[dict[str, Any], list[Any]]:
    """The ``"anypickle"`` family's dumps: one anypickle envelope plus one frame per large array."""
    hook = _OutOfBand()
    payload = dumps(obj, context=hook)
    return {"writeable": tuple(hook.writeable)}, [payload, *hook.frames]


def deserialize(header: dict[str, Any], frames: Sequence[Any]) -> Any:
    """The ``"anypickle"`` family's loads."""
    data = frames[0]
    if not isinstance(data, (bytes, bytearray, memoryview)):
        data = memoryview(data)
    return loads(data, context=_Frames(frames[1:], header.get("writeable", ())))


register_serialization_family(FAMILY, serialize, deserialize)


class _RegisterFamily(WorkerPlugin):
    """Imports this module on each worker (present and future), which registers the family there."""

    name = "anypickle-serialization-family"

    def setup(self, worker: Any) -> None:
        import anypickle.dask  # noqa: F401


def register_on_workers(client: Any) -> None:
    """Register the ``"anypickle"`` family on every worker of ``client``'s cluster, including later ones."""
    client.register_plugin(_RegisterFamily())
