"""Dask ``client.map`` over 1k tiny tasks: the "anypickle" serialization family against Dask's default.

A real ``LocalCluster`` (2 worker processes, 1 thread each, ``preload=["anypickle.dask"]``) and two
clients on it: one with Dask's default serializers, one with ``anypickle.dask.SERIALIZERS``. Two
kinds of task: an importable function (the same for both clients) and a ``__main__`` lambda (Dask's
default pickles it with cloudpickle; the anypickle client ships ``anypickle.wrap(lambda)``). Each
round maps 1,000 tasks (``pure=False``: fresh keys) with each client in turn and gathers the results;
the ratio is the median of the per-round ratios. Target (issue 16): at most 1.1x Dask's default.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="needs the dask extra: pip install 'anypickle[dask]'")

sys.path.insert(0, str(Path(__file__).parent))

from distributed import Client, LocalCluster  # noqa: E402

import anypickle  # noqa: E402
import anypickle.dask  # noqa: E402
from _mainlike import _claim_main  # noqa: E402
from _targets import record, row  # noqa: E402
from _tasks import tiny  # noqa: E402

N_TASKS = 1_000
ROUNDS = int(os.environ.get("ANYPICKLE_BENCH_DASK_ROUNDS", "5"))
LAMBDA = _claim_main(lambda x: x + 1)


def test_dask_map_family(benchmark):
    benchmark.group = f"dask client.map, {N_TASKS} tiny tasks"
    rounds, n = (ROUNDS, N_TASKS) if not benchmark.disabled else (1, 50)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, preload=["anypickle.dask"],
                      dashboard_address=None) as cluster, \
            Client(cluster) as default, \
            Client(cluster, serializers=anypickle.dask.SERIALIZERS,
                   deserializers=anypickle.dask.DESERIALIZERS) as ours:
        tasks = {("default", "importable"): (default, tiny), ("anypickle", "importable"): (ours, tiny),
                 ("default", "lambda"): (default, LAMBDA), ("anypickle", "lambda"): (ours, anypickle.wrap(LAMBDA))}
        start = iter(range(0, 10**9, n))

        def once(client, fn):
            first = next(start)
            t0 = time.perf_counter()
            futures = client.map(fn, range(first, first + n), pure=False)
            out = client.gather(futures)
            elapsed = time.perf_counter() - t0
            assert out == list(range(first + 1, first + n + 1))
            del futures
            return elapsed

        for client, fn in tasks.values():  # warm: workers import what the tasks need
            once(client, fn)

        def run():
            times: dict = {key: [] for key in tasks}
            for r in range(rounds):
                keys = list(tasks) if r % 2 == 0 else list(reversed(tasks))
                for key in keys:
                    times[key].append(once(*tasks[key]))
            return times

        times = benchmark.pedantic(run, rounds=1, iterations=1)
    ratio = {kind: statistics.median(a / b for a, b in zip(times[("anypickle", kind)], times[("default", kind)]))
             for kind in ("importable", "lambda")}
    medians = {f"{c} {k}": statistics.median(v) for (c, k), v in times.items()}
    benchmark.extra_info.update(case="dask map", medians=medians, tasks=n, rounds=rounds)
    print("\n  " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in medians.items()), end="")
    record(benchmark, [
        row("dask: client.map with the anypickle family at most 1.1x Dask's default", f"{n} tiny tasks, importable function",
            "anypickle/default", ratio["importable"], 1.1),
        row("dask: client.map with the anypickle family at most 1.1x Dask's default", f"{n} tiny tasks, __main__ lambda (wrap)",
            "anypickle/default", ratio["lambda"], 1.1),
    ])
