"""Render a matrix document (see :func:`anypickle.lab.matrix.run_matrix`) as Markdown, JSON or CSV.

The Markdown is deterministic for a given document: rows sorted by group then case, no timestamp,
so a regenerated README diff shows behaviour changes only.
"""

from __future__ import annotations

import csv
import io
import json
import os

from . import CLEAR_ERROR, DUMPS_FAILS, LOADS_FAILS, OK, WRONG_RESULT

__all__ = ["column_label", "display_outcome", "render", "render_csv", "render_json", "render_markdown",
           "render_summary", "write_report"]

_SHORT = {
    OK: "ok",
    DUMPS_FAILS: "dumps ✗",
    LOADS_FAILS: "loads ✗",
    WRONG_RESULT: "WRONG",
    CLEAR_ERROR: "clear error",
    "skipped": "skipped",
    "n/a": "n/a",
    "crashed": "CRASH",
}

LEGEND = (
    "**ok**: loaded, and the check (call it, read its state, call its methods) agrees with the sender; "
    "**dumps ✗**: the backend could not serialize it; **loads ✗**: the bytes did not load "
    "(missing module or attribute, crash, hang); **WRONG**: it loaded but behaves differently "
    "(e.g. runs the original method instead of the patched one); **clear error**: anypickle refused "
    "with its own error (`AnyPickleError`) and said why; **CRASH**: the receiving process died (SIGSEGV, "
    "SIGABRT) while loading or running the loaded object; **skipped**: not run on this machine, for the "
    "reason given under the summary (a row needs numpy and it is not installed). Columns marked "
    "*(bare)* are the library alone, without anypickle's envelope: what it does itself on that receiver."
)


def column_label(column: str) -> str:
    """``"cloudpickle:raw"`` reads ``"cloudpickle (bare)"``."""
    return column[:-4] + " (bare)" if column.endswith(":raw") else column


def display_outcome(cell: dict) -> str:
    """The outcome, with a receiver's death by a signal told apart from other load failures."""
    if cell["outcome"] in (LOADS_FAILS, WRONG_RESULT) and "crashed with signal" in cell.get("detail", ""):
        return "crashed"
    return cell["outcome"]


def _mode_columns(doc: dict, mode: dict) -> list:
    return list(mode.get("columns") or doc["columns"])


def _all_columns(doc: dict) -> list:
    """The columns of every mode, in order: the envelope columns first, then the bare ones."""
    columns: list = []
    for mode in doc["modes"] or [{}]:
        columns += [c for c in _mode_columns(doc, mode) if c not in columns]
    return sorted(columns, key=lambda c: (c.endswith(":raw"), columns.index(c)))


def render(doc: dict, fmt: str) -> str:
    """``fmt`` is ``"markdown"``, ``"json"`` or ``"csv"``."""
    return {"markdown": render_markdown, "json": render_json, "csv": render_csv}[fmt](doc)


