"""Heatmaps of a matrix document: cases (grouped by kind) down, serializers across, one colour per outcome.

Needs matplotlib (``pip install 'anypickle[report]'``); :func:`anypickle.lab.render.write_report`
falls back to Markdown, JSON and CSV without it.
"""

from __future__ import annotations

import os
import re

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.patches  # noqa: E402  (after choosing the backend)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from . import CLEAR_ERROR, DUMPS_FAILS, LOADS_FAILS, OK, WRONG_RESULT  # noqa: E402
from .render import column_label, display_outcome  # noqa: E402

__all__ = ["OUTCOME_COLOURS", "plot_mode", "plot_report", "plot_versions"]

# Colour-blind-safe choices where it matters (green/blue/orange/red read apart; crash darkest).
OUTCOME_COLOURS = {
    OK: ("#2e9e4f", "ok"),
    CLEAR_ERROR: ("#4a7fd4", "clear error (anypickle refused, said why)"),
    DUMPS_FAILS: ("#c9c9c9", "dumps fails"),
    LOADS_FAILS: ("#f0a030", "loads fails"),
    WRONG_RESULT: ("#d7301f", "WRONG result"),
    "crashed": ("#3b0a45", "receiver CRASHED"),
    "skipped": ("#f4f4f4", "skipped (see summary)"),
    "n/a": ("#ffffff", "n/a"),
    "catalogue error": ("#ff69b4", "catalogue error"),
}
_ORDER = list(OUTCOME_COLOURS)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _grid(rows: list, columns: list, lookup) -> list:
    return [[_ORDER.index(lookup(row, column)) if lookup(row, column) in _ORDER else _ORDER.index("n/a")
             for column in columns] for row in rows]


