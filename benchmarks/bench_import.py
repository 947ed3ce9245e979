"""Import time and first-use cost, each in a fresh interpreter (run: pytest benchmarks/bench_import.py -s).

Every spawned worker and every CLI call pays ``import anypickle``. Each round starts one fresh
interpreter per statement, in turn, and the child times only the statement (``time.perf_counter``
around it, interpreter start-up excluded); the benchmark keeps the minimum over rounds of each
(noise only ever adds time). Target (issue 16): ``import anypickle`` at most 1.3x ``import cloudpickle``.
The first-use rows (import plus the first ``dumps`` of a lambda, or the first ``loads`` of one, as a
worker does) are information. ``ANYPICKLE_BENCH_IMPORT_ROUNDS`` sets the rounds (default 20).

Every package is timed from cached bytecode, as installed: pip compiles a wheel's modules at install
time, so cloudpickle and dill arrive with their ``.pyc`` files, but an editable install of anypickle
has none, and with ``PYTHONDONTWRITEBYTECODE`` set (tests/fresh.py sets it, so do some CI images)
every child would compile anypickle's 10k lines from source: that measured the compiler (~30 ms),
not the import. :func:`_compile_bytecode` writes the ``.pyc`` files of the three packages first.
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys

import cloudpickle

import anypickle
from _targets import record, row

ROUNDS = int(os.environ.get("ANYPICKLE_BENCH_IMPORT_ROUNDS", "20"))

_LAMBDA_CLOUD = cloudpickle.dumps(lambda: 1).hex()
_LAMBDA_ANY = anypickle.dumps(lambda: 1).hex()

# name -> (setup run before the clock starts, statement timed)
STATEMENTS = {
    "import pickle": ("", "import pickle"),
    "import cloudpickle": ("", "import cloudpickle"),
    "import dill": ("", "import dill"),
    "import anypickle": ("", "import anypickle"),
    "cloudpickle: import + dumps(lambda)": ("", "import cloudpickle; cloudpickle.dumps(lambda: 1)"),
    "anypickle: import + dumps(lambda)": ("", "import anypickle; anypickle.dumps(lambda: 1)"),
    "cloudpickle: import + loads(lambda)": (f"data = bytes.fromhex('{_LAMBDA_CLOUD}')",
                                            "import cloudpickle; cloudpickle.loads(data)()"),
    "anypickle: import + loads(lambda)": (f"data = bytes.fromhex('{_LAMBDA_ANY}')",
                                          "import anypickle; anypickle.loads(data)()"),
}

_CHILD = """
import time
{setup}
start = time.perf_counter()
{stmt}
print(time.perf_counter() - start)
"""


def _compile_bytecode() -> None:
    """Write the ``.pyc`` files of anypickle, cloudpickle and dill, as pip does when it installs a wheel."""
    import dill

    for package in (anypickle, cloudpickle, dill):
        assert package.__file__ is not None
        compileall.compile_dir(os.path.dirname(package.__file__), quiet=1)


def _once(setup: str, stmt: str) -> float:
    done = subprocess.run([sys.executable, "-c", _CHILD.format(setup=setup, stmt=stmt)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def test_import_time(benchmark):
    """Minimum over rounds of each statement's time in fresh interpreters, interleaved; ratios in extra_info."""
    rounds = ROUNDS if not benchmark.disabled else 2
    benchmark.group = "import time (fresh interpreters)"
    _compile_bytecode()

    def measure():
        best = {name: float("inf") for name in STATEMENTS}
        for _ in range(rounds):
            for name, (setup, stmt) in STATEMENTS.items():
                best[name] = min(best[name], _once(setup, stmt))
        return best

    best = benchmark.pedantic(measure, rounds=1, iterations=1)
    assert all(0 < t < 60 for t in best.values()), best
    benchmark.extra_info["seconds"] = best
    print("\n" + json.dumps({k: f"{v * 1e3:.1f} ms" for k, v in best.items()}, indent=1))
    record(benchmark, [
        row("import anypickle at most 1.3x import cloudpickle", "fresh interpreter", "import anypickle/cloudpickle",
            best["import anypickle"] / best["import cloudpickle"], 1.3),
        row("(info) import time against pickle and dill", "fresh interpreter", "import anypickle/pickle",
            best["import anypickle"] / best["import pickle"], None),
        row("(info) import time against pickle and dill", "fresh interpreter", "import anypickle/dill",
            best["import anypickle"] / best["import dill"], None),
        row("(info) first use in a fresh interpreter", "import + dumps(lambda)", "anypickle/cloudpickle",
            best["anypickle: import + dumps(lambda)"] / best["cloudpickle: import + dumps(lambda)"], None),
        row("(info) first use in a fresh interpreter", "import + loads(lambda)", "anypickle/cloudpickle",
            best["anypickle: import + loads(lambda)"] / best["cloudpickle: import + loads(lambda)"], None),
    ])
