"""Read a pytest-benchmark JSON and write the ratio table against the performance targets.

    pytest benchmarks --benchmark-json=bench.json
    python benchmarks/report.py bench.json --output docs/benchmarks.md

Several runs (``bench1.json bench2.json ...``) are combined benchmark by benchmark, best time kept.

Every ratio compares two backends measured in the same run, never a bare time. Times are the
minimum over rounds: on a shared machine the noise (other processes, the allocator handing out fresh
pages or reused ones for 16-80 MB buffers) only ever adds time, so the minimum is the best estimate
of what each call costs; ``--stat median`` reports medians instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

STAT = "min"
PLAIN = ("ints_100k", "strings_10k", "bytes_16mb", "array_8mb", "array_80mb")
INSTALLED = ("datetime_1k", "fraction_1k")
CODE = ("module_function", "lambda", "closure", "lambdas_1k", "main_instances_1k")
SAFE = ("small_dict", "ints_100k", "strings_10k", "datetime_1k")


def load_results(*paths: str | Path) -> tuple[dict[tuple[str, str, str], dict[str, Any]], dict[str, Any]]:
    """``{(case, op, backend): {"time": s, "size": bytes}}`` and the memory record, from the JSON.

    Given several runs, each benchmark keeps its best time across them (a busy moment on a shared
    machine slows one run's benchmark, not all of them).
    """
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    memory: dict[str, Any] = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for bench in data["benchmarks"]:
            info = bench.get("extra_info", {})
            if info.get("op") == "peak-memory":
                if not memory or info["ratio"] < memory["ratio"]:
                    memory = info
                continue
            if "case" not in info:
                continue
            key = (info["case"], info["op"], info["backend"])
            time = bench["stats"][STAT]
            if key not in results or time < results[key]["time"]:
                results[key] = {"time": time, "size": info.get("size"),
                                "payload": info.get("payload_size", info.get("size"))}
    return results, memory


def _ratio(results, case, op, backend, base):
    a, b = results.get((case, op, backend)), results.get((case, op, base))
    if a is None or b is None:
        return None
    return a["time"] / b["time"]


def targets(results: dict, memory: dict) -> list[dict[str, Any]]:
    """One row per (target, case, measure): the measured ratio, the limit, and whether it is met."""
    rows: list[dict[str, Any]] = []

    def add(target, case, measure, value, limit, higher_is_better=False):
        if value is None:
            rows.append(dict(target=target, case=case, measure=measure, value=None, limit=limit, ok=None,
                             higher=higher_is_better))
            return
        ok = value >= limit if higher_is_better else value <= limit
        rows.append(dict(target=target, case=case, measure=measure, value=value, limit=limit, ok=ok,
                         higher=higher_is_better))

    for case in PLAIN:
        for op in ("dumps", "loads"):
            add("plain data: auto within 1.10x of pickle", case, f"{op} auto/pickle",
                _ratio(results, case, op, "anypickle", "pickle"), 1.10)
    for op in ("dumps", "loads"):
        add("60-byte dict: auto within 2x of pickle", "small_dict", f"{op} auto/pickle",
            _ratio(results, "small_dict", op, "anypickle", "pickle"), 2.0)
    for case in INSTALLED:
        for op in ("dumps", "loads"):
            add("installed classes: auto within 1.5x of pickle", case, f"{op} auto/pickle",
                _ratio(results, case, op, "anypickle", "pickle"), 1.5)
    for case in CODE:
        for op in ("dumps", "loads"):
            add("code: auto within 1.10x of cloudpickle", case, f"{op} auto/cloudpickle",
                _ratio(results, case, op, "anypickle", "cloudpickle"), 1.10)
        a, b = results.get((case, "dumps", "anypickle")), results.get((case, "dumps", "cloudpickle"))
        add("code: payload no larger than cloudpickle's", case, "payload auto/cloudpickle",
            a["payload"] / b["size"] if a and b else None, 1.0)
        # For information: the whole output, the envelope header (20-40 bytes) included.
        rows.append(dict(target="(info) whole output incl. envelope header", case=case, measure="bytes auto/cloudpickle",
                         value=a["size"] / b["size"] if a and b else None, limit=None, ok=None, info=True))
    for case in SAFE:
        add("safe=True loads within 1.5x of pickle.loads", case, "loads safe/pickle",
            _ratio(results, case, "loads", "anypickle-safe", "pickle"), 1.5)
    for case in ("array_80mb",):
        pair = [results.get((case, op, b)) for op in ("dumps", "loads") for b in ("pickle", "anypickle-buffers")]
        speedup = None
        if all(pair):
            speedup = (pair[0]["time"] + pair[2]["time"]) / (pair[1]["time"] + pair[3]["time"])
        add("buffers: dumps+loads at least 20x faster than in-band pickle", case, "pickle/buffers",
            speedup, 20.0, higher_is_better=True)
    add("memory: in-band dumps peak at most 1.1x pickle.dumps", "array_80mb", "peak auto/pickle",
        memory.get("ratio"), 1.1)
    return rows


def render_targets(results: dict, memory: dict) -> str:
    """The Markdown table of every target: measured ratio, limit, PASS or MISS."""
    out = ["| target | case | measure | measured | limit | |", "|---|---|---|---|---|---|"]
    for r in targets(results, memory):
        digits = 4 if r["measure"].startswith(("payload", "bytes")) else 2
        value = "not measured" if r["value"] is None else f"{r['value']:.{digits}f}x"
        if r.get("info"):
            out.append(f"| {r['target']} | {r['case']} | {r['measure']} | {value} | | info |")
            continue
        verdict = "n/a" if r["ok"] is None else ("PASS" if r["ok"] else "MISS")
        limit = f"{'>=' if r.get('higher') else '<='} {r['limit']:.2f}x"
        out.append(f"| {r['target']} | {r['case']} | {r['measure']} | {value} | {limit} | {verdict} |")
    return "\n".join(out) + "\n"


def render(results: dict, memory: dict) -> str:
    """The Markdown report: the target table, then time and size per case and backend."""
    out = [render_targets(results, memory).rstrip("\n")]
    backends = sorted({b for (_, _, b) in results})
    cases = list(dict.fromkeys(c for (c, _, _) in results))
    for op in ("dumps", "loads"):
        out += ["", f"**{op}**, time relative to pickle (absolute time of the fastest in brackets)", "",
                "| case | " + " | ".join(backends) + " |", "|---" * (len(backends) + 1) + "|"]
        for case in cases:
            cells = {b: results[(case, op, b)]["time"] for b in backends if (case, op, b) in results}
            if not cells:
                continue
            base = cells.get("pickle") or cells.get("cloudpickle") or min(cells.values())
            best = min(cells, key=cells.get)
            row = []
            for b in backends:
                if b not in cells:
                    row.append("-")
                    continue
                text = f"{cells[b] / base:.2f}x"
                row.append(f"**{text}** ({_fmt_time(cells[b])})" if b == best else text)
            out.append(f"| {case} | " + " | ".join(row) + " |")
    out += ["", "**payload size** (bytes)", "", "| case | " + " | ".join(backends) + " |",
            "|---" * (len(backends) + 1) + "|"]
    for case in cases:
        sizes = [results.get((case, "dumps", b), {}).get("size") for b in backends]
        out.append(f"| {case} | " + " | ".join("-" if s is None else f"{s:,}" for s in sizes) + " |")
    return "\n".join(out) + "\n"


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="the file(s) written by pytest --benchmark-json (best of runs)")
    parser.add_argument("--output", help="also write the Markdown here")
    parser.add_argument("--stat", choices=("min", "median", "mean"), default="min",
                        help="which statistic of the rounds to compare (default min)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a measured target is missed")
    args = parser.parse_args(argv)
    global STAT
    STAT = args.stat
    results, memory = load_results(*args.json)
    text = render(results, memory)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    missed = [r for r in targets(results, memory) if r["ok"] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
