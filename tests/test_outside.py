"""Objects from outside the catalogue (the peers' test suites, real libraries): never silently wrong.

Each test is a reproducer of issue 13. The catalogue's "found outside" rows ship the same kinds through
every backend into fresh interpreters (tests/test_matrix.py); these tests pin the rest: errors,
determinism, the selection loop's rules, and explain.
"""

from __future__ import annotations

import types
import weakref

import pytest

import anypickle
from anypickle import Backend, EncodeError, Need
from anypickle.lab.runner import receive, send


def _backend(data: bytes) -> Backend:
    return Backend(data[5])


# --- 1. a file open for writing ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["w", "a", "r+", "wb"])
def test_a_file_open_for_writing_is_refused_and_left_intact(tmp_path, mode):
    """dill would reopen it with its mode on the receiver ("w" truncates it): auto and portable refuse it,
    naming the path, the type and what to do, also when it sits inside a by-value object."""
    path = tmp_path / "log.txt"
    path.write_text("kept")
    with open(path, mode) as f:
        holder = types.SimpleNamespace(log=f, step=lambda: 1)  # the lambda sends auto past pickle
        for obj, where in ((f, "obj"), (holder, "obj.log")):
            for options in ({}, {"backend": "portable"}):
                with pytest.raises(EncodeError) as info:
                    anypickle.dumps(obj, **options)
                assert info.value.path == where, str(info.value)
                assert "reopen it on the receiver" in str(info.value)
    if mode not in ("w", "wb"):  # ("w" truncated it when the test opened it)
        assert path.read_text() == "kept"


def test_a_file_open_for_reading_still_ships(tmp_path):
    """Read-only files keep cloudpickle's documented behaviour: their content travels."""
    path = tmp_path / "data.txt"
    path.write_text("abc")
    with open(path) as f:
        assert anypickle.loads(anypickle.dumps(f)).read() == "abc"


# --- 3, 4. descriptors of C types, dict views ----------------------------------------------------


def test_every_descriptor_of_type_comes_back_as_itself():
    """All entries of type.__dict__ (16 used to come back as values, 2 did not load), in auto and portable."""
    entries = list(type.__dict__.items()) + [("fromkeys", dict.__dict__["fromkeys"])]
    for options in ({}, {"backend": "portable"}):
        loaded = anypickle.loads(anypickle.dumps(entries, **options))
        assert [(name, value is entries[i][1]) for i, (name, value) in enumerate(loaded)] == [
            (name, True) for name, _ in entries]


def test_descriptors_load_in_a_fresh_interpreter(tmp_path):
    sent = send(tmp_path, "obj = [type.__dict__[k] for k in sorted(type.__dict__)]\n")
    assert sent.backend == "pickle"
    got = receive(tmp_path, sent.payload, "[d is type.__dict__[k] for k, d in zip(sorted(type.__dict__), obj)]")
    assert got["result"] == [True] * len(type.__dict__)


def test_dict_views_stay_views_of_the_shipped_dict():
    x = {"a": 1}
    for options in ({}, {"backend": "portable"}, {"backend": "cloudpickle"}, {"backend": "dill"}):
        if "backend" in options:
            continue  # the raw backends are the matrix's business
        keys, values, items, d = anypickle.loads(anypickle.dumps((x.keys(), x.values(), x.items(), x), **options))
        d["b"] = 2
        assert (len(keys), sorted(values), len(items)) == (2, [1, 2], 2)


# --- 6. a dynamic module named under an installed package -----------------------------------------


def test_a_dynamic_module_under_an_installed_name_goes_by_value(tmp_path):
    sent = send(tmp_path, "import types\nobj = types.ModuleType('json.extra')\nobj.answer = 42\n")
    assert sent.backend == "cloudpickle"
    assert receive(tmp_path, sent.payload, "[obj.__name__, obj.answer]") == {"result": ["json.extra", 42]}


# --- 7. weak proxies -----------------------------------------------------------------------------


class _Node:
    def __init__(self, name, parent=None):
        self.name = name
        self.parent = parent
        self.children: list = []


