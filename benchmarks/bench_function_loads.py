"""Cold loads of shipped functions: anypickle against cloudpickle's loads of the same function.

A worker loads each task's function once; caches of a previous load of the same bytes do not help
it. So every payload timed here is loaded exactly once: each round builds a fresh set of distinct
functions (their own source, hence their own code objects and bytes), dumps each with cloudpickle
and with anypickle, then loads each set once, the backends in turn. The time per function is the
minimum over rounds. Cases: a ``__main__`` function using a module and a global, a lambda, a
closure (all three shipped by marshal under ``auto``), the function defined in a script file (its
source lines travel in the envelope and are registered for tracebacks on load; the receiver lacks
the file), a ``__main__`` function calling a ``__main__`` helper (cloudpickle+ under ``auto``:
marshal cannot carry a by-value function), a list of 1k lambdas (cloudpickle+ under ``auto``), and
3000 distinct functions in one set. Target (issue 16): anypickle at most 1.0x cloudpickle, every case.

One information row more: the function forced through ``backend="cloudpickle"``, which is raw
cloudpickle's own stream in an envelope, so its ratio is the cost of the envelope's checks alone.
"""

from __future__ import annotations

import gc
import itertools
import linecache
import os
import pickle
import time

import cloudpickle
import pytest

import anypickle
from anypickle import _envelope
from _targets import record, row

ROUNDS = int(os.environ.get("ANYPICKLE_BENCH_FN_ROUNDS", "9"))
_serial = itertools.count()

_SOURCE = {
    "main_function": "import math\nSCALE = {k}\ndef f(x):\n    return math.sqrt(x) * SCALE + {k}\n",
    "lambda": "f = lambda x: x * 3 + {k}\n",
    "closure": "def make(offset):\n    def shifted(x):\n        return x + offset + {k}\n    return shifted\nf = make(7)\n",
    "lambdas_1k": "f = [lambda x, i=i: x + i + {k} for i in range(1000)]\n",
    "main_with_helper": ("import math\nSCALE = {k}\ndef helper(x):\n    return x + {k}\n"
                         "def f(x):\n    return math.sqrt(helper(x)) * SCALE\n"),
}
# A script file that exists on the sender only: linecache holds its lines there (as it does for a
# script that ran), and the benchmark drops them before loading, as on a worker without the file.
_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_no_such_script_{k}.py")


def _make(kind: str, script: bool = False):
    """A fresh function (or list of lambdas) of ``kind`` whose ``__module__`` is ``__main__``."""
    namespace = {"__name__": "__main__"}
    k = next(_serial)
    text = _SOURCE[kind].format(k=k)
    filename = "<script>"
    if script:  # 50 functions per file, like a script's many functions
        filename = _SCRIPT.format(k=k // 50)
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(compile(text, filename, "exec"), namespace)
    return namespace["f"]


# case -> (kind of function, functions per set, anypickle dumps keyword arguments, backend auto must
# pick (None: the one forced), defined in a script file?)
CASES = {
    "main_function": ("main_function", 300, {}, "marshal", False),
    "lambda": ("lambda", 300, {}, "marshal", False),
    "closure": ("closure", 300, {}, "marshal", False),
    "main_function from a script file": ("main_function", 300, {}, "marshal", True),
    "main_function cloudpickle+": ("main_with_helper", 300, {}, "cloudpickle", False),
    "main_function forced cloudpickle": ("main_function", 300, {"backend": "cloudpickle"}, None, False),
    "lambdas_1k": ("lambdas_1k", 3, {}, "cloudpickle", False),
    "3000 distinct functions": ("main_function", 3000, {}, "marshal", False),
}


def _load_all(loads, payloads) -> float:
    gc.collect()
    start = time.perf_counter()
    for data in payloads:
        loads(data)
    return (time.perf_counter() - start) / len(payloads)


@pytest.mark.parametrize("case", list(CASES))
def test_cold_function_loads(benchmark, case):
    kind, per_set, kwargs, picked, script = CASES[case]
    rounds, per_set = (ROUNDS, per_set) if not benchmark.disabled else (1, min(per_set, 20))
    benchmark.group = "cold function loads"
    ours_loads = anypickle.loads
    best = {"cloudpickle": float("inf"), "anypickle": float("inf")}
    sizes = {}

    def measure():
        for r in range(rounds):
            fns = [_make(kind, script) for _ in range(per_set)]
            payloads = {"cloudpickle": [cloudpickle.dumps(f) for f in fns],
                        "anypickle": [anypickle.dumps(f, **kwargs) for f in fns]}
            for f in fns if script else ():  # the receiver has not got the script file
                linecache.cache.pop(f.__code__.co_filename, None)
            sizes.update({k: len(v[0]) for k, v in payloads.items()})
            order = ("cloudpickle", "anypickle") if r % 2 == 0 else ("anypickle", "cloudpickle")
            for name in order:
                best[name] = min(best[name], _load_all(cloudpickle.loads if name == "cloudpickle" else ours_loads,
                                                        payloads[name]))
        return payloads

    payloads = benchmark.pedantic(measure, rounds=1, iterations=1)
    header = _envelope.parse(memoryview(payloads["anypickle"][-1]))
    assert header.backend.label == (picked or kwargs["backend"]), (case, header.backend)
    assert (header.source is not None) == script, case  # the script's lines travel; "<script>" has none
    # Correct results: both loads give a working function of the same behaviour.
    a, c = anypickle.loads(payloads["anypickle"][-1]), pickle.loads(payloads["cloudpickle"][-1])
    if isinstance(a, list):
        assert [g(1) for g in a] == [g(1) for g in c]
    else:
        assert a(4) == c(4)
    benchmark.extra_info.update(case=f"cold {case}", seconds=best, sizes=sizes, per_set=per_set, rounds=rounds)
    print(f"\n  {case}: cloudpickle {best['cloudpickle'] * 1e6:.2f} us, anypickle {best['anypickle'] * 1e6:.2f} us "
          f"per load; sizes {sizes}", end="")
    forced = picked is None  # raw cloudpickle's stream in an envelope: an information row
    record(benchmark, [
        row("(info) function loads (cold), forced raw backend" if forced else
            "function loads (cold) at most 1.0x cloudpickle", case, "loads anypickle/cloudpickle",
            best["anypickle"] / best["cloudpickle"], None if forced else 1.0),
        row("(info) function payload size", case, "bytes anypickle/cloudpickle",
            sizes["anypickle"] / sizes["cloudpickle"], None),
    ])
