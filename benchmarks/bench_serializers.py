"""dumps and loads of every case with every backend that can carry it; one group per case and operation."""

from __future__ import annotations

import os
import time

import pytest

import anypickle
from anypickle import _envelope as env
from cases import BACKENDS, BIG, CASES, applicable, build, kind, nbytes


def _frames_dumps(obj):
    return anypickle.dumps(obj, buffers=True)


def _frames_loads(frames):
    header, buffers = frames
    return anypickle.loads(header, buffers=buffers)


EXTRA_DUMPS = {"anypickle-buffers": (_frames_dumps, _frames_loads)}
# Keyword arguments of the timed call itself (a wrapper function would add its own call to the time).
# "anypickle-safe" times anypickle.Decoder(safe=True).decode, which is loads(data, safe=True) with the
# option bound in C: pytest-benchmark hands keyword arguments over as **kwargs, which CPython turns
# into a call's keyword names on every call (about 150 ns for loads, a quarter of pickle.loads on the
# 60-byte dict), a cost a service decoding many messages with one Decoder does not pay.
LOADS_KWARGS: dict[str, dict] = {}
PAIRS = [(c, b) for c in CASES for b in BACKENDS if applicable(c, b)]
PAIRS += [(c, "anypickle-buffers") for c in ("array_8mb", "array_80mb")]
LOAD_PAIRS = list(PAIRS)
LOAD_PAIRS += [(c, "anypickle-safe") for c in ("small_dict", "ints_100k", "strings_10k", "datetime_1k")]


def _codec(backend):
    if backend in EXTRA_DUMPS:
        return EXTRA_DUMPS[backend]
    if backend == "anypickle-safe":
        return anypickle.dumps, anypickle.Decoder(safe=True).decode
    return BACKENDS[backend]


# Seconds of measurement per benchmark (ANYPICKLE_BENCH_TIME; the notebook's small setting uses less).
BUDGET = float(os.environ.get("ANYPICKLE_BENCH_TIME", "0.6"))


def _per_call(fn, arg, kwargs=None):
    kwargs = kwargs or {}
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < min(0.01, BUDGET / 10):
        fn(arg, **kwargs)
        calls += 1
    return (time.perf_counter() - start) / calls


_iterations: dict[tuple[str, str], int] = {}


def _case_iterations(case, op):
    """Calls per round for a case and operation, the same for every backend so their minimums compare.

    Enough calls (about 2 ms per round) that a CPU-time clock's own cost, hundreds of ns, is noise
    next to a 1 us call; calibrated on the reference backend (pickle, or cloudpickle for code).
    """
    if (case, op) not in _iterations:
        dumps, loads = BACKENDS["pickle" if applicable(case, "pickle") else "cloudpickle"]
        obj = build(case)
        per_call = _per_call(dumps, obj) if op == "dumps" else _per_call(loads, dumps(obj))
        _iterations[(case, op)] = max(1, int(0.002 / per_call))
    return _iterations[(case, op)]


def _run(benchmark, case, backend, fn, arg, op, kwargs=None):
    kwargs = kwargs or {}
    if case in BIG:
        # Big inputs: a fixed, small number of rounds (dill copies 80 MB several times in Python).
        rounds = 3 if backend == "dill" else 10 if case == "array_80mb" else 30
        return benchmark.pedantic(fn, args=(arg,), kwargs=kwargs, rounds=rounds, iterations=1, warmup_rounds=1)
    iterations = _case_iterations(case, op)
    rounds = max(5, min(200, int(BUDGET / (_per_call(fn, arg, kwargs) * iterations))))
    return benchmark.pedantic(fn, args=(arg,), kwargs=kwargs, rounds=rounds, iterations=iterations, warmup_rounds=1)


def _ids(pairs):
    return [f"{c}-{b}" for c, b in pairs]


@pytest.mark.parametrize(("case", "backend"), PAIRS, ids=_ids(PAIRS))
def test_dumps(benchmark, case, backend):
    """Time of dumps; payload size in extra_info."""
    dumps, _ = _codec(backend)
    obj = build(case)
    benchmark.group = f"{case} dumps"
    benchmark.extra_info.update(case=case, backend=backend, op="dumps", kind=kind(case))
    payload = _run(benchmark, case, backend, dumps, obj, "dumps")
    benchmark.extra_info["size"] = nbytes(payload)
    if backend.startswith("anypickle"):  # the envelope's payload, its 20-40 byte header excluded
        header = env.parse(memoryview(payload[0] if isinstance(payload, tuple) else payload))
        # The source lines that travel for tracebacks (the header's SOURCE section) count as payload.
        source = len(header.source or b"")
        benchmark.extra_info["payload_size"] = nbytes(payload) - header.payload_offset + source
        benchmark.extra_info["source_size"] = source
    assert nbytes(payload) > 0


@pytest.mark.parametrize(("case", "backend"), LOAD_PAIRS, ids=_ids(LOAD_PAIRS))
def test_loads(benchmark, case, backend):
    """Time of loads of the payload the same backend wrote."""
    dumps, loads = _codec(backend)
    obj = build(case)
    payload = dumps(obj)
    benchmark.group = f"{case} loads"
    benchmark.extra_info.update(case=case, backend=backend, op="loads", kind=kind(case), size=nbytes(payload))
    result = _run(benchmark, case, backend, loads, payload, "loads", LOADS_KWARGS.get(backend))
    assert type(result) is type(obj)
