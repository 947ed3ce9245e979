"""The taskloaf-style example in examples/scheduler.py runs and prints what the README shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "scheduler.py"


def test_scheduler_example_runs(tmp_path):
    """Tasks land on both workers, each worker's cache is its own, and the reduce task sums the counts."""
    proc = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [
        "worker-0: 3 words in 'a taskloaf scheduler' (1 cached there)",
        "worker-1: 4 words in 'ships closures to workers' (1 cached there)",
        "worker-0: 6 words in 'that need nothing from this script' (2 cached there)",
        "worker-1: 6 words in 'each worker keeps its own cache' (2 cached there)",
        "total words: 19 (summed on worker-0)",
    ]
