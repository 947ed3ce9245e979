"""Cold loads of shipped functions: anypickle against cloudpickle's loads of the same function.

A worker loads each task's function once; caches of a previous load of the same bytes do not help
it. So every payload timed here is loaded exactly once: each round builds a fresh set of distinct
functions (their own source, hence their own code objects and bytes), dumps each with cloudpickle
and with anypickle, then loads each set once, the backends in turn. The time per function is the
minimum over rounds. Cases: a ``__main__`` function using a module and a global, a lambda, a
closure (all three shipped by marshal under ``auto``), the same function forced through anypickle's
cloudpickle backend ("cloudpickle+"), a list of 1k lambdas (cloudpickle+ under ``auto``), and 3000
distinct functions in one set. Target (issue 16): anypickle at most 1.0x cloudpickle, every case.
"""

from __future__ import annotations

import gc
import itertools
import os
import pickle
import time

import cloudpickle
import pytest

import anypickle
from _targets import record, row

ROUNDS = int(os.environ.get("ANYPICKLE_BENCH_FN_ROUNDS", "9"))
_serial = itertools.count()

_SOURCE = {
    "main_function": "import math\nSCALE = {k}\ndef f(x):\n    return math.sqrt(x) * SCALE + {k}\n",
    "lambda": "f = lambda x: x * 3 + {k}\n",
    "closure": "def make(offset):\n    def shifted(x):\n        return x + offset + {k}\n    return shifted\nf = make(7)\n",
    "lambdas_1k": "f = [lambda x, i=i: x + i + {k} for i in range(1000)]\n",
}


def _make(kind: str):
    """A fresh function (or list of lambdas) of ``kind`` whose ``__module__`` is ``__main__``."""
    namespace = {"__name__": "__main__"}
    exec(compile(_SOURCE[kind].format(k=next(_serial)), "<script>", "exec"), namespace)
    return namespace["f"]


# case -> (kind of function, functions per set, anypickle dumps keyword arguments)
CASES = {
    "main_function": ("main_function", 300, {}),
    "lambda": ("lambda", 300, {}),
    "closure": ("closure", 300, {}),
    "main_function cloudpickle+": ("main_function", 300, {"backend": "cloudpickle"}),
    "lambdas_1k": ("lambdas_1k", 3, {}),
    "3000 distinct functions": ("main_function", 3000, {}),
}


def _load_all(loads, payloads) -> float:
    gc.collect()
    start = time.perf_counter()
    for data in payloads:
        loads(data)
    return (time.perf_counter() - start) / len(payloads)


@pytest.mark.parametrize("case", list(CASES))
def test_cold_function_loads(benchmark, case):
    kind, per_set, kwargs = CASES[case]
    rounds, per_set = (ROUNDS, per_set) if not benchmark.disabled else (1, min(per_set, 20))
    benchmark.group = "cold function loads"
    ours_loads = anypickle.loads
    best = {"cloudpickle": float("inf"), "anypickle": float("inf")}
    sizes = {}

    def measure():
        for r in range(rounds):
            fns = [_make(kind) for _ in range(per_set)]
            payloads = {"cloudpickle": [cloudpickle.dumps(f) for f in fns],
                        "anypickle": [anypickle.dumps(f, **kwargs) for f in fns]}
            sizes.update({k: len(v[0]) for k, v in payloads.items()})
            order = ("cloudpickle", "anypickle") if r % 2 == 0 else ("anypickle", "cloudpickle")
            for name in order:
                best[name] = min(best[name], _load_all(cloudpickle.loads if name == "cloudpickle" else ours_loads,
                                                        payloads[name]))
        return payloads

    payloads = benchmark.pedantic(measure, rounds=1, iterations=1)
    # Correct results: both loads give a working function of the same behaviour.
    a, c = anypickle.loads(payloads["anypickle"][-1]), pickle.loads(payloads["cloudpickle"][-1])
    if isinstance(a, list):
        assert [g(1) for g in a] == [g(1) for g in c]
    else:
        assert a(4) == c(4)
    benchmark.extra_info.update(case=f"cold {case}", seconds=best, sizes=sizes, per_set=per_set, rounds=rounds)
    print(f"\n  {case}: cloudpickle {best['cloudpickle'] * 1e6:.2f} us, anypickle {best['anypickle'] * 1e6:.2f} us "
          f"per load; sizes {sizes}", end="")
    record(benchmark, [
        row("function loads (cold) at most 1.0x cloudpickle", case, "loads anypickle/cloudpickle",
            best["anypickle"] / best["cloudpickle"], 1.0),
        row("(info) function payload size", case, "bytes anypickle/cloudpickle",
            sizes["anypickle"] / sizes["cloudpickle"], None),
    ])
