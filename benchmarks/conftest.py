"""Shared fixtures of the benchmark suite: run it with ``pytest benchmarks --benchmark-json=bench.json``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # cases.py and _mainlike.py live here, not installed