def test_weak_proxies_arrive_as_proxies_or_are_refused():
    """A dead proxy arrives dead; a proxy to an object the payload holds stays a proxy to that object;
    a proxy alone would arrive dead (nothing holds its referent), so it is refused with EncodeError."""

    class Gone:
        pass

    gone = Gone()
    dead = weakref.proxy(gone)
    del gone
    loaded = anypickle.loads(anypickle.dumps(dead))
    assert type(loaded) is weakref.ProxyType
    with pytest.raises(ReferenceError):
        loaded.anything  # noqa: B018

    parent = _Node("root")
    parent.children = [_Node("child", weakref.proxy(parent))]
    copy = anypickle.loads(anypickle.dumps(parent))
    assert type(copy.children[0].parent) is weakref.ProxyType and copy.children[0].parent.name == "root"

    def answer():
        return 42

    for options in ({}, {"backend": "portable"}):
        with pytest.raises(EncodeError, match="does not hold") as info:
            anypickle.dumps(weakref.proxy(answer), **options)
        assert "ship the referent itself" in str(info.value)


def test_weak_refs_and_weak_sets_follow_the_same_rule():
    """weakref.ref and WeakSet: shipped when the payload holds their referents first; a dead ref arrives
    dead; alone they would arrive dead or empty (dill: a WeakSet whose len() counts dead references)."""
    members = [_Node("a"), _Node("b")]
    kept, ref, weak = anypickle.loads(anypickle.dumps((members, weakref.ref(members[0]), weakref.WeakSet(members))))
    assert ref() is kept[0] and sorted(m.name for m in weak) == ["a", "b"]
    gone = _Node("gone")
    dead = weakref.ref(gone)
    del gone
    assert anypickle.loads(anypickle.dumps(dead))() is None
    for obj in (weakref.ref(members[0]), weakref.WeakSet(members)):
        with pytest.raises(EncodeError, match="does not hold"):
            anypickle.dumps(obj)


# --- 8, 9, 11. what the selection loop lets through ----------------------------------------------


def test_recursing_getattribute_is_an_encode_error_not_a_recursion_error():
    class Evil:
        def __getattribute__(self, name):
            return self.__getattribute__(name)

    with pytest.raises(EncodeError) as info:
        anypickle.dumps(Evil())
    assert "RecursionError" in str(info.value)


class _Refuses:
    def __reduce__(self):
        raise ValueError("Refuses cannot be copied")


@pytest.mark.parametrize("options", [{}, {"backend": "pickle"}, {"backend": "cloudpickle"}, {"backend": "dill"},
                                     {"backend": "portable"}, {"by_value": ["json"]}])
def test_the_objects_own_exception_reaches_the_caller_unchanged(options):
    """As with pickle, cloudpickle and dill: `except ValueError` around dumps keeps working."""
    with pytest.raises(ValueError, match="Refuses cannot be copied") as info:
        anypickle.dumps({"inner": [_Refuses()], "f": lambda: 1}, **options)
    assert not isinstance(info.value, anypickle.AnyPickleError)


def test_an_object_refusing_with_typeerror_is_a_refusal():
    """The documented way to refuse pickling (TypeError in __reduce__/__getstate__) still gives EncodeError."""

    class Socketish:
        def __getstate__(self):
            raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    with pytest.raises(EncodeError):
        anypickle.dumps(Socketish())


@pytest.mark.parametrize("error", [TypeError, AttributeError, ValueError, KeyError])
def test_a_fault_in_the_classifier_surfaces_instead_of_changing_the_backend(monkeypatch, error):
    """Only a backend's documented refusal moves auto on: a bug in anypickle's own analysis must raise."""
    from anypickle.analysis import _needs

    real = _needs.classify

    class Marked:
        pass

    def faulty(obj, policy):
        if type(obj) is Marked:
            raise error("injected fault in classify")
        return real(obj, policy)

    monkeypatch.setattr(_needs, "classify", faulty)
    _needs._plain_instance_types.discard(Marked)
    for obj in (Marked(), [1, {"x": Marked()}]):
        with pytest.raises(error, match="injected fault"):
            anypickle.dumps(obj)
    monkeypatch.setattr(_needs, "classify", real)
    assert _backend(anypickle.dumps([1, 2])) is Backend.PICKLE


def test_a_fault_in_a_by_value_pickler_surfaces(monkeypatch):
    """The same for a fault in auto's cloudpickle hook (a dict view is reduced by anypickle's own code)."""
    from anypickle import _reducers

    def faulty(obj, memo_has):
        raise AttributeError("injected fault in reduce_gap")

    monkeypatch.setattr(_reducers, "reduce_gap", faulty)
    with pytest.raises(AttributeError, match="injected fault"):
        anypickle.dumps({"a": 1}.keys())


# --- 10. marshal payloads are byte-deterministic --------------------------------------------------


def _outer():
    y = 3

    def g(x):
        return x + y + len("hello world") + len({"a", "b", "c"})

    return g


