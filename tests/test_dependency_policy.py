"""The dependency policy: bounded ranges for the libraries whose internals anypickle uses, tested at both ends.

CI runs the whole suite with the newest releases the ranges allow, then the focused subset of
``.ci/run`` with the oldest versions, pinned in ``.ci/oldest.txt``: these tests keep that file equal
to the lower bounds of pyproject.toml, and the installed versions inside the ranges.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import anypickle

ROOT = Path(__file__).resolve().parent.parent
# Libraries whose private functions or classes anypickle uses: each needs an upper bound.
INTERNALS_USED = ("cloudpickle", "dill")


def _dependencies() -> dict[str, Requirement]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    assert block is not None, "pyproject.toml has no [project] dependencies list"
    return {r.name: r for r in (Requirement(s) for s in re.findall(r'"([^"]+)"', block.group(1)))}


def _bound(req: Requirement, op: str) -> Version:
    (spec,) = [s for s in req.specifier if s.operator == op]
    return Version(spec.version)


@pytest.mark.parametrize("name", INTERNALS_USED)
def test_ranges_are_bounded_on_both_sides(name):
    """An untested minor release (cloudpickle) or 0.x release (dill) cannot reach users silently."""
    req = _dependencies()[name]
    low, high = _bound(req, ">="), _bound(req, "<")
    assert low < high
    assert (high.major, high.minor) <= (low.major, low.minor + 1), f"{name}: the range {req.specifier} spans minors"


def test_oldest_pins_are_the_declared_lower_bounds():
    """.ci/oldest.txt, which CI's second run installs, pins exactly each range's lower bound."""
    pins = dict(line.split("==") for line in (ROOT / ".ci" / "oldest.txt").read_text().split())
    assert pins == {name: str(_bound(_dependencies()[name], ">=")) for name in INTERNALS_USED}


@pytest.mark.parametrize("name", INTERNALS_USED)
def test_installed_version_is_inside_the_declared_range(name):
    """The run tests what the range allows (a stale environment would test something users cannot get)."""
    assert _dependencies()[name].specifier.contains(importlib.metadata.version(name), prereleases=True)


def test_ci_runs_both_ends_of_the_ranges():
    """.ci/run installs the oldest pins into a second environment and runs the backend tests there."""
    run = (ROOT / ".ci" / "run").read_text()
    assert "-c .ci/oldest.txt" in run and "ANYPICKLE_OLDEST_TESTS" in run


def test_version_option_names_every_version_a_bug_report_needs():
    """`anypickle --version`: anypickle, cloudpickle, dill, Python, and whether the C helper is built."""
    import cloudpickle
    import dill

    out = subprocess.run([sys.executable, "-m", "anypickle.cli", "--version"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines())
    assert fields["anypickle"] == anypickle.__version__
    assert fields["cloudpickle"] == cloudpickle.__version__ and fields["dill"] == dill.__version__
    assert fields["python"].startswith("CPython " + ".".join(map(str, sys.version_info[:3])))
    try:
        importlib.import_module("anypickle.safe._opwalk")
    except ImportError:
        assert fields["_opwalk"].startswith("NOT built")
    else:
        assert fields["_opwalk"] == "built"


def test_license_is_an_spdx_expression():
    """PEP 639: `license = "MIT"`, not the deprecated table that makes `pip -v` warn."""
    assert re.search(r'^license = "MIT"$', (ROOT / "pyproject.toml").read_text(), re.M)
