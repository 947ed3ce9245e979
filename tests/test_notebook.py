"""notebooks/benchmarks.ipynb runs headless on the small setting and draws its plots."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "benchmarks.ipynb"


def test_benchmarks_notebook_runs_on_the_small_setting(tmp_path, monkeypatch):
    """Every cell executes without error; the time/size plot and the compatibility plot are written."""
    monkeypatch.setenv("ANYPICKLE_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("ANYPICKLE_NOTEBOOK_OUT", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    for name in ("benchmarks.png", "benchmarks-compat.png"):
        plot = tmp_path / name
        assert plot.exists() and plot.stat().st_size > 10_000, name
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "measurements of 13 cases" in outputs
    assert "auto on code: at worst" in outputs
