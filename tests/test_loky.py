"""anypickle.wrap through joblib's loky backend, a real loky process pool.

loky ships tasks with cloudpickle: ``__main__`` code goes by value, but a function of a local helper
module goes by reference. The worker then fails to import the module, or, worse, imports its own copy
and silently runs code the parent has patched away. ``anypickle.wrap`` ships both by value.
"""

from __future__ import annotations

import pytest

from anypickle.lab.runner import run_script

pytest.importorskip("joblib", reason="joblib (which vendors loky) is not installed")

HELPER = """
RATE = 1

def price(x):
    return x * RATE
"""

SCRIPT = """
import json, os, sys
import anypickle
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

def run(fn, n=4):
    try:
        return Parallel(n_jobs=2, backend="loky")(delayed(fn)(i) for i in range(n))
    except Exception as exc:  # what the parent sees of a worker's failure, and its cause
        return f"{type(exc).__name__}: {exc} (cause: {exc.__cause__})"

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    import helper
    out = {}
    # 1. The workers can import the helper module (same folder on sys.path), but the parent patched it.
    helper.RATE = 100
    out["patched_raw"] = run(helper.price)
    out["patched_wrapped"] = run(anypickle.wrap(helper.price))
    get_reusable_executor().shutdown(wait=True)
    # 2. New workers cannot import it at all (its folder left sys.path before they started).
    sys.path.remove(here)
    os.environ["PYTHONPATH"] = ""
    out["missing_raw"] = run(helper.price)
    offset = 5
    out["missing_wrapped"] = run(anypickle.wrap(lambda x: helper.price(x) + offset))
    out["worker_pids_differ"] = len(set(run(anypickle.wrap(lambda _: os.getpid()), 8)) - {os.getpid()}) >= 1
    get_reusable_executor().shutdown(wait=True)
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """One script run as __main__ maps helper-module code over joblib's loky workers, raw and wrapped."""
    return run_script(tmp_path_factory.mktemp("loky"), SCRIPT, {"helper": HELPER}, [], timeout=240)


def test_raw_loky_silently_runs_the_workers_own_copy_of_a_patched_module(outcome):
    """The control: cloudpickle sends helper.price by reference, the workers import the unpatched module."""
    assert outcome["patched_raw"] == [0, 1, 2, 3]


def test_wrapped_function_runs_the_parents_patched_code(outcome):
    assert outcome["patched_wrapped"] == [0, 100, 200, 300]


def test_raw_loky_fails_where_workers_cannot_import_the_helper(outcome):
    assert isinstance(outcome["missing_raw"], str)
    assert outcome["missing_raw"].startswith("BrokenProcessPool") and "No module named 'helper'" in outcome["missing_raw"]


def test_wrapped_closure_over_the_helper_runs_where_workers_cannot_import_it(outcome):
    assert outcome["missing_wrapped"] == [5, 105, 205, 305]
    assert outcome["worker_pids_differ"] is True
