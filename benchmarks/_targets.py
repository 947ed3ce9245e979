"""Target rows that a benchmark computes within its own run and hands to ``benchmarks/report.py``.

A benchmark stores ``extra_info["targets"]``: a list of rows ``{target, case, measure, value, limit}``
(``limit`` None for an information row). Every value is a ratio of two things measured in the same
run, never a bare time; report.py prints them with PASS/MISS and takes the median over runs.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Iterable


def row(target: str, case: str, measure: str, value: "float | None", limit: "float | None",
        note: str = "", unit: str = "x") -> dict[str, Any]:
    """One target row; ``limit=None`` makes it an information row (no verdict).

    ``target``, ``case`` and ``measure`` identify the row across runs (keep them free of measured
    values); ``note`` (shown after the case, taken from the first run) may carry such details.
    """
    out: dict[str, Any] = {"target": target, "case": case, "measure": measure,
                           "value": None if value is None else float(value), "limit": limit}
    if note:
        out["note"] = note
    if unit != "x":
        out["unit"] = unit
    if limit is None:
        out["info"] = True
    return out


def record(benchmark: Any, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append ``rows`` to the benchmark's ``extra_info["targets"]`` and print them."""
    rows = list(rows)
    benchmark.extra_info.setdefault("targets", []).extend(rows)
    for r in rows:
        unit = r.get("unit", "x")
        value = "n/a" if r["value"] is None else f"{r['value']:.3f}{unit}"
        limit = "" if r["limit"] is None else f" (limit {r['limit']:.2f}{unit})"
        print(f"\n  {r['case'] + (' (' + r['note'] + ')' if r.get('note') else ''):40s} {r['measure']:34s} {value}{limit}",
              end="")
    print()
    return rows


def per_call(fn: Callable[[], Any], calls: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls in a loop."""
    start = clock()
    for _ in range(calls):
        fn()
    return (clock() - start) / calls


def calls_for(fn: Callable[[], Any], seconds: float) -> int:
    """How many calls of ``fn`` fill about ``seconds`` (at least 1)."""
    start, n = time.perf_counter(), 0
    while True:
        fn()
        n += 1
        spent = time.perf_counter() - start
        if spent >= seconds / 5 or n >= 10_000:
            return max(1, int(n * seconds / max(spent, 1e-9)))


def interleaved_min(fns: dict[str, Callable[[], Any]], calls: int, rounds: int,
                    clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Minimum over ``rounds`` of the per-call time of each function, the functions timed in turn.

    Interleaving puts every function under the same load: a busy moment on a shared machine slows
    one round of each rather than all rounds of one.
    """
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], per_call(fn, calls, clock))
    return best


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))
