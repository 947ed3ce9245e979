"""anypickle's ProcessPoolExecutor against loky's reusable executor and the stdlib pool (issue 16).

The same 10,000 tiny tasks (``map(chunksize=100)``, 2 workers) with an importable function and with
a ``__main__`` lambda (the stdlib cannot ship it; loky ships it with cloudpickle). loky is joblib's
executor (``joblib.externals.loky``, joblib being a test dependency; the ``loky`` package from PyPI
is used instead when installed): the robust pool users pick, the anchor to beat.

Warm: every pool started and warmed, then timed pair by pair in turn (30 rounds by default,
``ANYPICKLE_BENCH_POOL_ROUNDS``); the ratio is the median of the per-round ratios. Cold: start the pool,
map, shut down, the start included (3 rounds; the minimum). Targets: anypickle / loky at most 1.0x on
warm pools, both kinds; the cold ratios and the ratios to the stdlib are information.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import anypickle  # noqa: E402
from _mainlike import _claim_main  # noqa: E402
from _targets import record, row  # noqa: E402
from _tasks import tiny  # noqa: E402

try:  # noqa: SIM105
    import loky  # the PyPI package, when installed
except ImportError:
    loky = pytest.importorskip("joblib.externals.loky", reason="needs joblib (test extra) or loky")

N_TASKS = 10_000
CHUNKSIZE = 100
WORKERS = 2
ROUNDS = int(os.environ.get("ANYPICKLE_BENCH_POOL_ROUNDS", "30"))
LAMBDA = _claim_main(lambda x: x + 1)
KINDS = {"importable": tiny, "lambda": LAMBDA}
LABELS = {"importable": "importable function", "lambda": "__main__ lambda"}


def _map(pool, fn, n):
    start = time.perf_counter()
    out = list(pool.map(fn, range(n), chunksize=CHUNKSIZE))
    elapsed = time.perf_counter() - start
    assert out[-1] == n and len(out) == n
    return elapsed


def _stdlib():
    return concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"))


def _anypickle():
    return anypickle.ProcessPoolExecutor(WORKERS, mp_context="spawn")


def _loky():
    return loky.get_reusable_executor(max_workers=WORKERS, reuse=True)


def _warm(pool):
    for fn in KINDS.values():
        if pool[0] != "stdlib" or fn is tiny:
            _map(pool[1], fn, 1000)


def test_pools_warm(benchmark):
    """Warm pools, timed in turn; median per-round ratios anypickle/loky and anypickle/stdlib."""
    benchmark.group = f"map {N_TASKS} tiny tasks, pools against loky"
    rounds, n = (ROUNDS, N_TASKS) if not benchmark.disabled else (1, 500)
    stdlib, ours = _stdlib(), _anypickle()
    theirs = _loky()
    pools = [("stdlib", stdlib), ("anypickle", ours), ("loky", theirs)]
    try:
        for pool in pools:
            _warm(pool)

        def run():
            times: dict = {}
            for _ in range(rounds):
                for name, pool in pools:
                    for kind, fn in KINDS.items():
                        if name == "stdlib" and kind == "lambda":
                            continue
                        times.setdefault((name, kind), []).append(_map(pool, fn, n))
            return times

        times = benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        stdlib.shutdown()
        ours.shutdown()
        theirs.shutdown(wait=True)
    per_round = {key: value for key, value in times.items()}
    ratio = {kind: statistics.median(a / b for a, b in zip(per_round[("anypickle", kind)], per_round[("loky", kind)]))
             for kind in KINDS}
    to_stdlib = {name: statistics.median(a / b for a, b in zip(per_round[(name, "importable")],
                                                                per_round[("stdlib", "importable")]))
                 for name in ("anypickle", "loky")}
    medians = {f"{name} {kind}": statistics.median(v) for (name, kind), v in per_round.items()}
    benchmark.extra_info.update(case="pools warm", medians=medians, tasks=n, rounds=rounds)
    print("\n  " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in medians.items()), end="")
    record(benchmark, [
        row("executor: warm pool at most 1.0x loky's", f"{n} tiny tasks, importable function",
            "anypickle/loky", ratio["importable"], 1.0),
        row("executor: warm pool at most 1.0x loky's", f"{n} tiny tasks, __main__ lambda",
            "anypickle/loky", ratio["lambda"], 1.0),
        row("(info) executor against the stdlib pool", f"{n} tiny tasks, importable function",
            "anypickle/stdlib", to_stdlib["anypickle"], None),
        row("(info) executor against the stdlib pool", f"{n} tiny tasks, importable function",
            "loky/stdlib", to_stdlib["loky"], None),
    ])


def test_pools_cold(benchmark):
    """Start, map, shut down (start included), in turn; minimum over rounds; ratios anypickle/loky."""
    benchmark.group = f"map {N_TASKS} tiny tasks, pools against loky"
    rounds, n = (3, N_TASKS) if not benchmark.disabled else (1, 500)

    def cold(make, fn):
        start = time.perf_counter()
        pool = make()
        _map(pool, fn, n)
        pool.shutdown(wait=True)
        return time.perf_counter() - start

    def run():
        best: dict = {}
        for _ in range(rounds):
            for name, make in (("stdlib", _stdlib), ("anypickle", _anypickle), ("loky", _loky)):
                for kind, fn in KINDS.items():
                    if name == "stdlib" and kind == "lambda":
                        continue
                    key = f"{name} {kind}"
                    best[key] = min(best.get(key, float("inf")), cold(make, fn))
        return best

    best = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(case="pools cold", seconds=best, tasks=n, rounds=rounds)
    print("\n  " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in best.items()), end="")
    record(benchmark, [
        row("(info) executor, cold start included", f"{n} tiny tasks, {LABELS[kind]}", "anypickle/loky",
            best[f"anypickle {kind}"] / best[f"loky {kind}"], None) for kind in KINDS
    ] + [row("(info) executor, cold start included", f"{n} tiny tasks, importable function", "anypickle/stdlib",
             best["anypickle importable"] / best["stdlib importable"], None)])
