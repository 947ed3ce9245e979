"""The compatibility matrix: every catalogue case through every backend, loaded where it matters.

Modes:

- ``same``: loaded back in the sender process, right after dumps (what most round-trip tests check);
- ``fresh``: loaded by another process of the same interpreter, in another folder, without the
  sender's ``__main__`` or its local modules (the mode that matters);
- ``py3.X``: the same payloads loaded by every other Python version found (pyenv, ``python3.X`` on
  ``PATH``, ``--python``).

Child processes are batched: a few *fork servers* (see :mod:`anypickle.lab._child`, :mod:`anypickle.lab.runner`) import the backends
once and run each case script, and each load, in its own fork, so a segfault or a hang costs one
cell. At most ``workers`` servers run at once.

The result is a JSON-able document (:func:`run_matrix`); :mod:`anypickle.lab.render` turns it into
Markdown or CSV.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from . import CASE_ERROR, SKIPPED, _interpreters
from .runner import Pool, receive_case, receive_job, send_case, slug, write_case_files
from .catalogue import BACKENDS, Case, select_cases
from ..errors import UsageError

__all__ = ["add_matrix_parser", "differences", "run_matrix"]

SCHEMA = 1


def _default_progress(done: int, total: int, label: str) -> None:
    return None


BARE = ("marshal:raw", "cloudpickle:raw", "dill:raw")
"""Bare-library columns run beside the envelope columns where the receiver differs from the sender
(another Python, another backend release): what the library itself does there, with no refusal."""

VERSIONED = ("cloudpickle", "dill")


def bare(column: str) -> bool:
    """Whether ``column`` is a bare-library column (``"cloudpickle:raw"``)."""
    return column.endswith(":raw")


def parse_versions(spec: "str | dict | None") -> dict:
    """``"cloudpickle=3.1.2,3.1.3;dill=0.3.9,0.4.1"`` (or a dict of lists) to ``{library: [versions]}``."""
    if not spec:
        return {}
    if isinstance(spec, dict):
        parsed = {name: [str(v) for v in releases] for name, releases in spec.items()}
    else:
        parsed = {}
        for part in spec.replace(" ", "").split(";"):
            if not part:
                continue
            name, sep, listed = part.partition("=")
            if not sep or not listed:
                raise UsageError(f"--versions: expected LIBRARY=V1,V2[;LIBRARY=...], got {part!r}")
            parsed[name.lower()] = [v for v in listed.split(",") if v]
    for name, releases in parsed.items():
        if name not in VERSIONED:
            raise UsageError(f"--versions: {name!r} is not one of {', '.join(VERSIONED)}")
        if len(releases) < 1:
            raise UsageError(f"--versions: no version given for {name}")
    return parsed


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
    versions: "str | dict | None" = None,
    progress: Callable[[int, int, str], None] = _default_progress,
) -> dict:
    """Run ``cases`` (default: the whole catalogue) and return the matrix as a JSON-able document.

    ``raw=True`` runs the pickle, marshal, cloudpickle and dill columns on the bare libraries (no
    anypickle envelope, so no refusal of bytecode from another Python version); auto is unchanged.
    Other-Python modes also get bare-library columns (:data:`BARE`) beside the envelope ones.

    ``modes`` may include ``"versions"``: for each library of ``versions`` (``{"cloudpickle":
    ["3.1.2", "3.1.3"]}`` or ``"cloudpickle=3.1.2,3.1.3"``), every ordered pair of its releases, the
    sender with one and the receiver with the other (same Python, cached environments), on the
    columns ``<library>:raw`` (the bare library), ``<library>`` (in the envelope) and ``auto``.
    """
    cases = list(select_cases() if cases is None else cases)
    backends = list(backends)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise UsageError(f"unknown backend(s) {unknown}: expected some of {', '.join(BACKENDS)}")
    modes = set(modes)
    version_spec = parse_versions(versions)
    if "versions" in modes and not version_spec:
        raise UsageError("the versions mode needs --versions, e.g. cloudpickle=3.1.2,3.1.3")
    if not cases:
        raise UsageError("no catalogue case matches")
    workdir = tempfile.mkdtemp(prefix="anypickle-matrix-")
    pool = Pool(workdir)
    try:
        return _run(cases, backends, modes, list(pythons), search_pythons, timeout, workers,
                    raw, version_spec, progress, workdir, pool)
    finally:
        pool.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _measured_needs(sent: dict, case_name: str) -> "list | None":
    """The needs the sender measured in a case (from its first sender that reported them)."""
    for (_, name), result in sorted(sent.items(), key=lambda item: str(item[0])):
        if name == case_name and result.get("needs") is not None:
            return result["needs"]
    return None


def _run(cases, backends, modes, pythons, search_pythons, timeout, workers, raw, version_spec,
         progress, workdir, pool):
    started = time.monotonic()
    run = _Run(cases, backends, modes, timeout, workers, raw, progress, workdir, pool)
    run.plan(pythons, search_pythons, version_spec)
    run.send_all()
    run.greet()
    run.receive_all(run.receive_jobs())
    return run.document(started)


class _Run:
    """One matrix run: the senders, the receiving modes, what each sender wrote, and the cells."""

    def __init__(self, cases, backends, modes, timeout, workers, raw, progress, workdir, pool) -> None:
        self.cases, self.backends, self.modes = cases, backends, modes
        self.timeout, self.workers, self.raw, self.progress, self.pool = timeout, workers, raw, progress, pool
        self.here = _interpreters.same_interpreter()
        self.files = {case.name: write_case_files(case, workdir) for case in cases}
        self.workdir = workdir
        # One entry per receiving mode: id, kind, the Receiver, the sender's id, its columns, its label.
        self.receivers: list = []
        self.senders: dict = {"here": self.here}
        self.sender_columns: dict = {"here": list(backends)}
        self.skipped: list = []
        self.lock = threading.Lock()
        self.done = self.total = 0
        self.sent: dict = {}
        self.cells: list = []
        self.versions: dict = {}
        self.sender_versions: dict = {}

    # -- who receives ----------------------------------------------------------------------------

    def plan(self, pythons, search_pythons, version_spec) -> None:
        """The receiving modes asked for, and the senders they need."""
        if "fresh" in self.modes:
            self.receivers.append({"id": "fresh", "kind": "fresh", "receiver": self.here, "sender": "here",
                                   "columns": list(self.backends)})
        if "other" in self.modes:
            self._plan_other(pythons, search_pythons)
        if "versions" in self.modes:
            self._plan_versions(version_spec)
        self.kinds = {entry["id"]: entry for entry in self.receivers}
        used = {"here"} if self.modes & {"same", "fresh", "other"} else set()
        self.used_senders = used | {r["sender"] for r in self.receivers}
        self.total = len(self.cases) * (len(self.used_senders) + sum(len(r["columns"]) for r in self.receivers))

    def _plan_other(self, pythons, search_pythons) -> None:
        found, notes = _interpreters.find_other_pythons(pythons, search=search_pythons)
        self.skipped += [{"mode": "other", "reason": note} for note in notes]
        if not found:
            self.skipped.append({"mode": "other", "reason": "no other Python (3.10 or newer) found: looked "
                                 "in pyenv's versions and for python3.X on PATH; pass --python PATH"})
        copy = _interpreters.copy_package(os.path.join(self.workdir, "lib"))
        extra = [] if self.raw else [c for c in BARE if c.split(":")[0] in self.backends]
        self.sender_columns["here"] += [c for c in extra if c not in self.sender_columns["here"]]
        for python, version in found:
            try:
                receiver = _interpreters.prepare_receiver(python, version, copy)
            except RuntimeError as exc:
                self.skipped.append({"mode": f"py{version[0]}.{version[1]}", "reason": str(exc)})
                continue
            self.receivers.append({"id": f"py{receiver.label}", "kind": "other", "receiver": receiver,
                                   "sender": "here", "columns": list(self.backends) + extra})

    def _plan_versions(self, version_spec) -> None:
        envs: dict = {}
        for library, releases in version_spec.items():
            for release in releases:
                try:
                    self.progress(0, 1, f"installing {library} {release}")
                    envs[(library, release)] = _interpreters.prepare_versions({library: release})
                except RuntimeError as exc:
                    self.skipped.append({"mode": f"{library} {release}", "reason": str(exc)})
            columns = [f"{library}:raw", library, "auto"]
            for sent_with in releases:
                for received_with in releases:
                    if (library, sent_with) not in envs or (library, received_with) not in envs:
                        continue
                    sender_id = f"{library} {sent_with}"
                    self.senders[sender_id] = envs[(library, sent_with)]
                    self.sender_columns[sender_id] = columns
                    self.receivers.append({
                        "id": f"{library} {sent_with} -> {received_with}", "kind": "versions",
                        "receiver": envs[(library, received_with)], "sender": sender_id,
                        "columns": columns, "library": library, "sent_with": sent_with,
                        "received_with": received_with})

    # -- sending ---------------------------------------------------------------------------------

    def tick(self, label: str, n: int = 1) -> None:
        with self.lock:
            self.done += n
            self.progress(self.done, self.total, label)

    def _send(self, item) -> None:
        sender_id, case = item
        columns = self.sender_columns[sender_id]
        payload_dir = os.path.join(self.files[case.name]["payload_dir"], slug(sender_id))
        os.makedirs(payload_dir, exist_ok=True)
        files = {"script": self.files[case.name]["script"], "payload_dir": payload_dir}
        self.sent[(sender_id, case.name)] = send_case(self.pool, self.senders[sender_id], files, case, columns,
                                                      timeout=self.timeout, raw=self.raw)
        self.tick(case.name)

    def send_all(self) -> None:
        """Every case from every sender in use (rows the sender cannot build are skipped)."""
        runnable = []
        for sender_id in sorted(self.used_senders):
            for case in self.cases:
                missing = [name for name in case.requires if importlib.util.find_spec(name) is None]
                if missing:  # e.g. numpy rows on a machine without numpy
                    self.sent[(sender_id, case.name)] = {
                        "skip": f"the sender lacks {', '.join(missing)} (pip install {' '.join(missing)} "
                                f"to run this row)"}
                    self.tick(case.name)
                else:
                    runnable.append((sender_id, case))
        with ThreadPoolExecutor(max_workers=self.workers) as executor:
            list(executor.map(self._send, runnable))

    def greet(self) -> None:
        """The versions each receiver (and the sender) runs."""
        for entry in self.receivers:
            self.versions[entry["id"]] = self.pool.call(entry["receiver"], {"kind": "hello"}, 60).get("result") or {}
        self.sender_versions = self.pool.call(self.here, {"kind": "hello"}, 60).get("result") or {}

    # -- receiving -------------------------------------------------------------------------------

    def add(self, case: Case, backend: str, mode: str, outcome: str, detail: str = "",
            written_by: "str | None" = None) -> None:
        cell = {"case": case.name, "group": case.group, "backend": backend,
                "mode": mode, "outcome": outcome, "detail": detail}
        if written_by:
            cell["written_by"] = written_by
        expected = _expected(case, backend, mode, self.kinds)
        if expected is not None:
            cell["expected"] = expected
        with self.lock:
            self.cells.append(cell)

    def receive_jobs(self) -> list:
        """The cells decided without a receiver are added; the others become jobs."""
        jobs: list = []
        for case in self.cases:
            targets = ([{"id": "same", "sender": "here", "columns": self.sender_columns["here"]}]
                       if "same" in self.modes else []) + self.receivers
            for entry in targets:
                jobs += self._case_jobs(case, entry)
        # Interleave interpreters so both workers stay busy with warm servers.
        jobs.sort(key=lambda item: (item[2] != "fresh", item[2], item[0].name))
        return jobs

    def _case_jobs(self, case: Case, entry: dict) -> list:
        result = self.sent[(entry["sender"], case.name)]
        columns = [c for c in entry["columns"] if entry["id"] != "same" or not bare(c)]
        if "error" in result or "skip" in result:
            outcome, detail = (CASE_ERROR, result["error"]) if "error" in result else (SKIPPED, result["skip"])
            for backend in columns:
                self.add(case, backend, entry["id"], outcome, detail)
            if entry["id"] != "same":
                self.tick(case.name, len(columns))
            return []
        jobs = []
        for backend in columns:
            if backend in result["dumps"]:  # dumps failed: the same in every mode
                cell = result["dumps"][backend]
                self.add(case, backend, entry["id"], cell["outcome"], cell["detail"])
                if entry["id"] != "same":
                    self.tick(case.name)
                continue
            written_by = result["dumped"][backend].get("written_by")
            if entry["id"] == "same":
                cell = result["same"][backend]
                self.add(case, backend, "same", cell["outcome"], cell["detail"], written_by)
                continue
            missing = [r for r in case.requires if not self.versions[entry["id"]].get(r)]
            if missing:
                self.add(case, backend, entry["id"], SKIPPED, f"receiver lacks {', '.join(missing)}")
                self.tick(case.name)
                continue
            jobs.append((case, backend, entry["id"], entry["receiver"], written_by, receive_job(
                case, result, backend, self.files[case.name]["extra_path"], timeout=self.timeout, raw=self.raw)))
        return jobs

    def _receive(self, item) -> None:
        case, backend, mode_id, receiver, written_by, job = item
        cell = receive_case(self.pool, receiver, job, timeout=self.timeout)
        self.add(case, backend, mode_id, cell["outcome"], cell["detail"], written_by)
        self.tick(case.name)

    def receive_all(self, jobs: list) -> None:
        with ThreadPoolExecutor(max_workers=self.workers) as executor:
            list(executor.map(self._receive, jobs))

    # -- the document ----------------------------------------------------------------------------

    def mode_list(self) -> list:
        """One entry per mode, in order: id, kind, label, Python and library versions, columns."""
        modes: list = []
        if "same" in self.modes:
            modes.append({"id": "same", "kind": "same", "label": "same process",
                          "python": self.sender_versions.get("python"), "columns": list(self.backends)})
        for entry in self.receivers:
            info = self.versions[entry["id"]]
            receiver = entry["receiver"]
            if entry["kind"] == "fresh":
                label = "fresh process"
            elif entry["kind"] == "other":
                label = f"other Python {info.get('python', receiver.label)}"
            else:
                label = f"{entry['library']} {entry['sent_with']} → {entry['received_with']}"
            mode: dict = {"id": entry["id"], "kind": entry["kind"], "label": label, "python": info.get("python"),
                          "versions": info, "columns": entry["columns"]}
            for key in ("library", "sent_with", "received_with"):
                if key in entry:
                    mode[key] = entry[key]
            if receiver.note:
                mode["note"] = receiver.note
            modes.append(mode)
        return modes

    def document(self, started: float) -> dict:
        """The JSON-able matrix document, cells sorted by mode, case and column."""
        mode_list = self.mode_list()
        order = {name: i for i, name in enumerate(c.name for c in self.cases)}
        mode_order = {m["id"]: i for i, m in enumerate(mode_list)}
        all_columns = list(self.backends) + [c for c in BARE + tuple(f"{lib}:raw" for lib in VERSIONED)
                                             if any(c in m["columns"] for m in mode_list) and c not in self.backends]
        all_columns = list(dict.fromkeys(all_columns))
        self.cells.sort(key=lambda c: (mode_order[c["mode"]], order[c["case"]], all_columns.index(c["backend"])
                                       if c["backend"] in all_columns else 99, c["backend"]))
        return {
            "schema": SCHEMA,
            "generated_by": "anypickle matrix",
            "raw": self.raw,
            "sender": self.sender_versions,
            "columns": self.backends,
            "modes": mode_list,
            "skipped_modes": self.skipped,
            "cases": [{"name": c.name, "group": c.group, "note": c.note, "requires": list(c.requires),
                       "needs": _measured_needs(self.sent, c.name)}
                      for c in self.cases],
            "cells": self.cells,
            "seconds": round(time.monotonic() - started, 1),
        }


def _expected(case: Case, backend: str, mode: str, entries: dict) -> "str | None":
    """The catalogue's outcome for a cell, or None where it records none (bare columns, versions)."""
    if backend not in BACKENDS:
        return None
    if mode == "same":
        return case.expected(backend, "same")
    entry = entries.get(mode)
    if entry is None or entry["kind"] not in ("fresh", "other"):
        return None
    receiver = tuple(entry["receiver"].version[:2]) if entry["kind"] == "other" else None
    try:
        return case.expected(backend, entry["kind"], receiver)
    except (KeyError, ValueError):
        return None


