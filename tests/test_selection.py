"""What auto picks, what explain reports, and the errors for objects nothing can ship (in-process facts)."""

from __future__ import annotations

import functools
import json
import threading
import types

import cloudpickle
import pytest

import anypickle
from anypickle import Backend, EncodeError, Need


def _backend(obj, **kw) -> Backend:
    return Backend(anypickle.dumps(obj, **kw)[5])


def test_plain_data_and_installed_objects_pick_pickle():
    """Nothing in plain data or installed objects needs more than stdlib pickle."""
    import datetime
    import fractions

    assert _backend({"a": [1, 2, (3, "x")]}) is Backend.PICKLE
    assert _backend([datetime.datetime(2020, 1, 1), fractions.Fraction(1, 3), json.dumps]) is Backend.PICKLE


def test_a_plain_lambda_picks_marshal_and_a_partial_picks_cloudpickle():
    """marshal is the cheapest way to ship one function; wrappers around it need cloudpickle."""
    assert _backend(lambda x: x) is Backend.MARSHAL
    assert _backend(functools.partial(lambda a, b: a + b, 1)) is Backend.CLOUDPICKLE


def test_marshal_refuses_a_function_whose_globals_it_cannot_carry():
    """A global holding an instance makes marshal refuse clearly, and auto moves on to cloudpickle."""
    g = {"holder": types.SimpleNamespace(v=3)}
    exec("def f():\n    return holder.v\n", g)
    f = g["f"]
    with pytest.raises(EncodeError, match="marshal"):
        anypickle.dumps(f, backend="marshal")
    assert _backend(f) is Backend.CLOUDPICKLE
    assert anypickle.loads(anypickle.dumps(f))() == 3


def test_marshal_round_trip_keeps_defaults_kwdefaults_closure_and_module_globals():
    """The marshal backend rebuilds name, defaults, kw-defaults, closure and the globals the code uses."""
    import math

    k = 2

    def f(x, y=3, *, z=4):
        """doc"""
        return math.floor(x * k + y + z)

    g = anypickle.loads(anypickle.dumps(f, backend="marshal"))
    assert (g(1.5), g(1, 0, z=0), g.__name__, g.__doc__, g.__defaults__, g.__kwdefaults__) == (10, 2, "f", "doc", (3,), {"z": 4})
    assert g.__qualname__ == f.__qualname__


def test_unshippable_object_raises_encode_error_with_path_and_advice():
    """A generator deep in an object: EncodeError names its path, its type, each backend, and what to do."""

    def gen():
        yield 1

    job = types.SimpleNamespace(gen=gen())
    obj = types.SimpleNamespace(jobs=[1, 2, job])
    with pytest.raises(EncodeError) as info:
        anypickle.dumps(obj)
    err = info.value
    assert err.path == "obj.jobs[2].gen"
    assert err.type_name == "generator"
    assert "list(gen)" in str(err)
    assert isinstance(err, TypeError)


def test_forced_backend_that_cannot_serialize_raises_encode_error():
    """A forced backend still fails with anypickle's error, naming the backend."""
    with pytest.raises(EncodeError, match="'pickle' cannot serialize") as info:
        anypickle.dumps({"f": lambda: 1}, backend="pickle")
    assert info.value.attempts and info.value.attempts[0][0] == "pickle"


def test_forced_backend_writes_an_envelope_naming_it():
    """Each forced backend writes its id in the envelope and round-trips."""
    for name in ("pickle", "cloudpickle", "dill"):
        data = anypickle.dumps([1, 2], backend=name)
        assert Backend(data[5]).label == name
        assert anypickle.loads(data) == [1, 2]
    assert anypickle.loads(anypickle.dumps(lambda: 5, backend=Backend.MARSHAL))() == 5


def test_unknown_backend_name_is_a_usage_error():
    """A typo in the backend name is a clear UsageError listing the choices."""
    with pytest.raises(anypickle.UsageError, match="cloudpickle"):
        anypickle.dumps(1, backend="cloudpickel")


def test_explain_reports_backend_needs_with_paths_and_verdicts():
    """explain names auto's backend, each need with its path, and each raw backend's verdict."""
    obj = {"jobs": [1, lambda: 2]}
    report = anypickle.explain(obj)
    assert report.backend is Backend.CLOUDPICKLE
    assert [(f.need, f.path) for f in report.needs] == [(Need.LOCAL_FUNCTION, "obj['jobs'][1]")]
    verdicts = {v.backend: v.ships for v in report.backends}
    assert verdicts[Backend.PICKLE] is False and verdicts[Backend.CLOUDPICKLE] is True
    d = report.to_dict()
    assert d["backend"] == "cloudpickle" and d["needs"][0]["path"] == "obj['jobs'][1]"
    json.dumps(d)
    assert "obj['jobs'][1]" in str(report)


def test_explain_takes_module_names_from_any_iterable():
    """by_value given as a generator is read once and used for both the analysis and the dumps."""
    import json as json_module

    listed = anypickle.explain(json_module.dumps, by_value=["json"])
    generated = anypickle.explain(json_module.dumps, by_value=(name for name in ["json"]))
    assert listed.backend is not Backend.PICKLE and listed.needs
    assert generated.to_dict() == listed.to_dict()


def test_explain_finds_shared_cells_and_marks_raw_cloudpickle_blind_to_them():
    """Two closures over one cell: explain reports the shared cell, and that raw cloudpickle breaks it."""

    def make():
        n = 0

        def get():
            return n

        def bump():
            nonlocal n
            n += 1

        return get, bump

    report = anypickle.explain(make())
    assert Need.SHARED_CELL in {f.need for f in report.needs}
    verdicts = {v.backend: v.ships for v in report.backends}
    assert verdicts[Backend.CLOUDPICKLE] is False
    # The verdict is the catalogue's evidence: raw cloudpickle breaks the matrix's shared-cell case.
    reason = next(v.reason for v in report.backends if v.backend is Backend.CLOUDPICKLE)
    assert "closures sharing a cell" in reason


def test_explain_of_unshippable_object_has_no_backend_and_the_error():
    """When nothing can ship the object, explain says so instead of raising."""

    async def co():
        return 1

    c = co()
    try:
        report = anypickle.explain({"c": c})
    finally:
        c.close()
    assert report.backend is None
    assert report.error and "coroutine" in report.error
    assert report.needs[0].need is Need.UNSHIPPABLE and report.needs[0].path == "obj['c']"


def test_dumps_is_thread_safe_and_leaks_no_by_value_registration():
    """Concurrent dumps with different module policies: every result is right and no global state changes."""
    errors: list[BaseException] = []
    results: dict[int, object] = {}

    def work(i: int) -> None:
        try:
            for _ in range(30):
                fn = (lambda k: lambda x: x * k)(i)
                data = anypickle.dumps({"f": fn, "i": i}, by_value=["json"] if i % 2 else (),
                                       by_reference=["example"] if i % 3 else ())
                loaded = anypickle.loads(data)
                results[i] = (loaded["f"](2), loaded["i"])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == {i: (2 * i, i) for i in range(8)}
    assert cloudpickle.list_registry_pickle_by_value() == set()