def test_marshal_payloads_are_equal_for_equal_functions_and_after_a_round_trip():
    g = _outer()
    first = anypickle.dumps(g)
    assert _backend(first) is Backend.MARSHAL
    again = anypickle.dumps(anypickle.loads(first))
    assert again == first
    assert anypickle.dumps(anypickle.loads(again)) == first
    assert anypickle.dumps(_outer()) == first  # another closure made by the same code


def test_marshal_payloads_are_equal_across_interpreters(tmp_path):
    """A fresh interpreter that loads the payload and dumps it again writes the same bytes."""
    script = """
    def outer():
        y = 3
        def g(x):
            return x + y + len("hello world")
        return g
    obj = outer()
    """
    sent = send(tmp_path, script)
    assert sent.backend == "marshal"
    got = receive(tmp_path, sent.payload, "__import__('anypickle').dumps(obj).hex()")
    assert bytes.fromhex(got["result"]) == sent.payload


# --- 12. explain on large objects ----------------------------------------------------------------


def test_explain_finds_a_need_after_a_quarter_million_objects():
    """The analysis walks the whole graph: nothing after object 200,000 is silently skipped."""
    obj = [[i] for i in range(250_000)] + [lambda: 1]
    report = anypickle.explain(obj)
    assert [(f.need, f.path) for f in report.needs] == [(Need.LOCAL_FUNCTION, "obj[250000]")]
    assert report.backend is Backend.CLOUDPICKLE


def test_explains_verdicts_name_the_catalogue_evidence():
    """Raw dill is vouched for only where the matrix shows it shipping: it breaks some __main__ functions."""
    from anypickle.analysis._explain import recorded_verdict

    ships, reason = recorded_verdict(Backend.DILL, frozenset({"main/function"}))
    assert ships is False and "catalogue case" in reason
    ships, reason = recorded_verdict(Backend.CLOUDPICKLE, frozenset({"main/function"}))
    assert ships is True
    ships, reason = recorded_verdict(Backend.CLOUDPICKLE, frozenset({"local-module/function"}))
    assert ships is False
    ships, reason = recorded_verdict(Backend.PICKLE, frozenset({"no-such-need/other"}))
    assert ships is False and "untested" in reason


# --- 5, 15. a local package whose function imports a sibling when it runs -------------------------

_KERNELS = "def fast_sum(xs):\n    return sum(xs) * 10\n"
_CORE = """
def compute(xs):
    from .kernels import fast_sum
    return fast_sum(xs) + 1

def make():
    def inner(xs):
        from . import kernels
        return kernels.fast_sum(xs) + 2
    return inner
"""


@pytest.mark.parametrize("portable", [False, True])
def test_a_local_package_imported_inside_a_function_travels_with_it(tmp_path, portable):
    sender = tmp_path / "sender" / "lazylib"
    sender.mkdir(parents=True)
    (sender / "__init__.py").write_text("")
    (sender / "kernels.py").write_text(_KERNELS)
    (sender / "core.py").write_text(_CORE)
    sent = send(tmp_path, "from lazylib.core import compute, make\nobj = [compute, make()]\n", backend="portable" if portable else "auto")
    assert sent.backend == "pickle" if portable else "cloudpickle"
    got = receive(tmp_path, sent.payload, "[obj[0]([1, 2]), obj[1]([1])]")
    assert got == {"result": [31, 12]}


# --- real libraries' objects (cheap, deterministic ones) ------------------------------------------

_ATTRS_SCRIPT = """
import attrs

@attrs.define
class Point:
    x: int
    y: int = attrs.field(factory=lambda: 5)
    def norm(self):
        return self.x + self.y

@attrs.frozen
class Frozen:
    a: int
    @property
    def double(self):
        return 2 * self.a

obj = [Point(1), Frozen(3), Point]
"""


@pytest.mark.parametrize("portable", [False, True])
def test_attrs_classes_from_a_script_reach_a_fresh_interpreter(tmp_path, portable):
    """attrs rewrites the class (slots, generated __init__ with a factory lambda): auto and portable ship it."""
    pytest.importorskip("attrs", reason="attrs is not installed (pip install attrs, or the test extra)")
    sent = send(tmp_path, _ATTRS_SCRIPT, backend="portable" if portable else "auto")
    got = receive(tmp_path, sent.payload,
                  "[obj[0].norm(), obj[1].double, obj[2](2).y, __import__('attrs').asdict(obj[0]), "
                  "hasattr(obj[0], '__dict__')]")
    assert got == {"result": [6, 6, 5, {"x": 1, "y": 5}, False]}
