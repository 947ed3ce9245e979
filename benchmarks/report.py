"""Read a pytest-benchmark JSON and write the ratio table against the performance targets.

    pytest benchmarks --benchmark-json=bench.json
    python benchmarks/report.py bench.json --output docs/benchmarks.md

Several runs (``bench.json bench-2.json ...``) combine ratio by ratio: each ratio is computed within
one run, and the report shows the median over runs.

Every ratio compares two backends measured in the same run, never a bare time. The suites of issue 16
(import time, cold function loads, the safe-loading corpus, scaling, loky, Dask) compute their ratios
within their own run and store them as rows in ``extra_info["targets"]`` (see ``benchmarks/_targets.py``);
this report lists them after the serializer targets, PASS/MISS the same way. Times are the
minimum over rounds: on a shared machine the noise (other processes, the allocator handing out fresh
pages or reused ones for 16-80 MB buffers) only ever adds time, so the minimum is the best estimate
of what each call costs; ``--stat median`` reports medians instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, Tuple

STAT = "min"
PLAIN = ("ints_100k", "strings_10k", "bytes_16mb", "array_8mb", "array_80mb")
INSTALLED = ("datetime_1k", "fraction_1k")
CODE = ("module_function", "lambda", "closure", "lambdas_1k", "main_instances_1k")
SAFE = ("small_dict", "ints_100k", "strings_10k", "datetime_1k")


Run = Tuple[Dict[Tuple[str, str, str], Dict[str, Any]], Dict[str, Any]]


def load_run(path: str | Path) -> Run:
    """``{(case, op, backend): {"time": s, "size": bytes, "payload": bytes}}`` and the memory record."""
    return run_from(json.loads(Path(path).read_text()))


def run_from(doc: dict) -> Run:
    """:func:`load_run` on a pytest-benchmark document already read (e.g. from ``docs/results/``)."""
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    memory: dict[str, Any] = {}
    extra = extra_rows(doc)
    for bench in doc["benchmarks"]:
        info = bench.get("extra_info", {})
        if info.get("op") == "peak-memory":
            memory = info
        elif "case" in info and "op" in info:
            results[(info["case"], info["op"], info["backend"])] = {
                "time": bench["stats"][STAT], "size": info.get("size"),
                "payload": info.get("payload_size", info.get("size"))}
    if extra:
        memory = {**memory, "targets": extra}
    return results, memory


def extra_rows(doc: dict) -> list[dict[str, Any]]:
    """The target rows the issue-16 suites stored in ``extra_info["targets"]``, in run order."""
    rows = []
    for bench in doc["benchmarks"]:
        for r in bench.get("extra_info", {}).get("targets", []):
            r = dict(r)
            if not r.get("info") and r["value"] is not None:
                r["ok"] = r["value"] <= r["limit"]
            else:
                r.setdefault("ok", None)
            rows.append(r)
    return rows


def load_results(*paths: str | Path) -> Run:
    """One run's results, or several runs merged benchmark by benchmark (best time): for plots."""
    return load_results_from([load_run(p) for p in paths])


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
    for case in PLAIN:  # issue 16 tightens dumps of plain data
        add("plain data dumps: auto within 1.05x of pickle", case, "dumps auto/pickle",
            _ratio(results, case, "dumps", "anypickle", "pickle"), 1.05)
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
    if results or memory.get("ratio") is not None:
        add("memory: in-band dumps peak at most 1.1x pickle.dumps", "array_80mb", "peak auto/pickle",
            memory.get("ratio"), 1.1)
    if not results:  # a run of the issue-16 suites only: none of the serializer rows above apply
        rows = [r for r in rows if r["value"] is not None]
    return rows + list(memory.get("targets", []))


def combined_targets(runs: list[Run]) -> list[dict[str, Any]]:
    """The target rows of several runs: each ratio is the median of the per-run ratios.

    Each ratio compares two backends of the same run; a busy moment on a shared machine spoils
    one run's ratio, and the median of three drops it.
    """
    per_run = [targets(results, memory) for results, memory in runs]
    return combine_rows(per_run)


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["target"], row["case"], row["measure"]


