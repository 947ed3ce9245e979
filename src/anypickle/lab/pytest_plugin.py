"""pytest plugin: collect the matrix cells that tests asserted and write them out at session end.

A matrix test records its cell with ``record_property("matrix_cell", cell)`` *before* asserting; the
plugin reads the cells from the test reports, so a cell is published only if a test looked at it. At
session end it writes ``compat-matrix.json`` (Python and backend versions included) and renders
``compat-matrix.md`` from that JSON file. Register it from ``tests/conftest.py``::

    pytest_plugins = ["anypickle.lab.pytest_plugin"]

``--matrix-dir DIR`` chooses the output folder (default: the rootdir); ``--no-matrix-files`` writes
nothing.
"""

from __future__ import annotations

import json
import os

import pytest

from .render import render_markdown

__all__ = ["set_matrix_run"]

_RUN = pytest.StashKey[dict]()


def pytest_addoption(parser) -> None:
    group = parser.getgroup("anypickle matrix")
    group.addoption("--matrix-dir", default=None,
                    help="where to write compat-matrix.json and compat-matrix.md (default: rootdir)")
    group.addoption("--no-matrix-files", action="store_true",
                    help="do not write the compatibility matrix files")


def pytest_configure(config) -> None:
    config.pluginmanager.register(_Collector(config), "anypickle-matrix-collector")


def set_matrix_run(config, doc: dict) -> None:
    """Give the plugin the run's metadata (versions, modes, skips); cells come from test reports."""
    run = {key: value for key, value in doc.items() if key != "cells"}
    # Tests assert the envelope columns; the bare-library ones are measured, not recorded here.
    run["modes"] = [{**mode, "columns": [c for c in mode.get("columns", doc["columns"]) if not c.endswith(":raw")]}
                    for mode in doc.get("modes", [])]
    config.stash[_RUN] = run


class _Collector:
    """Cells recorded by tests in this session."""

    def __init__(self, config) -> None:
        self.config = config
        self.cells: list = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == "matrix_cell":
                cell = dict(value)
                cell["test_outcome"] = report.outcome
                self.cells.append(cell)

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        config = self.config
        run = config.stash.get(_RUN, None)
        if not self.cells or run is None or config.getoption("--no-matrix-files"):
            return
        doc = dict(run)
        doc["generated_by"] = "pytest"
        # Cells of the catalogue matrix have case/group/backend/mode; other tests may record cells of
        # their own shape (e.g. the portable mode's sender -> receiver pairs): kept apart, as extras.
        full = [c for c in self.cells if all(k in c for k in ("case", "group", "backend", "mode"))]
        extra = [c for c in self.cells if c not in full]
        doc["cells"] = sorted(full, key=lambda c: (c["mode"], c["group"], c["case"], c["backend"]))
        if extra:
            doc["extra_cells"] = sorted(extra, key=lambda c: json.dumps(c, sort_keys=True))
        expected_cells = len(doc.get("cases", [])) * len(doc.get("columns", [])) * len(doc.get("modes", []))
        doc["partial"] = len(full) < expected_cells
        folder = config.getoption("--matrix-dir") or str(config.rootpath)
        os.makedirs(folder, exist_ok=True)
        json_path = os.path.join(folder, "compat-matrix.json")
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2, sort_keys=True)
            handle.write("\n")
        with open(json_path, encoding="utf-8") as handle:  # the Markdown renders the JSON file
            markdown = render_markdown(json.load(handle))
        with open(os.path.join(folder, "compat-matrix.md"), "w", encoding="utf-8") as handle:
            handle.write(markdown)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"anypickle: wrote {json_path} and compat-matrix.md ({len(self.cells)} cells)")
