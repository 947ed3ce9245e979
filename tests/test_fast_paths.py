"""The per-call fast paths stay correct: pooled picklers, cached headers, cached type verdicts."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

import anypickle
from anypickle import DecodeError
from anypickle import _envelope as env
from anypickle.lab.runner import receive, send


class _Nested:
    """An object whose pickling calls anypickle.dumps itself (a pooled pickler must not be shared)."""

    def __init__(self, inner):
        self.inner = inner

    def __reduce__(self):
        return (anypickle.loads, (anypickle.dumps({"inner": self.inner}),))


def test_dumps_nested_in_a_reduce_round_trips():
    """A dumps() running inside another dumps() on the same thread gets its own pickler."""
    obj = [{"a": 1}, _Nested([1, 2, 3]), {"b": 2}]
    assert anypickle.loads(anypickle.dumps(obj)) == [{"a": 1}, {"inner": [1, 2, 3]}, {"b": 2}]


def test_concurrent_dumps_from_threads_do_not_mix():
    """Eight threads dumping different small dicts each get back exactly their own."""
    errors = []

    def work(n):
        for i in range(300):
            d = {"thread": n, "i": i, "payload": [n] * (i % 7)}
            if anypickle.loads(anypickle.dumps(d)) != d:
                errors.append((n, i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


class _Payload:
    pass


def test_dumps_keeps_no_reference_to_the_object():
    """The pooled pickler's memo is cleared: a dumped object can be garbage collected."""
    obj = _Payload()
    ref = weakref.ref(obj)
    anypickle.dumps([obj, {"x": 1}])
    del obj
    gc.collect()
    assert ref() is None


def test_small_dumps_after_a_large_one():
    """A pickler that wrote large frames is not reused; later small dumps are still exact."""
    big = list(range(200_000))
    assert anypickle.loads(anypickle.dumps(big)) == big
    assert anypickle.loads(anypickle.dumps({"k": "v"})) == {"k": "v"}


def test_need_found_by_the_fast_probe_still_picks_a_by_value_backend():
    """A lambda deep in plain data: the fast path hands over to the fallbacks, which ship it."""
    data = {"rows": list(range(1000)), "fn": lambda x: x + 1}
    payload = anypickle.dumps(data)
    assert env.parse(memoryview(payload)).backend is not anypickle.Backend.PICKLE
    assert anypickle.loads(payload)["fn"](1) == 2


def test_fast_loads_translates_a_broken_stream():
    """A well-formed header over a broken pickle stream is a DecodeError, not an UnpicklingError."""
    garbage = b"\x80\x05not a pickle"
    with pytest.raises(DecodeError):
        anypickle.loads(env.pickle_header(len(garbage)) + garbage)


@pytest.mark.parametrize("length", [0, 61, 2047, 2048, 10**6])
def test_cached_pickle_header_equals_the_built_one(length):
    """The cached header for a pickle payload is byte for byte the general one."""
    assert env.pickle_header(length) == env.build_header(anypickle.Backend.PICKLE, 0, length)


def test_main_typevar_after_an_installed_one_goes_by_value(tmp_path):
    """Seeing typing.AnyStr first must not make a __main__ TypeVar travel by reference."""
    sent = send(tmp_path, """
        import typing
        import anypickle
        anypickle.dumps([typing.AnyStr])  # an installed TypeVar: needs nothing
        T = typing.TypeVar("T", bound=int)
        obj = T
    """)
    assert sent.backend != "pickle"
    assert receive(tmp_path, sent.payload, "[obj.__name__, obj.__bound__.__name__]") == {"result": ["T", "int"]}


@pytest.mark.parametrize("make", [lambda: {"a": [1, 2]}, lambda: (lambda x: x + 1), lambda: [lambda: i for i in range(3)]])
def test_dumps_leaves_no_cyclic_garbage(make):
    """Neither the probe nor a fallback leaves reference cycles (exceptions, picklers) for the collector."""
    obj = make()
    anypickle.dumps(obj)  # warm caches and the pool
    gc.collect()
    gc.disable()
    try:
        anypickle.dumps(obj)
        assert gc.collect() == 0
    finally:
        gc.enable()


def _best_time(func, number=2000, repeat=5):
    import time

    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        for _ in range(number):
            func()
        best = min(best, time.thread_time() - start)
    return best


def test_small_dumps_stay_fast_after_a_payload_with_many_objects():
    """A pooled pickler's memo table is replaced after a many-object payload, not cleared forever after.

    CPython's clear_memo() walks the table at the largest size it ever reached: reused as is, one
    dumps of 3000 strings made every later small dumps about 14x slower.
    """
    small = {"id": 1, "tags": ["a", "b"]}
    before = _best_time(lambda: anypickle.dumps(small))
    anypickle.dumps([f"s{i}" for i in range(3000)])
    after = _best_time(lambda: anypickle.dumps(small))
    assert after < 3 * before