def differences(doc: dict) -> list:
    """Cells whose outcome differs from the catalogue's expected one (skipped cells excepted)."""
    return [c for c in doc["cells"] if c.get("expected") not in (None, c["outcome"])
            and c["outcome"] != SKIPPED]


# --- command line ---------------------------------------------------------------------------------


DEFAULT_REPORT = "anypickle-report"


def add_matrix_parser(subparsers) -> None:
    """Register ``anypickle matrix`` on an ``argparse`` subparsers object."""
    parser = subparsers.add_parser(
        "matrix", help="run the compatibility matrix on this machine",
        description="Ship every catalogue case through every backend and load it in the same process, "
                    "in a fresh process and in every other Python found; write a report folder "
                    "(Markdown, JSON, CSV, one heatmap per mode) and print the summary.")
    parser.add_argument("--report", metavar="DIR", default=DEFAULT_REPORT,
                        help=f"the report folder (default: ./{DEFAULT_REPORT})")
    parser.add_argument("--format", choices=("markdown", "json", "csv"), default=None,
                        help="stream the whole matrix in this format (to stdout, or --output PATH) "
                             "instead of writing the report folder")
    parser.add_argument("--output", "-o", metavar="PATH",
                        help="with --format: write the stream to PATH ('-': stdout, the default)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a cell differs from the outcome the catalogue expects, "
                             "naming the cells")
    parser.add_argument("--backends", metavar="LIST", default=",".join(BACKENDS),
                        help=f"comma-separated columns (default: {','.join(BACKENDS)})")
    parser.add_argument("--python", metavar="PATH", nargs="+", default=[], action="extend",
                        help="extra receiver interpreters")
    parser.add_argument("--no-search", action="store_true",
                        help="do not look for other Pythons (only --python ones)")
    parser.add_argument("--modes", default=None,
                        help="comma-separated subset of same,fresh,other,versions (default: "
                             "same,fresh,other; versions when --versions is given)")
    parser.add_argument("--versions", metavar="SPEC",
                        help="backend-version mode: LIBRARY=V1,V2,...[;LIBRARY=...] with LIBRARY "
                             "cloudpickle or dill, e.g. 'cloudpickle=3.1.2,3.1.3'; every ordered pair "
                             "(sender with one release, receiver with another) is run")
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
    from .render import render, render_summary, write_report

    cases = select_cases(args.cases)
    if args.list:
        for case in cases:
            print(f"{case.group}: {case.name}")
        return 0
    if not cases:
        raise UsageError(f"no catalogue case matches {args.cases!r}")
    backends = [b.strip().lower() for b in args.backends.split(",") if b.strip()]
    default_modes = "versions" if args.versions else "same,fresh,other"
    modes = [m.strip().lower() for m in (args.modes or default_modes).split(",") if m.strip()]
    bad = [m for m in modes if m not in ("same", "fresh", "other", "versions")]
    if bad:
        raise UsageError(f"unknown mode(s) {bad}: expected some of same, fresh, other, versions")
    if args.versions and "versions" not in modes:
        modes.append("versions")
    update, close = _progress_bar()
    try:
        doc = run_matrix(cases, backends=backends, modes=modes, pythons=args.python,
                         search_pythons=not args.no_search, timeout=args.timeout,
                         workers=max(1, args.workers), raw=args.raw, versions=args.versions,
                         progress=update)
    finally:
        close()
    if args.output or args.format:
        text = render(doc, args.format or "markdown")
        if args.output in (None, "-"):
            sys.stdout.write(text)
        else:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
            print(f"wrote {args.output}", file=sys.stderr)
    else:
        written, note = write_report(doc, args.report)
        sys.stdout.write(render_summary(doc))
        print(f"\nreport: {os.path.abspath(args.report)}/ ({', '.join(written)}) in {doc['seconds']:.0f} s")
        if note:
            print(note)
    if args.check:
        wrong = differences(doc)
        if wrong:
            print(f"anypickle matrix --check: {len(wrong)} cell(s) differ from the catalogue:", file=sys.stderr)
            for cell in wrong:
                print(f"  {cell['mode']} / {cell['case']} / {cell['backend']}: {cell['outcome']} "
                      f"(expected {cell['expected']}) {cell['detail'][:160]}", file=sys.stderr)
            return 1
        checked = sum(1 for c in doc["cells"] if c.get("expected") is not None)
        print(f"anypickle matrix --check: all {checked} cells with an expected outcome agree", file=sys.stderr)
    return 0
