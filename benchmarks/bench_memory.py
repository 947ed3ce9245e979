"""Peak memory of dumping an 80 MB array in-band: anypickle auto against pickle.dumps, in a child process."""

from __future__ import annotations

import json
import subprocess
import sys

from cases import MB, SCALE

_CHILD = r"""
import json, pickle, sys, tracemalloc
import numpy as np
import anypickle
arr = np.arange({n}, dtype=np.float64)
anypickle.dumps(arr); pickle.dumps(arr, protocol=5)  # warm imports and caches before tracing
out = {{}}
tracemalloc.start()
for name, dumps in (("pickle", lambda o: pickle.dumps(o, protocol=5)), ("anypickle", anypickle.dumps)):
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    data = dumps(arr)
    out[name] = tracemalloc.get_traced_memory()[1] - base
    del data
json.dump(out, sys.stdout)
"""


def test_peak_memory_in_band_80mb(benchmark):
    """Peak bytes allocated by one in-band dumps; ratio in extra_info (target: at most 1.1x pickle)."""
    n = int(80 * MB * SCALE) // 8
    benchmark.group = "memory"

    def measure():
        done = subprocess.run([sys.executable, "-c", _CHILD.format(n=n)], capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    peaks = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(case="array_80mb", op="peak-memory", peak_pickle=peaks["pickle"],
                                peak_anypickle=peaks["anypickle"], ratio=peaks["anypickle"] / peaks["pickle"])
    assert peaks["anypickle"] > 0 and peaks["pickle"] > 0
