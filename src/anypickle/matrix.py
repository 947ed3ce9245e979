"""The compatibility matrix: every catalogue case through every backend, loaded where it matters.

Modes:

- ``same``: loaded back in the sender process, right after dumps (what most round-trip tests check);
- ``fresh``: loaded by another process of the same interpreter, in another folder, without the
  sender's ``__main__`` or its local modules (the mode that matters);
- ``py3.X``: the same payloads loaded by every other Python version found (pyenv, ``python3.X`` on
  ``PATH``, ``--python``).

Child processes are batched: a few *fork servers* (see :mod:`anypickle._child`, :mod:`anypickle._servers`) import the backends
once and run each case script, and each load, in its own fork, so a segfault or a hang costs one
cell. At most ``workers`` servers run at once.

The result is a JSON-able document (:func:`run_matrix`); :mod:`anypickle._matrix_render` turns it into
Markdown or CSV.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from . import _interpreters
from ._servers import Pool
from .catalogue import BACKENDS, Case, select_cases
from .errors import UsageError

__all__ = ["add_matrix_parser", "run_matrix"]

SCHEMA = 1
SKIPPED = "skipped"
CASE_ERROR = "catalogue error"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _write_case_files(case: Case, workdir: str) -> dict:
    slug = _slug(case.name)
    folder = os.path.join(workdir, "cases", slug)
    os.makedirs(folder)
    script = os.path.join(folder, "main.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(case.script)
    extra_path: list = []
    if case.helper is not None:
        with open(os.path.join(folder, "example_helper.py"), "w", encoding="utf-8") as handle:
            handle.write(case.helper)
        if case.receiver_has_helper:
            # The receiver's copy lives in another folder: it has the module, not the sender's script.
            other = os.path.join(workdir, "receiver-modules", slug)
            os.makedirs(other)
            shutil.copy(os.path.join(folder, "example_helper.py"), other)
            extra_path.append(other)
    payload_dir = os.path.join(workdir, "payloads", slug)
    os.makedirs(payload_dir)
    return {"script": script, "payload_dir": payload_dir, "extra_path": extra_path}


def _timeout(case: Case, default: float) -> float:
    return default if case.timeout is None else min(case.timeout, default)


def _default_progress(done: int, total: int, label: str) -> None:
    return None


def run_matrix(
    cases: "Iterable[Case] | None" = None,
    *,
    backends: Iterable[str] = BACKENDS,
    modes: Iterable[str] = ("same", "fresh", "other"),
    pythons: Iterable[str] = (),
    search_pythons: bool = True,
    timeout: float = 5.0,
    workers: int = 2,
    raw: bool = False,
    progress: Callable[[int, int, str], None] = _default_progress,
) -> dict:
    """Run ``cases`` (default: the whole catalogue) and return the matrix as a JSON-able document.

    ``raw=True`` runs the pickle, marshal, cloudpickle and dill columns on the bare libraries (no
    anypickle envelope, so no refusal of bytecode from another Python version); auto is unchanged.
    """
    cases = list(select_cases() if cases is None else cases)
    backends = list(backends)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise UsageError(f"unknown backend(s) {unknown}: expected some of {', '.join(BACKENDS)}")
    modes = set(modes)
    if not cases:
        raise UsageError("no catalogue case matches")
    workdir = tempfile.mkdtemp(prefix="anypickle-matrix-")
    os.makedirs(os.path.join(workdir, "logs"))
    pool = Pool(workdir)
    try:
        return _run(cases, backends, modes, list(pythons), search_pythons, timeout, workers,
                    raw, progress, workdir, pool)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _run(cases, backends, modes, pythons, search_pythons, timeout, workers, raw, progress, workdir, pool):
    here = _interpreters.same_interpreter()
    files = {case.name: _write_case_files(case, workdir) for case in cases}
    receivers: list = []  # (mode id, kind, Receiver)
    skipped: list = []
    if "fresh" in modes:
        receivers.append(("fresh", "fresh", here))
    if "other" in modes:
        found, notes = _interpreters.find_other_pythons(pythons, search=search_pythons)
        skipped += [{"mode": "other", "reason": note} for note in notes]
        if not found:
            skipped.append({"mode": "other", "reason": "no other Python (3.10 or newer) found: looked "
                            "in pyenv's versions and for python3.X on PATH; pass --python PATH"})
        copy = _interpreters.copy_package(os.path.join(workdir, "lib"))
        for python, version in found:
            try:
                receiver = _interpreters.prepare_receiver(python, version, copy)
            except RuntimeError as exc:
                skipped.append({"mode": f"py{version[0]}.{version[1]}", "reason": str(exc)})
                continue
            receivers.append((f"py{receiver.label}", "other", receiver))

    lock = threading.Lock()
    state = {"done": 0, "total": len(cases) * (1 + len(backends) * len(receivers))}

    def tick(label: str, n: int = 1) -> None:
        with lock:
            state["done"] += n
            progress(state["done"], state["total"], label)

    guard = timeout * (4 + 2 * len(backends))
    sent: dict = {}

    def send(case: Case) -> None:
        job = {"kind": "send", "script": files[case.name]["script"], "build": case.build,
               "check": case.check, "backends": backends, "timeout": _timeout(case, timeout), "raw": raw,
               "payload_dir": files[case.name]["payload_dir"]}
        answer = pool.call(here, job, guard)
        result = answer.get("result") or {"error": answer.get("error", "no answer")}
        sent[case.name] = result
        tick(case.name)

    runnable = []
    for case in cases:
        missing = [name for name in case.requires if importlib.util.find_spec(name) is None]
        if missing:  # e.g. numpy rows on a machine without numpy
            sent[case.name] = {"skip": f"the sender lacks {', '.join(missing)}"}
            tick(case.name)
        else:
            runnable.append(case)
    with ThreadPoolExecutor(max_workers=workers) as executor:
        list(executor.map(send, runnable))

    versions = {}
    for mode_id, _, receiver in receivers:
        versions[mode_id] = pool.call(receiver, {"kind": "hello"}, 60).get("result") or {}
    sender_versions = pool.call(here, {"kind": "hello"}, 60).get("result") or {}

    cells: list = []

    def add(case: Case, backend: str, mode: str, outcome: str, detail: str = "",
            written_by: "str | None" = None) -> None:
        cell = {"case": case.name, "group": case.group, "backend": backend,
                "mode": mode, "outcome": outcome, "detail": detail}
        if written_by:
            cell["written_by"] = written_by
        with lock:
            cells.append(cell)

    jobs: list = []
    for case in cases:
        result = sent[case.name]
        if "error" in result or "skip" in result:
            outcome, detail = (CASE_ERROR, result["error"]) if "error" in result else (SKIPPED, result["skip"])
            for mode_id in (["same"] if "same" in modes else []) + [m for m, _, _ in receivers]:
                for backend in backends:
                    add(case, backend, mode_id, outcome, detail)
            tick(case.name, len(backends) * len(receivers))
            continue
        for backend in backends:
            if backend in result["dumps"]:  # dumps failed: the same in every mode
                cell = result["dumps"][backend]
                for mode_id in (["same"] if "same" in modes else []) + [m for m, _, _ in receivers]:
                    add(case, backend, mode_id, cell["outcome"], cell["detail"])
                tick(case.name, len(receivers))
                continue
            written_by = result["dumped"][backend].get("written_by")
            if "same" in modes:
                cell = result["same"][backend]
                add(case, backend, "same", cell["outcome"], cell["detail"], written_by)
            for mode_id, _, receiver in receivers:
                missing = [r for r in case.requires if not versions[mode_id].get(r)]
                if missing:
                    add(case, backend, mode_id, SKIPPED, f"receiver lacks {', '.join(missing)}")
                    tick(case.name)
                    continue
                jobs.append((case, backend, mode_id, receiver, written_by, {
                    "kind": "receive", "backend": backend, "check": case.check, "raw": raw,
                    "expected": result["expected"], "timeout": _timeout(case, timeout),
                    "payload": result["dumped"][backend]["path"],
                    "extra_path": files[case.name]["extra_path"],
                }))

    def receive(item) -> None:
        case, backend, mode_id, receiver, written_by, job = item
        answer = pool.call(receiver, job, timeout * 3)
        if "result" not in answer:
            add(case, backend, mode_id, "loads fails", answer.get("error", ""), written_by)
        else:
            add(case, backend, mode_id, answer["result"]["outcome"], answer["result"]["detail"],
                written_by)
        tick(case.name)

    # Interleave interpreters so both workers stay busy with warm servers.
    jobs.sort(key=lambda item: (item[2] != "fresh", item[0].name))
    with ThreadPoolExecutor(max_workers=workers) as executor:
        list(executor.map(receive, jobs))

    mode_list = []
    if "same" in modes:
        mode_list.append({"id": "same", "kind": "same", "label": "same process",
                          "python": sender_versions.get("python")})
    for mode_id, kind, receiver in receivers:
        info = versions[mode_id]
        label = "fresh process" if kind == "fresh" else f"other Python {info.get('python', receiver.label)}"
        entry = {"id": mode_id, "kind": kind, "label": label, "python": info.get("python"),
                 "versions": info}
        if receiver.note:
            entry["note"] = receiver.note
        mode_list.append(entry)
    order = {name: i for i, name in enumerate(c.name for c in cases)}
    mode_order = {m["id"]: i for i, m in enumerate(mode_list)}
    cells.sort(key=lambda c: (mode_order[c["mode"]], order[c["case"]], backends.index(c["backend"])))
    return {
        "schema": SCHEMA,
        "generated_by": "anypickle matrix",
        "raw": raw,
        "sender": sender_versions,
        "columns": backends,
        "modes": mode_list,
        "skipped_modes": skipped,
        "cases": [{"name": c.name, "group": c.group, "note": c.note, "needs": sent[c.name].get("needs")}
                  for c in cases],
        "cells": cells,
    }


# --- command line ---------------------------------------------------------------------------------


def add_matrix_parser(subparsers) -> None:
    """Register ``anypickle matrix`` on an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "matrix", help="run the compatibility matrix on this machine",
        description="Ship every catalogue case through every backend and load it in the same process, "
                    "in a fresh process and in every other Python found; print the matrix.")
    parser.add_argument("--format", choices=("markdown", "json", "csv"), default="markdown")
    parser.add_argument("--output", "-o", metavar="PATH", help="write the matrix here instead of stdout")
    parser.add_argument("--backends", metavar="LIST", default=",".join(BACKENDS),
                        help=f"comma-separated columns (default: {','.join(BACKENDS)})")
    parser.add_argument("--python", metavar="PATH", nargs="+", default=[], action="extend",
                        help="extra receiver interpreters")
    parser.add_argument("--no-search", action="store_true",
                        help="do not look for other Pythons (only --python ones)")
    parser.add_argument("--modes", default="same,fresh,other",
                        help="comma-separated subset of same,fresh,other (default: all)")
    parser.add_argument("--cases", metavar="PATTERN",
                        help="glob(s) on case names or groups, comma-separated; a plain word matches a substring")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per load before it counts as a hang (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="parallel child servers (default 2)")
    parser.add_argument("--raw", action="store_true",
                        help="run the pickle/marshal/cloudpickle/dill columns on the bare libraries, "
                             "without anypickle's envelope (shows what they do across Python versions)")
    parser.add_argument("--list", action="store_true", help="list the catalogue cases and exit")
    parser.set_defaults(handler=run_matrix_command)


def _progress_bar():
    try:
        from tqdm import tqdm
    except ImportError:
        def counter(done: int, total: int, label: str) -> None:
            sys.stderr.write(f"\r{done}/{total} cells")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        return counter, lambda: None
    bar = tqdm(total=1, unit="cell", file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(label[:40], refresh=False)
        bar.refresh()

    return update, bar.close


def run_matrix_command(args) -> int:
    """The ``anypickle matrix`` handler; returns the exit status."""
    from ._matrix_render import render

    cases = select_cases(args.cases)
    if args.list:
        for case in cases:
            print(f"{case.group}: {case.name}")
        return 0
    if not cases:
        raise UsageError(f"no catalogue case matches {args.cases!r}")
    backends = [b.strip().lower() for b in args.backends.split(",") if b.strip()]
    modes = [m.strip().lower() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("same", "fresh", "other")]
    if bad:
        raise UsageError(f"unknown mode(s) {bad}: expected some of same, fresh, other")
    update, close = _progress_bar()
    try:
        doc = run_matrix(cases, backends=backends, modes=modes, pythons=args.python,
                         search_pythons=not args.no_search, timeout=args.timeout,
                         workers=max(1, args.workers), raw=args.raw, progress=update)
    finally:
        close()
    text = render(doc, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
