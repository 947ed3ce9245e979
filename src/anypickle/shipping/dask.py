"""Dask integration: ``import anypickle.dask`` registers the serialization family ``"anypickle"``.

Data that a client scatters, and that workers hand each other, then travels through anypickle: a
``__main__`` class instance, or an object whose class lives in a local module of the client's script,
loads on a worker that has neither. Numpy arrays inside such objects go as out-of-band frames
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

from typing import Any, Sequence

from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol.serialize import register_serialization_family

from .._api import dumps, loads

__all__ = ["DESERIALIZERS", "FAMILY", "SERIALIZERS", "deserialize", "register_on_workers", "serialize"]

FAMILY = "anypickle"
SERIALIZERS = ["dask", FAMILY]
"""Client ``serializers``: Dask's own per-type serializers first (numpy, pandas...), then anypickle."""
DESERIALIZERS = ["dask", FAMILY, "pickle", "msgpack", "error"]
"""Client ``deserializers``: also reads what workers send with Dask's defaults."""

def serialize(obj: Any) -> tuple[dict[str, Any], list[Any]]:
    """The ``"anypickle"`` family's dumps: one anypickle header frame plus one frame per buffer.

    Pickle protocol 5 hands every contiguous buffer (numpy arrays, bytearrays, PickleBuffers) to
    ``anypickle.dumps(obj, buffers=True)`` as a memoryview of the original memory: no copy here.
    """
    header, buffers = dumps(obj, buffers=True)
    return {"writeable": tuple(not b.readonly for b in buffers)}, [header, *buffers]


def deserialize(header: dict[str, Any], frames: Sequence[Any]) -> Any:
    """The ``"anypickle"`` family's loads: arrays are views of the received frames."""
    data = frames[0]
    if not isinstance(data, (bytes, bytearray, memoryview)):
        data = memoryview(data)
    buffers = [memoryview(f) for f in frames[1:]]
    for i, writeable in enumerate(header.get("writeable", ())):
        if writeable and buffers[i].readonly:
            buffers[i] = memoryview(bytearray(buffers[i]))  # the sender's array was writeable: so is this one
    return loads(data, buffers=buffers)


register_serialization_family(FAMILY, serialize, deserialize)


class _RegisterFamily(WorkerPlugin):
    """Imports this module on each worker (present and future), which registers the family there."""

    name = "anypickle-serialization-family"

    def setup(self, worker: Any) -> None:
        import anypickle.dask  # noqa: F401


def register_on_workers(client: Any) -> None:
    """Register the ``"anypickle"`` family on every worker of ``client``'s cluster, including later ones."""
    client.register_plugin(_RegisterFamily())
