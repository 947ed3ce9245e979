"""How time and size grow with the object: pickle, cloudpickle, dill and anypickle auto (issue 16).

Families, each on a ladder of sizes (``ANYPICKLE_SCALING=large`` climbs to 10^6 items and 10^4
functions; the default ladder finishes in a couple of minutes; ``ANYPICKLE_SCALING=small``, the
notebook's small setting, stops at 10^3 items and 100 functions and times one round):

- ``ints``: a list of n ints; ``strings``: a dict of n short strings (plain data, pickle carries it);
- ``main instances``: n instances of a ``__main__`` class (shipped by value: pickle not measured);
- ``functions``: a list of n distinct ``__main__`` functions (own code objects);
- ``deep``: n nested lists, one inside the other (the needs analysis must stay linear in depth;
  depth stays below the recursion limits of the pure-Python picklers);
- ``wide graph``: n small dicts that each point at one of 16 shared records (a DAG: memo hits).

Each point: dumps and loads time (minimum over interleaved rounds, ``time.process_time``) and size
per backend. The target rows: the constant factor of auto against the best other backend (the
worst ratio over the ladder), and the log-log slope of auto's time over the upper part of the
ladder against the best backend's slope (auto never superlinear: slope(auto) <= slope(best) + 0.15).
The full curves go to ``extra_info["scaling"]`` for the notebook's plot and docs/benchmarks.md.
"""

from __future__ import annotations

import gc
import os
import time

import cloudpickle
import dill
import numpy as np
import pytest

import anypickle
import _mainlike
from anypickle.bench import CODECS
from _targets import record, row

LARGE = os.environ.get("ANYPICKLE_SCALING") == "large"
SMALL = os.environ.get("ANYPICKLE_SCALING") == "small"  # the notebook's small setting: seconds
SLOPE_MARGIN = 0.15
ROUNDS = 1 if SMALL else 3
SECONDS = float(os.environ.get("ANYPICKLE_SCALING_TIME", "0.02"))  # per timing, per backend and point


