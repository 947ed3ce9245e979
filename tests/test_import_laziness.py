"""``import anypickle`` imports the facade only: every heavy module loads when something first needs it.

Every spawned worker and CLI call pays the import (issue 16; its speed is measured by
benchmarks/bench_import.py, never here). These tests fail when someone re-adds an eager import: each
runs a fresh interpreter and lists the modules a statement newly imported.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest

import anypickle

# Modules ``import anypickle`` must not import, each with who needs it.
NOT_AT_IMPORT = {
    "cloudpickle": "the cloudpickle backend",
    "dill": "the dill backend",
    "hashlib": "signing (hmac) and wrap's digests: loads OpenSSL",
    "hmac": "signing and verifying",
    "importlib.metadata": "the module policy's table of installed distributions",
    "dataclasses": "Limits, Finding, explain: imports inspect",
    "inspect": "(imported by dataclasses)",
    "threading": "nothing at import: the locks come from _thread",
    "sysconfig": "the module policy, for the first module outside the stdlib",
    "multiprocessing": "the executor",
    "concurrent.futures": "the executor",
    "anypickle.safe._allowlist": "safe loading",
    "anypickle.safe._limits": "safe loading and anypickle.Limits",
    "anypickle.safe._numpy_guard": "safe loading",
    "anypickle.safe._scanner": "safe loading and scan()",
    "anypickle.safe._tracking": "safe loading",
    "anypickle.lab": "check() and the compatibility matrix",
    "anypickle.analysis._explain": "explain()",
    "anypickle.analysis._finding": "explain() and error messages (find_needs)",
    "anypickle.backends._cloudpickle": "by-value code other than plain functions",
    "anypickle.backends._dill": "the last resort backend",
    "anypickle.backends._portable": "portable=True",
    "anypickle.shipping.executor": "ProcessPoolExecutor",
}

_CHILD = """
import json, sys
before = set(sys.modules)
{statement}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _new_modules(statement: str) -> set[str]:
    """The modules that ``statement`` newly imports in a fresh interpreter."""
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    done = subprocess.run([sys.executable, "-c", _CHILD.format(statement=statement)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def _eager(modules: set[str], names: object) -> dict[str, str]:
    return {name: NOT_AT_IMPORT[name] for name in names if name in modules}  # type: ignore[attr-defined]


def test_import_anypickle_imports_no_heavy_module():
    new = _new_modules("import anypickle")
    assert "anypickle._api" in new  # the child did import it (and the check below can fail)
    assert _eager(new, NOT_AT_IMPORT) == {}


def test_plain_data_and_plain_functions_round_trip_without_the_heavy_modules():
    """The first dumps/loads of plain data (pickle) and of a lambda (marshal) need none of them either:
    nothing is merely deferred to the first call on these paths."""
    new = _new_modules(
        "import anypickle\n"
        "assert anypickle.loads(anypickle.dumps({'a': [1, 2.0, 'x', None]})) == {'a': [1, 2.0, 'x', None]}\n"
        "assert anypickle.loads(anypickle.dumps(lambda x: x + 1))(1) == 2\n"
        "assert anypickle.Backend(anypickle.dumps(lambda x: x + 1)[5]) is anypickle.Backend.MARSHAL\n")
    assert "anypickle.backends._marshal" in new
    assert _eager(new, NOT_AT_IMPORT) == {}


def test_each_heavy_module_arrives_with_its_first_use():
    """The lazy names work from a fresh interpreter, and they import what they need then (not before)."""
    new = _new_modules(
        "import anypickle\n"
        "assert anypickle.loads(anypickle.dumps([1]), safe=True, limits=anypickle.Limits(max_depth=5)) == [1]\n"
        "key = b'k' * 32\n"
        "assert anypickle.loads(anypickle.dumps([2], key=key), key=key) == [2]\n"
        "assert anypickle.explain(lambda: 1).needs[0].need is anypickle.Need.MAIN\n")
    assert {"anypickle.safe._loads", "anypickle.safe._limits", "hmac", "hashlib", "anypickle.analysis._explain",
            "anypickle.analysis._finding", "dataclasses"} <= new


@pytest.mark.parametrize("name", sorted(anypickle.__all__))
def test_every_public_name_is_listed_and_importable(name):
    assert name in dir(anypickle)
    namespace: dict[str, object] = {}
    exec(f"from anypickle import {name}", namespace)  # noqa: S102 - the statement users write
    assert namespace[name] is getattr(anypickle, name)


def test_star_import_and_old_homes_give_the_same_objects():
    namespace: dict[str, object] = {}
    exec("from anypickle import *", namespace)  # noqa: S102
    assert set(anypickle.__all__) <= set(namespace)
    from anypickle.analysis import _finding, _needs
    from anypickle.safe import _limits

    assert namespace["Limits"] is _limits.Limits
    assert namespace["Finding"] is _finding.Finding is _needs.Finding  # _needs.Finding: its home until now
    with pytest.raises(AttributeError, match="no_such_name"):
        anypickle.no_such_name  # noqa: B018


def test_a_wrapped_payload_loads_before_anypickle_is_imported_and_wrap_stays_the_function():
    """Payloads name ``anypickle.wrap.Wrapped``; a worker unpickling one with plain pickle imports
    anypickle through it, and ``anypickle.wrap`` must still be the function afterwards."""
    blob = pickle.dumps(anypickle.wrap(len)).hex()
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    code = ("import pickle, sys\n"
            "assert 'anypickle' not in sys.modules\n"
            f"w = pickle.loads(bytes.fromhex('{blob}'))\n"
            "import anypickle\n"
            "print(w('abc'), callable(anypickle.wrap) and not isinstance(anypickle.wrap, type(sys)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "True"]
