"""notebooks/benchmarks.ipynb runs headless from the README's one-line command, small setting, and
writes its plots under build/notebook without touching a tracked file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
TRACKED_OUTPUTS = ("docs/benchmarks.png", "docs/benchmarks-compat.png")  # and docs/benchmarks-scaling.png once committed


def _readme_command() -> list:
    """The nbconvert part of the README's notebook line, run with this interpreter's jupyter."""
    readme = (ROOT / "README.md").read_text()
    line = next(l for l in readme.splitlines() if "jupyter nbconvert" in l and "ANYPICKLE_NOTEBOOK_SMALL=1" in l)
    command = line.strip("`").split("&& ", 1)[1]
    assert command.startswith("ANYPICKLE_NOTEBOOK_SMALL=1 .venv/bin/jupyter nbconvert "), command
    words = shlex.split(command)[1:]
    return [sys.executable, "-m", "jupyter", *words[1:]]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_benchmarks_notebook_runs_headless_from_the_readme_command(tmp_path):
    """Every cell executes; both plots land in build/notebook; tracked pictures stay byte for byte."""
    before = {name: _digest(ROOT / name) for name in TRACKED_OUTPUTS}
    out = ROOT / "build" / "notebook"
    for name in ("benchmarks.png", "benchmarks-compat.png", "benchmarks-scaling.png"):
        (out / name).unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "ANYPICKLE_NOTEBOOK_OUT"}
    env["ANYPICKLE_NOTEBOOK_SMALL"] = "1"
    done = subprocess.run(_readme_command(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("benchmarks.png", "benchmarks-compat.png", "benchmarks-scaling.png"):
        plot = out / name
        assert plot.exists() and plot.stat().st_size > 10_000, name
    assert {name: _digest(ROOT / name) for name in TRACKED_OUTPUTS} == before
    executed = json.loads((out / "benchmarks.ipynb").read_text())
    outputs = "".join(o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
                      for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert re.search(r"measurements of 13 cases", outputs)
    assert "auto on code: at worst" in outputs
    assert re.search(r"scaling curves of 6 families: auto at worst \d", outputs)
    assert f"plots go to: {out.resolve()}" in outputs
