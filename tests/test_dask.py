"""Dask: the "anypickle" serialization family and anypickle.wrap against a real LocalCluster.

The cluster runs in the pytest process with two worker processes; the client is a script run as
``__main__`` in a child interpreter, in a folder with a helper module that neither the scheduler nor
the workers can import (their ``sys.path`` lacks that folder).
"""

from __future__ import annotations

import pytest

pytest.importorskip("distributed", reason="needs the dask extra: pip install 'anypickle[dask]'")

import numpy as np  # noqa: E402
from distributed import LocalCluster  # noqa: E402
from distributed.protocol.serialize import deserialize, serialize  # noqa: E402

import anypickle.dask  # noqa: E402
from anypickle.lab.runner import run_script  # noqa: E402

HELPER = """
class Thing:
    def __init__(self, value):
        self.value = value
    def scaled(self, x):
        return self.value * x
"""

SCRIPT = """
import json, sys
import numpy as np
import anypickle, anypickle.dask
from distributed import Client
from distributed.protocol.serialize import serialize

class Ship:
    def __init__(self, name, readings):
        self.name = name
        self.readings = readings
    def describe(self):
        return f"{self.name}: {self.readings.size} readings summing to {int(self.readings.sum())}"

def chain(exc):
    parts = []
    while exc is not None and len(parts) < 5:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)

if __name__ == "__main__":
    import helper  # only the client has it
    client = Client(sys.argv[1], serializers=anypickle.dask.SERIALIZERS, deserializers=anypickle.dask.DESERIALIZERS)
    offset = 5
    out = {}

    out["main_lambda"] = client.submit(anypickle.wrap(lambda x: x * 2 + offset), 10).result(timeout=60)

    thing = helper.Thing(3)
    closure = lambda x: thing.scaled(x) + offset
    try:
        out["closure_plain_dask"] = client.submit(closure, 2, pure=False).result(timeout=60)
    except Exception as exc:
        out["closure_plain_dask"] = chain(exc)
    out["closure_wrapped"] = client.submit(anypickle.wrap(closure), 2).result(timeout=60)

    ship = Ship("Tantive IV", np.arange(100_000, dtype=np.int64))
    header, frames = serialize(ship, serializers=anypickle.dask.SERIALIZERS)
    out["family"] = [header["serializer"], len(frames)]
    [scattered] = client.scatter([ship])
    out["scattered"] = client.submit(
        anypickle.wrap(lambda s: [s.describe(), type(s).__module__, type(s).__qualname__]), scattered
    ).result(timeout=60)

    futures = client.map(anypickle.wrap(lambda x: x * x + offset), range(100))
    out["map"] = client.gather(futures)
    out["workers"] = len(client.scheduler_info()["workers"])
    client.close()
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes that register the family at start (preload) and cannot import the client's folder."""
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0", preload=["anypickle.dask"]
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def outcome(cluster, tmp_path_factory):
    return run_script(tmp_path_factory.mktemp("dask"), SCRIPT, {"helper": HELPER}, [cluster.scheduler_address], timeout=180)


def test_main_lambda_ships_wrapped(outcome):
    """client.submit(anypickle.wrap(<__main__ lambda>)) runs on a worker."""
    assert outcome["main_lambda"] == 25


def test_local_module_closure_needs_wrap(outcome):
    """Dask's own pickling sends the helper class by reference and fails; wrapped, the closure runs."""
    assert "helper" in str(outcome["closure_plain_dask"])  # e.g. ModuleNotFoundError: No module named 'helper'
    assert outcome["closure_wrapped"] == 11


def test_main_instance_scattered_through_the_family(outcome):
    """A __main__ class instance goes through the "anypickle" family (its array out of band) and is read on a worker."""
    assert outcome["family"] == ["anypickle", 2]
    assert outcome["scattered"] == ["Tantive IV: 100000 readings summing to 4999950000", "__main__", "Ship"]


def test_client_map_over_100_inputs(outcome):
    """client.map of a wrapped __main__ lambda over 100 inputs, on both workers."""
    assert outcome["map"] == [x * x + 5 for x in range(100)]
    assert outcome["workers"] == 2


# --- the family in-process ---------------------------------------------------------------------


class Holder:
    def __init__(self, big, small, fortran):
        self.big, self.small, self.fortran = big, small, fortran


def test_family_round_trip_keeps_arrays_out_of_band():
    """Arrays become their own frames without a copy (as in Dask's own pickle family); dtype, shape, order and writeability survive."""
    big = np.arange(50_000, dtype=np.float64)
    fortran = np.asfortranarray(np.arange(40_000, dtype=np.int32).reshape(200, 200))
    obj = Holder(big, np.arange(5), fortran)
    header, frames = serialize(obj, serializers=["anypickle"])
    assert header["serializer"] == "anypickle" and len(frames) == 4
    assert any(np.shares_memory(np.frombuffer(f, dtype=np.float64), big) for f in frames[1:] if len(f) == big.nbytes)
    back = deserialize(header, [bytes(f) for f in frames])
    assert np.array_equal(back.big, big) and back.big.dtype == big.dtype
    assert np.array_equal(back.fortran, fortran) and back.fortran.flags.f_contiguous
    assert np.array_equal(back.small, np.arange(5))
    back.big[0] = -1.0  # writeable, like the original
    assert big[0] == 0.0


def test_family_handles_plain_data_and_object_arrays():
    """Data without plain arrays is one frame; object arrays stay in the stream."""
    header, frames = serialize({"a": 1}, serializers=["anypickle"])
    assert len(frames) == 1 and deserialize(header, frames) == {"a": 1}
    objects = np.array([{"k": i} for i in range(20_000)], dtype=object)
    header, frames = serialize(objects, serializers=["anypickle"])
    assert len(frames) == 1 and deserialize(header, frames)[19_999] == {"k": 19_999}


def test_register_on_workers():
    """register_on_workers registers the family on workers started without the preload."""
    from distributed import Client

    # A lambda travels by value: a module-level probe would import this module (and anypickle.dask) on the worker.
    registered = lambda: "anypickle" in __import__("sys").modules["distributed.protocol.serialize"].families  # noqa: E731
    with LocalCluster(n_workers=1, processes=True, threads_per_worker=1, dashboard_address=":0") as bare:
        with Client(bare) as client:
            before = client.run(registered)
            anypickle.dask.register_on_workers(client)
            after = client.run(registered)
    assert set(before.values()) == {False}
    assert set(after.values()) == {True}
