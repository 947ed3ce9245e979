"""Render a matrix document (see :func:`anypickle.matrix.run_matrix`) as Markdown, JSON or CSV.

The Markdown is deterministic for a given document: rows sorted by group then case, no timestamp,
so a regenerated README diff shows behaviour changes only.
"""

from __future__ import annotations

import csv
import io
import json

__all__ = ["render", "render_csv", "render_json", "render_markdown"]

_SHORT = {
    "ok": "ok",
    "dumps fails": "dumps ✗",
    "loads fails": "loads ✗",
    "wrong result": "WRONG",
    "clear error": "clear error",
    "skipped": "skipped",
    "n/a": "n/a",
}

LEGEND = (
    "**ok**: loaded, and the check (call it, read its state, call its methods) agrees with the sender; "
    "**dumps ✗**: the backend could not serialize it; **loads ✗**: the bytes did not load "
    "(missing module or attribute, crash, hang); **WRONG**: it loaded but behaves differently "
    "(e.g. runs the original method instead of the patched one); **clear error**: anypickle refused "
    "with its own error (`AnyPickleError`) and said why."
)


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
    columns = doc["columns"]
    return sorted(doc["cells"], key=lambda c: (mode_order.get(c["mode"], 99), c["group"], c["case"],
                                                columns.index(c["backend"])))


def _versions_line(doc: dict) -> str:
    sender = doc.get("sender", {})
    parts = [f"{sender.get('implementation', 'Python')} {sender.get('python', '?')}"]
    for name in ("cloudpickle", "dill", "anypickle", "numpy"):
        if sender.get(name):
            parts.append(f"{name} {sender[name]}")
    parts.append(f"pickle {sender.get('pickle', '?')}, marshal {sender.get('marshal', '?')}")
    return ", ".join(parts)


def render_markdown(doc: dict) -> str:
    columns = doc["columns"]
    columns_line = (
        "Columns pickle, marshal, cloudpickle, dill: the bare libraries (no anypickle envelope); "
        "auto: `anypickle.dumps(obj)`." if doc.get("raw") else
        "Columns pickle, marshal, cloudpickle, dill: `anypickle.dumps(obj, backend=...)` (the library "
        "inside anypickle's envelope); auto: `anypickle.dumps(obj)`.")
    lines = ["# Compatibility matrix", "",
             f"Sender: {_versions_line(doc)}.", "", columns_line, "", LEGEND, ""]
    by_mode: dict = {}
    for cell in doc["cells"]:
        by_mode.setdefault(cell["mode"], {})[(cell["group"], cell["case"], cell["backend"])] = cell
    rows = sorted({(c["group"], c["case"]) for c in doc["cells"]})
    ordered = sorted(doc["modes"], key=lambda m: {"fresh": 0, "same": 1}.get(m["kind"], 2))
    lines.append("## Summary")
    lines.append("")
    lines.append("Cells ok out of the cells run; in parentheses, how many anypickle refused with a clear error.")
    lines.append("")
    lines.append("| mode | " + " | ".join(columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    for mode in ordered:
        cells = by_mode.get(mode["id"], {})
        counts = []
        for backend in columns:
            mine = [c for (g, n, b), c in cells.items() if b == backend and c["outcome"] != "skipped"]
            ok = sum(c["outcome"] == "ok" for c in mine)
            clear = sum(c["outcome"] == "clear error" for c in mine)
            counts.append(f"{ok}/{len(mine)}" + (f" ({clear} clear)" if clear else ""))
        lines.append(f"| {mode['label']} | " + " | ".join(counts) + " |")
    lines.append("")
    for mode in ordered:
        cells = by_mode.get(mode["id"], {})
        suffix = f" (Python {mode['python']})" if mode.get("python") and mode["kind"] != "other" else ""
        lines.append(f"## {mode['label']}{suffix}")
        lines.append("")
        if mode.get("note"):
            lines += [f"Note: {mode['note']}.", ""]
        lines.append("| group | case | " + " | ".join(columns) + " |")
        lines.append("|---|---|" + "---|" * len(columns))
        for group, case in rows:
            marks = []
            for backend in columns:
                cell = cells.get((group, case, backend))
                mark = _SHORT.get(cell["outcome"], cell["outcome"]) if cell else ""
                if cell and cell.get("expected") not in (None, cell["outcome"]):
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