def _draw(path: str, title: str, rows: list, columns: list, column_names: list, lookup) -> None:
    """``rows`` are (group, case) pairs sorted by group; ``lookup(row, column)`` gives an outcome."""
    grid = _grid(rows, columns, lookup)
    used = sorted({value for line in grid for value in line})
    height = 0.19 * len(rows) + 2.6
    width = 5.2 + 0.95 * len(columns)
    fig, ax = plt.subplots(figsize=(width, height))
    cmap = ListedColormap([OUTCOME_COLOURS[name][0] for name in _ORDER])
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(_ORDER) - 0.5, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(column_names, rotation=30, ha="left", fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([case.split(": ", 1)[-1] if ": " in case else case for _, case in rows], fontsize=7)
    ax.set_xticks([x - 0.5 for x in range(1, len(columns))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    ax.grid(which="minor", color="white", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    bare = [i for i, name in enumerate(column_names) if name.endswith("(bare)")]
    if bare and bare[0] > 0:  # the envelope columns on the left, the bare libraries on the right
        ax.axvline(bare[0] - 0.5, color="black", linewidth=2.2)
    # Group bands: a rule between kinds and the kind's name on the right.
    start = 0
    for index in range(1, len(rows) + 1):
        if index == len(rows) or rows[index][0] != rows[start][0]:
            if index < len(rows):
                ax.axhline(index - 0.5, color="black", linewidth=1.4)
            ax.text(len(columns) - 0.4, (start + index - 1) / 2, rows[start][0], va="center", ha="left",
                    fontsize=8, fontweight="bold")
            start = index
    ax.set_title(title, fontsize=11, pad=10, loc="left")
    handles = [Patch(facecolor=OUTCOME_COLOURS[_ORDER[i]][0], edgecolor="#888888",
                     label=OUTCOME_COLOURS[_ORDER[i]][1]) for i in used]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.01), ncol=min(3, len(handles)),
              fontsize=8, frameon=False, title="outcome", title_fontsize=8, alignment="left")
    fig.savefig(path, dpi=90, bbox_inches="tight")  # tight: room for long case names and the legend
    plt.close(fig)


def plot_mode(doc: dict, mode: dict, path: str) -> None:
    """One mode's heatmap: every case down, that mode's columns across."""
    columns = list(mode.get("columns") or doc["columns"])
    cells = {(c["case"], c["backend"]): display_outcome(c) for c in doc["cells"] if c["mode"] == mode["id"]}
    rows = sorted({(c["group"], c["case"]) for c in doc["cells"] if c["mode"] == mode["id"]})
    info = doc.get("sender", {})
    sender = (f"{info.get('implementation', 'Python')} {info.get('python', '?')}, cloudpickle "
              f"{info.get('cloudpickle', '?')}, dill {info.get('dill', '?')}")
    where = {"fresh": "Loaded in a fresh process", "same": "Loaded back in the sending process"}.get(
        mode["kind"], f"Loaded by {mode['label']}")
    title = (f"{mode['label']}: {len(rows)} cases" if mode["kind"] == "versions"
             else f"{where}: {len(rows)} cases\nsent by {sender}")
    _draw(path, title, rows, columns, [column_label(c) for c in columns],
          lambda row, column: cells.get((row[1], column), "n/a"))


def _release_key(release: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in release.split("."))


def plot_versions(doc: dict, library: str, path: str) -> None:
    """One library's release pairs: sender releases down, receiver releases across; green where the
    skew changes no cell, red shades by how many cells it changes (the count written in the square)."""
    from .render import version_pairs

    pairs = {(p["sent_with"], p["received_with"]): p for p in version_pairs(doc) if p["library"] == library}
    releases = sorted({m["sent_with"] for m in doc["modes"] if m.get("library") == library}, key=_release_key)
    size = 1.6 + 0.75 * len(releases)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    worst = max([len(p["changed"]) for p in pairs.values()] + [1])
    for row, sent in enumerate(releases):
        for column, received in enumerate(releases):
            pair = pairs.get((sent, received))
            if sent == received:
                colour, text = "#e8e8e8", "same"
            elif pair is None:
                colour, text = "#ffffff", "?"
            elif not pair["changed"]:
                colour, text = OUTCOME_COLOURS[OK][0], "safe"
            else:
                share = len(pair["changed"]) / worst
                colour = matplotlib.colors.to_hex((0.99 - 0.15 * share, 0.75 - 0.6 * share, 0.6 - 0.5 * share))
                text = f"{len(pair['changed'])}"
            ax.add_patch(matplotlib.patches.Rectangle((column - 0.5, row - 0.5), 1, 1, facecolor=colour,
                                                      edgecolor="white", linewidth=2))
            ax.text(column, row, text, ha="center", va="center", fontsize=8,
                    color="white" if text not in ("same", "?") else "#555555")
    ax.set_xlim(-0.5, len(releases) - 0.5)
    ax.set_ylim(len(releases) - 0.5, -0.5)
    ax.set_xticks(range(len(releases)))
    ax.set_xticklabels(releases, fontsize=8)
    ax.set_yticks(range(len(releases)))
    ax.set_yticklabels(releases, fontsize=8)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel(f"receiver's {library}", fontsize=9)
    ax.set_ylabel(f"sender's {library}", fontsize=9)
    python = doc.get("sender", {}).get("python", "?")
    cases = len(doc.get("cases", []))
    ax.set_title(f"{library} release skew on Python {python}: cells the skew changes\n"
                 f"({cases} cases x bare {library}, {library} in the envelope, auto)", fontsize=10, pad=10)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def plot_report(doc: dict, folder: str) -> list:
    """Every heatmap of ``doc`` into ``folder``; returns the file names."""
    written = []
    for mode in doc["modes"]:
        if mode["kind"] == "versions":
            continue
        name = f"heatmap-{_slug(mode['id'])}.png"
        plot_mode(doc, mode, os.path.join(folder, name))
        written.append(name)
    for library in sorted({m["library"] for m in doc["modes"] if m["kind"] == "versions"}):
        name = f"heatmap-versions-{library}.png"
        plot_versions(doc, library, os.path.join(folder, name))
        written.append(name)
    return written
