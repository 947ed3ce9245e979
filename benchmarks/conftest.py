"""Shared fixtures of the benchmark suite: run it with ``pytest benchmarks --benchmark-json=bench.json``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # cases.py and _mainlike.py live here, not installed

# Put glibc's allocator in its steady state before measuring. Until a large block has been freed,
# its thresholds stay at their start values (128 KB), and a few-hundred-KB result (100k ints, 10k
# strings) is then served from fresh pages on every call, or not, depending on which backend ran
# just before: measured 1.0x or 1.35x for the same code, for pickle.dumps and anypickle alike.
# Freeing one 16 MB block raises them for the rest of the session, as any long-running program's.
_warm = bytearray(16 * 2**20)
del _warm