def _ladder(top_default: int, top_large: int, start: int = 10) -> list[int]:
    top = top_large if LARGE else max(start * 100, top_default // 100) if SMALL else top_default
    out, n = [], start
    while n <= top:
        out.append(n)
        n *= 10
    return out


def _functions(n: int) -> list:
    """n distinct ``__main__`` functions, each compiled on its own (one namespace each: in a shared one,
    dill pickles the namespace with every other function in it and overflows the recursion limit)."""
    out = []
    for i in range(n):
        namespace = {"__name__": "__main__"}
        exec(compile(f"def f{i}(x):\n    return x * {i} + 1", "<script>", "exec"), namespace)
        out.append(namespace[f"f{i}"])
    return out


def _deep(n: int) -> list:
    obj: list = []
    for i in range(n):
        obj = [i, obj]
    return obj


def _wide(n: int) -> list:
    shared = [{"name": f"record {j}", "values": list(range(j, j + 4))} for j in range(16)]
    return [{"i": i, "ref": shared[i % 16]} for i in range(n)]


# family -> (builder, ladder, backends that carry it)
DATA = ("pickle", "cloudpickle", "dill", "anypickle")
CODE = ("cloudpickle", "dill", "anypickle")
FAMILIES = {
    "ints": (lambda n: list(range(n)), _ladder(100_000, 1_000_000), DATA),
    "strings": (lambda n: {f"key-{i:07d}": f"value number {i}" for i in range(n)}, _ladder(100_000, 1_000_000), DATA),
    "main instances": (lambda n: [_mainlike.Point(i, i + 0.5) for i in range(n)], _ladder(10_000, 100_000, 1), CODE),
    "functions": (_functions, _ladder(1_000, 10_000, 1), CODE),
    "deep": (_deep, [10, 30, 100] + ([] if SMALL else [300]) + ([600] if LARGE else []), DATA),
    "wide graph": (_wide, _ladder(10_000, 1_000_000), DATA),
}
CODECS_USED = {**{name: CODECS[name] for name in ("pickle", "cloudpickle", "dill")},
               "anypickle": (anypickle.dumps, anypickle.loads)}


def _time(fn, arg, calls: int) -> float:
    gc.collect()
    start = time.process_time()
    for _ in range(calls):
        fn(arg)
    return (time.process_time() - start) / calls


def _calls(fn, arg, seconds: float) -> int:
    start = time.process_time()
    fn(arg)
    spent = time.process_time() - start
    return max(1, min(10_000, int(seconds / max(spent, 1e-7))))


def measure_point(obj, backends, rounds: int, seconds: float = SECONDS) -> dict:
    """{backend: {"dumps": s, "loads": s, "size": bytes}} for one object."""
    payloads, failed = {}, {}
    for b in backends:
        try:
            payloads[b] = CODECS_USED[b][0](obj)
            CODECS_USED[b][1](payloads[b])
        except (RecursionError, Exception) as exc:  # a backend's own limit: recorded, not timed
            failed[b] = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    if "anypickle" in failed:
        raise AssertionError(f"anypickle failed: {failed['anypickle']}")
    backends = [b for b in backends if b not in failed]
    out = {b: {"dumps": float("inf"), "loads": float("inf"), "size": len(payloads[b])} for b in backends}
    for op in ("dumps", "loads"):
        index = 0 if op == "dumps" else 1
        args = {b: obj if op == "dumps" else payloads[b] for b in backends}
        # The same calls per round for every backend (calibrated on the first, cheapest-looking one).
        calls = min(_calls(CODECS_USED[b][index], args[b], seconds) for b in backends)
        for _ in range(rounds):
            for b in backends:
                out[b][op] = min(out[b][op], _time(CODECS_USED[b][index], args[b], calls))
    return {**out, **failed}


def slope(sizes: list[int], times: list[float]) -> float:
    """Least-squares slope of log(time) against log(size)."""
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def analyse(curves: dict, sizes: list[int]) -> dict:
    """Per op: the worst and last auto/best ratio, and the log-log slopes of auto and best."""
    out = {}
    upper = sizes[-3:] if len(sizes) >= 3 else sizes
    for op in ("dumps", "loads"):
        others = [b for b in curves if b != "anypickle"]
        best = [min(curves[b][str(n)][op] for b in others if op in curves[b][str(n)]) for n in sizes]
        auto = [curves["anypickle"][str(n)][op] for n in sizes]
        ratios = [a / b for a, b in zip(auto, best)]
        tail = [sizes.index(n) for n in upper]
        out[op] = {"worst": max(ratios), "at_largest": ratios[-1],
                   "slope_auto": slope(upper, [auto[i] for i in tail]) if len(upper) > 1 else None,
                   "slope_best": slope(upper, [best[i] for i in tail]) if len(upper) > 1 else None}
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_scaling(benchmark, family):
    build, sizes, backends = FAMILIES[family]
    if benchmark.disabled:  # correctness check: the two smallest points, one round
        sizes = sizes[:2]
    rounds = ROUNDS if not benchmark.disabled else 1
    benchmark.group = "scaling"
    curves: dict = {b: {} for b in backends}

    def run():
        for n in sizes:
            obj = build(n)
            point = measure_point(obj, backends, rounds, SECONDS if not benchmark.disabled else 0.001)
            for b in backends:
                curves[b][str(n)] = point[b]
            # auto's result is right: it loads to what was dumped (a cheap check on the smallest point).
            if n == sizes[0]:
                back = anypickle.loads(anypickle.dumps(obj))
                assert (cloudpickle.dumps(back) == cloudpickle.dumps(obj)) or family in ("main instances", "functions")
        return curves

    benchmark.pedantic(run, rounds=1, iterations=1)
    assert all(curves["anypickle"][str(n)]["size"] > 0 for n in sizes)
    fits = analyse(curves, sizes)
    benchmark.extra_info.update(case=f"scaling {family}", scaling={"family": family, "sizes": sizes, "curves": curves,
                                                                    "fits": fits})
    rows = []
    for op in ("dumps", "loads"):
        fit = fits[op]
        rows.append(row("(info) scaling: auto / best other backend, worst over the ladder", family,
                        f"{op} auto/best, n={sizes[0]}..{sizes[-1]}", fit["worst"], None))
        rows.append(row("(info) scaling: auto / best other backend at the largest size", family,
                        f"{op} auto/best, n={sizes[-1]}", fit["at_largest"], None))
        if fit["slope_auto"] is not None:
            rows.append(row(f"scaling: auto never superlinear (log-log slope <= best's + {SLOPE_MARGIN})", family,
                            f"{op} slope(auto) - slope(best), n={sizes[-3] if len(sizes) >= 3 else sizes[0]}..{sizes[-1]}",
                            fit["slope_auto"] - fit["slope_best"], SLOPE_MARGIN, unit="",  # a difference, not a ratio
                            note=f"slopes {fit['slope_auto']:.2f} and {fit['slope_best']:.2f}"))
    record(benchmark, rows)
