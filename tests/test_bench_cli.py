"""``anypickle bench``: time and size per backend, for a module:attr or a pickle file."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

from anypickle.cli import main

HELPER = """
import math

def task(x):
    return math.sqrt(x) * 2

data = {"rows": list(range(100)), "name": "rows"}
"""


def _run(tmp_path, *args):
    (tmp_path / "benchme.py").write_text(textwrap.dedent(HELPER))
    return subprocess.run([sys.executable, "-m", "anypickle", "bench", *args, "--repeat", "1", "--min-time", "0.001"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_bench_module_attr_lists_every_backend_with_sizes(tmp_path):
    """Plain data: every backend has a dumps time, a loads time and a size; all ship it."""
    done = _run(tmp_path, "benchme:data", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["backend"]: r for r in json.loads(done.stdout)}
    assert list(rows) == ["pickle", "marshal", "cloudpickle", "dill", "auto"]
    for row in rows.values():
        assert row["error"] is None and row["size"] > 0 and row["dumps_s"] > 0 and row["loads_s"] > 0
        assert row["ships"] is True
    assert rows["auto"]["size"] == rows["pickle"]["size"] + 20  # pickle's payload plus the 20-byte header


def test_bench_local_function_shows_what_breaks(tmp_path):
    """A function of a local module: pickle dumps it by reference, which a fresh process cannot load."""
    done = _run(tmp_path, "benchme:task")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[3:]}
    assert "breaks" in lines["pickle"] and "breaks" in lines["cloudpickle"]
    assert lines["auto"].endswith("ships")
    assert " B " in lines["auto"] or "KB" in lines["auto"]


def test_bench_pickle_file(tmp_path, capsys):
    """A pickle file is loaded and benchmarked like a named object."""
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps({"a": [1, 2, 3]}))
    assert main(["bench", str(path), "--repeat", "1", "--min-time", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "a dict" in out
    for backend in ("pickle", "marshal", "cloudpickle", "dill", "auto"):
        assert any(line.startswith(backend) for line in out.splitlines())


def test_bench_bad_target_is_a_usage_error(tmp_path, capsys):
    """Neither a file nor module:attr: exit status 2 and a one-line message."""
    assert main(["bench", str(tmp_path / "missing")]) == 2
    assert "neither a file nor module:attr" in capsys.readouterr().err
