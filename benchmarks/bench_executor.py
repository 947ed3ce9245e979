"""Executor throughput: 10,000 tiny tasks through ``map(chunksize=100)`` on 2 spawn workers, pools already started.

Side by side, in one run: the stdlib ``concurrent.futures.ProcessPoolExecutor`` with an importable
function (the only kind it can ship), and ``anypickle.ProcessPoolExecutor`` with the same function and
with a ``__main__``-style lambda. Run::

    pytest benchmarks/bench_executor.py --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds

The ratio anypickle / stdlib (medians) is printed at the end of the session and stored in each
result's ``extra_info``. On a shared machine the per-case medians drift with the load, so
``test_interleaved_ratio`` also times the two pools alternately, pair by pair, and reports the median
of the per-pair ratios: the number to quote.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import anypickle  # noqa: E402
from _tasks import tiny  # noqa: E402

N_TASKS = 10_000
CHUNKSIZE = 100
WORKERS = 2

_medians: dict[str, float] = {}


@pytest.fixture(scope="module")
def pools():
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=ctx) as stdlib, \
            anypickle.ProcessPoolExecutor(WORKERS, mp_context=ctx) as ours:
        for pool in (stdlib, ours):  # start every worker and warm both paths before timing
            assert list(pool.map(tiny, range(1000), chunksize=CHUNKSIZE))[-1] == 1000
        yield {"stdlib": stdlib, "anypickle": ours}


CASES = {
    "stdlib-importable": ("stdlib", tiny),
    "anypickle-importable": ("anypickle", tiny),
    "anypickle-lambda": ("anypickle", lambda x: x + 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_map_10k_tiny_tasks(benchmark, pools, case):
    pool_name, fn = CASES[case]
    pool = pools[pool_name]
    benchmark.group = f"map {N_TASKS} tiny tasks, chunksize={CHUNKSIZE}, {WORKERS} spawn workers"
    benchmark.extra_info.update(tasks=N_TASKS, chunksize=CHUNKSIZE, workers=WORKERS)

    def run():
        return list(pool.map(fn, range(N_TASKS), chunksize=CHUNKSIZE))

    result = benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    assert result == list(range(1, N_TASKS + 1))
    if benchmark.stats is None:  # --benchmark-disable: the run above was only a correctness check
        return
    _medians[case] = benchmark.stats.stats.median
    if "stdlib-importable" in _medians:
        benchmark.extra_info["ratio_vs_stdlib"] = round(_medians[case] / _medians["stdlib-importable"], 3)


def test_interleaved_ratio(benchmark, pools):
    """Time stdlib and anypickle alternately (30 pairs) and record the median per-pair ratio."""
    benchmark.group = f"map {N_TASKS} tiny tasks, interleaved pairs"

    def once(pool, fn):
        start = time.perf_counter()
        list(pool.map(fn, range(N_TASKS), chunksize=CHUNKSIZE))
        return time.perf_counter() - start

    def pairs():
        return [(once(pools["stdlib"], tiny), once(pools["anypickle"], tiny), once(pools["anypickle"], CASES["anypickle-lambda"][1]))
                for _ in range(30)]

    timed = benchmark.pedantic(pairs, rounds=1, iterations=1)
    importable = statistics.median(a / s for s, a, _ in timed)
    lam = statistics.median(b / s for s, _, b in timed)
    benchmark.extra_info.update(ratio_importable_vs_stdlib=round(importable, 3), ratio_lambda_vs_stdlib=round(lam, 3))
    print(f"\n  interleaved, median of 30 per-pair ratios: anypickle importable {importable:.2f}x, "
          f"anypickle lambda {lam:.2f}x (stdlib median {statistics.median(s for s, _, _ in timed) * 1e3:.2f} ms)")


def teardown_module(module):
    base = _medians.get("stdlib-importable")
    if base:
        print()
        for case, median in _medians.items():
            print(f"  {case:22s} median {median * 1e3:7.2f} ms   ratio vs stdlib {median / base:5.2f}x")