def render_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def render_csv(doc: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = ["mode", "group", "case", "backend", "outcome", "detail"]
    if any("expected" in cell for cell in doc["cells"]):
        columns.insert(5, "expected")
    writer.writerow(columns)
    for cell in _sorted_cells(doc):
        writer.writerow([cell.get(c, "") if c != "expected" else cell.get(c) or "" for c in columns])
    return out.getvalue()


def _sorted_cells(doc: dict) -> list:
    mode_order = {m["id"]: i for i, m in enumerate(doc["modes"])}
    columns = _all_columns(doc)
    return sorted(doc["cells"], key=lambda c: (mode_order.get(c["mode"], 99), c["group"], c["case"],
                                                columns.index(c["backend"]) if c["backend"] in columns else 99))


def _versions_line(doc: dict) -> str:
    sender = doc.get("sender", {})
    parts = [f"{sender.get('implementation', 'Python')} {sender.get('python', '?')}"]
    for name in ("cloudpickle", "dill", "anypickle", "numpy"):
        if sender.get(name):
            parts.append(f"{name} {sender[name]}")
    parts.append(f"pickle {sender.get('pickle', '?')}, marshal {sender.get('marshal', '?')}")
    return ", ".join(parts)


def _ordered_modes(doc: dict) -> list:
    rank = {"fresh": 0, "same": 1, "other": 2, "versions": 3}
    return sorted(doc["modes"], key=lambda m: rank.get(m["kind"], 4))  # stable: pairs keep their order


def _count(cells: list) -> str:
    run = [c for c in cells if c["outcome"] != "skipped"]
    if not run:
        return "—"
    shown = [display_outcome(c) for c in run]
    failed = shown.count(DUMPS_FAILS) + shown.count(LOADS_FAILS)
    extra = [f"{n} {word}" for n, word in
             ((shown.count(WRONG_RESULT), "wrong"), (shown.count("crashed"), "crashed"), (failed, "failed"),
              (shown.count(CLEAR_ERROR), "clear")) if n]
    return f"{shown.count('ok')}/{len(run)}" + (f" ({', '.join(extra)})" if extra else "")


SUMMARY_NOTE = (
    "Cells ok out of the cells run; in parentheses, how many loaded but behaved differently (wrong), "
    "killed the receiving process (crashed), failed in dumps or loads with the library's own error "
    "(failed), or were refused by anypickle with a clear error (clear)."
)


def _summary_lines(doc: dict) -> list:
    columns = _all_columns(doc)
    by_mode: dict = {}
    for cell in doc["cells"]:
        by_mode.setdefault(cell["mode"], []).append(cell)
    lines = ["## Summary", "",
             SUMMARY_NOTE,
             "", "| mode | " + " | ".join(column_label(c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for mode in _ordered_modes(doc):
        mine = by_mode.get(mode["id"], [])
        counts = [_count([c for c in mine if c["backend"] == column]) for column in columns]
        lines.append(f"| {mode['label']} | " + " | ".join(counts) + " |")
    lines.append("")
    skipped: dict = {}
    for cell in doc["cells"]:
        if cell["outcome"] == "skipped":
            skipped.setdefault(cell["detail"], set()).add(cell["case"])
    for reason, names in sorted(skipped.items()):
        lines.append(f"Skipped, not counted: {len(names)} row(s) ({', '.join(sorted(_escape(n) for n in names))}): "
                     f"{reason}.")
        lines.append("")
    return lines


def render_summary(doc: dict) -> str:
    """The summary table alone (what ``anypickle matrix`` prints), with the sender's versions."""
    return "\n".join([f"Sender: {_versions_line(doc)}.", ""] + _summary_lines(doc))


def render_markdown(doc: dict) -> str:
    columns_line = (
        "Columns pickle, marshal, cloudpickle, dill: the bare libraries (no anypickle envelope); "
        "auto: `anypickle.dumps(obj)`." if doc.get("raw") else
        "Columns pickle, marshal, cloudpickle, dill: `anypickle.dumps(obj, backend=...)` (the library "
        "inside anypickle's envelope); auto: `anypickle.dumps(obj)`; *(bare)*: the library alone.")
    lines = ["# Compatibility matrix", "",
             f"Sender: {_versions_line(doc)}.", "", columns_line, "", LEGEND, ""]
    lines += _summary_lines(doc)
    by_mode: dict = {}
    for cell in doc["cells"]:
        by_mode.setdefault(cell["mode"], {})[(cell["group"], cell["case"], cell["backend"])] = cell
    rows = sorted({(c["group"], c["case"]) for c in doc["cells"]})
    versions = [m for m in doc["modes"] if m["kind"] == "versions"]
    if versions:
        lines += _versions_lines(doc, versions, by_mode)
    for mode in _ordered_modes(doc):
        if mode["kind"] == "versions":
            continue
        columns = _mode_columns(doc, mode)
        cells = by_mode.get(mode["id"], {})
        suffix = f" (Python {mode['python']})" if mode.get("python") and mode["kind"] != "other" else ""
        lines.append(f"## {mode['label']}{suffix}")
        lines.append("")
        if mode.get("note"):
            lines += [f"Note: {mode['note']}.", ""]
        lines.append("| group | case | " + " | ".join(column_label(c) for c in columns) + " |")
        lines.append("|---|---|" + "---|" * len(columns))
        for group, case in rows:
            marks = []
            for backend in columns:
                cell = cells.get((group, case, backend))
                outcome = display_outcome(cell) if cell else ""
                mark = _SHORT.get(outcome, outcome)
                if cell and cell.get("expected") not in (None, cell["outcome"]) and cell["outcome"] != "skipped":
                    mark += f" (expected {_SHORT.get(cell['expected'], cell['expected'])})"
                marks.append(mark)
            lines.append(f"| {group} | {_escape(case)} | " + " | ".join(marks) + " |")
        lines.append("")
    lines += _render_extra_cells(doc.get("extra_cells", []))
    if doc.get("skipped_modes"):
        lines.append("## Modes not run")
        lines.append("")
        for skip in sorted(doc["skipped_modes"], key=lambda s: (s["mode"], s["reason"])):
            lines.append(f"- {skip['mode']}: {skip['reason']}")
        lines.append("")
    notes = sorted((c["group"], c["name"], c["note"]) for c in doc.get("cases", []) if c.get("note"))
    if notes:
        lines.append("## Notes on rows")
        lines.append("")
        for group, name, note in notes:
            lines.append(f"- {_escape(name)}: {note}")
        lines.append("")
    return "\n".join(lines)


def version_pairs(doc: dict) -> list:
    """Per skewed pair (sender release != receiver release): the cells that differ from the baseline.

    The baseline of a pair is the sender's release on both sides (same case, same column), so a
    difference is what the skew alone changes. Returns dicts with ``mode``, ``library``,
    ``sent_with``, ``received_with`` and ``changed`` (a list of ``(case, column, baseline, outcome, detail)``).
    """
    by_mode: dict = {}
    for cell in doc["cells"]:
        by_mode.setdefault(cell["mode"], {})[(cell["case"], cell["backend"])] = cell
    modes = [m for m in doc["modes"] if m["kind"] == "versions"]
    baseline = {(m["library"], m["sent_with"]): m["id"] for m in modes if m["sent_with"] == m["received_with"]}
    pairs = []
    for mode in modes:
        if mode["sent_with"] == mode["received_with"]:
            continue
        base = by_mode.get(baseline.get((mode["library"], mode["sent_with"]), ""), {})
        changed = []
        for key, cell in sorted(by_mode.get(mode["id"], {}).items()):
            before = base.get(key)
            if before is None or cell["outcome"] == "skipped":
                continue
            if display_outcome(cell) != display_outcome(before):
                changed.append((key[0], key[1], display_outcome(before), display_outcome(cell), cell["detail"]))
        pairs.append({"mode": mode["id"], "library": mode["library"], "sent_with": mode["sent_with"],
                      "received_with": mode["received_with"], "changed": changed,
                      "has_baseline": bool(base)})
    return pairs


def _versions_lines(doc: dict, modes: list, by_mode: dict) -> list:
    lines = ["## Backend versions: what a skewed receiver changes", "",
             "Each row sends with one release and loads with another (same Python, separate "
             "environments). A skewed pair is *safe* when every cell is what the sender's release "
             "gives on both sides.", ""]
    pairs = version_pairs(doc)
    for library in sorted({p["library"] for p in pairs}):
        mine = [p for p in pairs if p["library"] == library]
        lines += [f"### {library}", "", "| sent with → loaded with | cells changed by the skew | verdict |",
                  "|---|---|---|"]
        for pair in mine:
            changed = pair["changed"]
            verdict = "no baseline" if not pair["has_baseline"] else ("safe" if not changed else "UNSAFE")
            what = ", ".join(sorted({f"{column_label(c[1])}: {c[2]} → {c[3]}" for c in changed}))
            count = f"{len(changed)}" + (f" ({what})" if what else "")
            lines.append(f"| {pair['sent_with']} → {pair['received_with']} | {_escape(count)} | {verdict} |")
        lines.append("")
        for pair in mine:
            if pair["changed"]:
                lines += [f"{library} {pair['sent_with']} → {pair['received_with']}:", ""]
                for case, column, before, after, detail in pair["changed"]:
                    lines.append(f"- {_escape(case)} / {column_label(column)}: {before} → {after}"
                                 + (f" ({_escape(detail[:140])})" if detail else ""))
                lines.append("")
    return lines


def write_report(doc: dict, folder: str) -> "tuple[list, str]":
    """Write matrix.md, matrix.json, matrix.csv and the heatmaps into ``folder``.

    Returns the names written and a note (empty, or why there is no picture).
    """
    os.makedirs(folder, exist_ok=True)
    written = []
    for name, text in (("matrix.md", render_markdown(doc)), ("matrix.json", render_json(doc)),
                       ("matrix.csv", render_csv(doc))):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
            handle.write(text)
        written.append(name)
    try:
        from .plot import plot_report
    except ImportError as exc:  # matplotlib is missing
        if not (exc.name or "matplotlib").startswith("matplotlib"):
            raise
        return written, ("no heatmap: matplotlib is not installed "
                         "(pip install 'anypickle[report]' for the pictures)")
    written += plot_report(doc, folder)
    return written, ""


def _render_extra_cells(cells: list) -> list:
    """Cells other tests recorded in their own shape: one table per (mode, column), rows = cases.

    A cell with ``sender`` and ``receiver`` (e.g. the portable mode across Python versions) gets one
    table column per ``sender -> receiver`` pair; any other cell gets a single ``outcome`` column.
    """
    lines: list = []
    tables: dict = {}
    for cell in cells:
        if "case" not in cell or "outcome" not in cell:
            continue
        key = (str(cell.get("mode", "other tests")), str(cell.get("column", "")))
        pair = f"{cell['sender']} → {cell['receiver']}" if "sender" in cell and "receiver" in cell else "outcome"
        tables.setdefault(key, {}).setdefault(str(cell["case"]), {})[pair] = cell["outcome"]
    for (mode, column), rows in sorted(tables.items()):
        pairs = sorted({p for row in rows.values() for p in row})
        lines += [f"## {mode}" + (f": {column}" if column else ""), ""]
        lines.append("| case | " + " | ".join(pairs) + " |")
        lines.append("|---|" + "---|" * len(pairs))
        for case in sorted(rows):
            lines.append(f"| {_escape(case)} | " + " | ".join(
                _SHORT.get(rows[case].get(p, ""), rows[case].get(p, "")) for p in pairs) + " |")
        lines.append("")
    return lines


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("__", "\\_\\_")