def combine_rows(per_run: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of several runs matched by (target, case, measure); each value the median over the runs."""
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rows_of_run in per_run:
        for r in rows_of_run:
            by_key.setdefault(_key(r), []).append(r)
    rows = []
    for versions in by_key.values():
        row = dict(versions[0])
        values = sorted(v["value"] for v in versions if v["value"] is not None)
        row["value"] = statistics.median(values) if values else None
        if row["value"] is not None and not row.get("info"):
            row["ok"] = row["value"] >= row["limit"] if row.get("higher") else row["value"] <= row["limit"]
        rows.append(row)
    return rows


def render_targets(runs: list[Run]) -> str:
    """The Markdown table of every target: measured ratio, limit, PASS or MISS."""
    return render_rows(combined_targets(runs))


def render_rows(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of target rows (from :func:`combined_targets` or :func:`combine_rows`)."""
    out = ["| target | case | measure | measured | limit | |", "|---|---|---|---|---|---|"]
    for r in rows:
        digits = 4 if r["measure"].startswith(("payload", "bytes")) else 2
        unit = r.get("unit", "x")
        value = "not measured" if r["value"] is None else f"{r['value']:.{digits}f}{unit}"
        case = r["case"] + (f" ({r['note']})" if r.get("note") else "")
        if r.get("info"):
            out.append(f"| {r['target']} | {case} | {r['measure']} | {value} | | info |")
            continue
        verdict = "n/a" if r["ok"] is None else ("PASS" if r["ok"] else "MISS")
        limit = f"{'>=' if r.get('higher') else '<='} {r['limit']:.2f}{unit}"
        out.append(f"| {r['target']} | {case} | {r['measure']} | {value} | {limit} | {verdict} |")
    return "\n".join(out) + "\n"


def render(runs: list[Run]) -> str:
    """The Markdown report: the target table, then time and size per case and backend."""
    out = [render_targets(runs).rstrip("\n")]
    best, _ = load_results_from(runs)
    if not best:  # only the issue-16 suites ran: their rows are the whole report
        return "\n".join(out) + "\n"
    backends = sorted({b for (_, _, b) in best})
    cases = list(dict.fromkeys(c for (c, _, _) in best))
    note = " (median over runs)" if len(runs) > 1 else ""
    for op in ("dumps", "loads"):
        out += ["", f"**{op}**, time relative to pickle{note} (absolute time of the fastest in brackets)", "",
                "| case | " + " | ".join(backends) + " |", "|---" * (len(backends) + 1) + "|"]
        for case in cases:
            cells = {b: best[(case, op, b)]["time"] for b in backends if (case, op, b) in best}
            if not cells:
                continue
            ref = "pickle" if "pickle" in cells else "cloudpickle" if "cloudpickle" in cells else min(cells, key=cells.get)
            fastest = min(cells, key=cells.get)
            row = []
            for b in backends:
                if b not in cells:
                    row.append("-")
                    continue
                ratios = sorted(r[(case, op, b)]["time"] / r[(case, op, ref)]["time"] for r, _ in runs
                                if (case, op, b) in r and (case, op, ref) in r)
                text = f"{statistics.median(ratios):.2f}x"
                row.append(f"**{text}** ({_fmt_time(cells[b])})" if b == fastest else text)
            out.append(f"| {case} | " + " | ".join(row) + " |")
    out += ["", "**payload size** (bytes)", "", "| case | " + " | ".join(backends) + " |",
            "|---" * (len(backends) + 1) + "|"]
    for case in cases:
        sizes = [best.get((case, "dumps", b), {}).get("size") for b in backends]
        out.append(f"| {case} | " + " | ".join("-" if s is None else f"{s:,}" for s in sizes) + " |")
    return "\n".join(out) + "\n"


def load_results_from(runs: list[Run]) -> Run:
    """Runs already loaded, merged benchmark by benchmark (best time)."""
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    memory: dict[str, Any] = {}
    for run, mem in runs:
        for key, value in run.items():
            if key not in results or value["time"] < results[key]["time"]:
                results[key] = value
        memory = mem or memory
    return results, memory


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="the file(s) written by pytest --benchmark-json (median of the runs' ratios)")
    parser.add_argument("--output", help="also write the Markdown here")
    parser.add_argument("--stat", choices=("min", "median", "mean"), default="min",
                        help="which statistic of the rounds to compare (default min)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a measured target is missed")
    args = parser.parse_args(argv)
    global STAT
    STAT = args.stat
    runs = [load_run(p) for p in args.json]
    text = render(runs)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    missed = [r for r in combined_targets(runs) if r["ok"] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
