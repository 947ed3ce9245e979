"""Portable mode on one interpreter: what the payload is, which source it picks, and how it refuses.

The cross-version proof is in test_portable_cross.py; these tests pin down source extraction (where
portable mode breaks first) and the errors, in process or with one child interpreter.
"""

from __future__ import annotations

import dataclasses
import functools
import linecache
import pickle
import sys
import textwrap

import pytest

import anypickle
from anypickle import _envelope as env
from anypickle.backends import _source
from anypickle.backends._portable import dumps_portable, loads_portable

from _interpreters import find_interpreter, receiver_for
from anypickle.lab._interpreters import Receiver
from anypickle.lab.runner import run_script

FIRST, SECOND = (lambda x: x + 1), (lambda x: x * 2)
SAME_A, SAME_B = (lambda x: x + 1), (lambda x: x + 1)
OTHER_ARGS_A, OTHER_ARGS_B = lambda a: a, lambda b: b


def _deco(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args) + 100
    return wrapper


@_deco
@functools.lru_cache(maxsize=None)
def decorated(x):
    return x


@dataclasses.dataclass(slots=True)
class SelfNaming:
    n: int

    def bump(self):
        return SelfNaming(self.n + 1)


class Outer:
    class Inner:
        def hi(self):
            return "hi"


def _recursive():
    def walk(n):
        return 0 if n == 0 else 1 + walk(n - 1)
    return walk


def _pair():
    box = []

    def put(x):
        box.append(x)
        return len(box)

    def size():
        return len(box)

    return put, size


def test_two_lambdas_on_one_line_each_ship_their_own_text():
    """Two lambdas on one line: each record holds the lambda that made its code, found by compiling both."""
    assert _source.function_source(FIRST)["text"] == "lambda x: x + 1"
    assert _source.function_source(SECOND)["text"] == "lambda x: x * 2"
    assert _source.function_source(OTHER_ARGS_B)["text"] == "lambda b: b"
    first, second = loads_portable(dumps_portable((FIRST, SECOND)))
    assert (first(10), second(10)) == (11, 20)


def test_identical_lambdas_on_one_line_pick_the_right_column_where_python_records_it():
    """Identical lambdas compute the same; on 3.11+ the instruction columns still pick the exact one."""
    a, b = _source.function_source(SAME_A), _source.function_source(SAME_B)
    assert a["text"] == b["text"] == "lambda x: x + 1"
    if sys.version_info >= (3, 11):
        line = linecache.getline(__file__, SAME_B.__code__.co_firstlineno)
        assert line.index("lambda") != line.rindex("lambda")  # the test's premise: two on one line
    assert [f(1) for f in loads_portable(dumps_portable((SAME_A, SAME_B)))] == [2, 2]


def test_decorated_function_ships_undecorated_source_and_replays_the_decorators():
    """The raw def travels without its decorators; the lru_cache wrapper is re-made from the decorator text."""
    raw = decorated.__wrapped__.__wrapped__
    record = _source.function_source(raw)
    assert record["text"].lstrip().startswith("def decorated(x):")
    assert _source.decorators_source(raw)["decorators"] == ("_deco", "functools.lru_cache(maxsize=None)")
    rebuilt = loads_portable(dumps_portable(decorated))
    assert rebuilt(5) == 105
    assert rebuilt.__wrapped__.cache_info().maxsize is None


def test_nested_class_comes_from_its_rebuilt_outer_class():
    """A nested class is reached by name on the rebuilt outer class, not rebuilt on its own."""
    inner = loads_portable(dumps_portable(Outer.Inner))
    assert inner().hi() == "hi"
    assert inner.__qualname__ == "Outer.Inner"
    assert inner is not Outer.Inner


def test_recursive_closure_refers_to_itself_after_loading():
    """A closure that calls itself through its own cell gets that cell back, holding itself."""
    walk = loads_portable(dumps_portable(_recursive()))
    assert walk(25) == 25
    assert walk.__closure__[0].cell_contents is walk


def test_closures_sharing_a_cell_still_share_it():
    """Two closures over one variable keep one cell between them."""
    put, size = loads_portable(dumps_portable(_pair()))
    assert put.__closure__[0] is size.__closure__[0]
    put("a")
    assert size() == 1


def test_backend_portable_is_the_spelling_and_portable_true_still_works_with_a_warning():
    """``backend="portable"`` asks for portable mode (dumps, Encoder, any case); the old ``portable=True``
    warns with a DeprecationWarning that names the new spelling and writes the same bytes."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spelling warns about nothing
        data = anypickle.dumps(FIRST, backend="portable")
        assert anypickle.Encoder(backend="Portable").encode(FIRST) == data
    with pytest.warns(DeprecationWarning, match='backend="portable"'):
        assert anypickle.dumps(FIRST, portable=True) == data
    with pytest.warns(DeprecationWarning, match='backend="portable"'):
        assert anypickle.dumps(FIRST, portable=True, backend="pickle") == data  # allowed before, still
    with pytest.warns(DeprecationWarning, match='backend="portable"'):
        encoder = anypickle.Encoder(portable=True)
    assert encoder.encode(FIRST) == data and "backend='portable'" in repr(encoder)
    with pytest.warns(DeprecationWarning), pytest.raises(anypickle.UsageError, match="cannot be combined"):
        anypickle.dumps(FIRST, portable=True, backend="dill")
    with pytest.raises(anypickle.UsageError, match="portable"):  # the choices a wrong name lists
        anypickle.dumps(FIRST, backend="portble")


def test_portable_envelope_has_no_bytecode_and_no_interpreter_record():
    """The envelope says PORTABLE, not BYTECODE, so no receiver refuses it for being another version."""
    data = anypickle.dumps(FIRST, backend="portable")
    header = env.parse(memoryview(data))
    assert header.backend is anypickle.Backend.PICKLE
    assert header.flags & env.PORTABLE and not header.flags & env.BYTECODE
    assert header.interpreter is None
    assert anypickle.loads(data)(1) == 2


def test_payload_is_protocol_5_and_plain_pickle_loads_it():
    """Protocol 5 (readable by every Python from 3.8), and pickle.loads alone rebuilds the code."""
    payload = dumps_portable(SECOND)
    assert payload[:2] == b"\x80\x05"
    assert pickle.loads(payload)(4) == 8
    assert b"co_code" not in payload and SECOND.__code__.co_code not in payload


def test_function_made_by_exec_without_source_is_refused_with_its_path():
    """exec'd code has no source: EncodeError says so and names where it sits in the object."""
    namespace: dict = {}
    exec("def made(): return 1", namespace)  # noqa: S102
    with pytest.raises(anypickle.EncodeError) as info:
        anypickle.dumps({"jobs": [1, namespace["made"]]}, backend="portable")
    assert info.value.path == "obj['jobs'][1]"
    assert "no source" in str(info.value) and "'made'" in str(info.value)


def test_closure_over_sourceless_function_names_the_cell_path():
    """The path reaches into the closure variable when that is where the sourceless function hides."""
    namespace: dict = {}
    exec("def made(): return 1", namespace)  # noqa: S102
    target = namespace["made"]

    def outer():
        return target()

    with pytest.raises(anypickle.EncodeError) as info:
        anypickle.dumps(outer, backend="portable")
    assert info.value.path is not None and "closure" in info.value.path and "target" in info.value.path


def test_local_class_whose_body_reads_an_enclosing_variable_is_refused():
    """A class body that read a local of its factory: no method holds that value, so EncodeError names it."""
    def make(v):
        class Holder:
            attr = v * 2
        return Holder

    with pytest.raises(anypickle.EncodeError, match="reads 'v'") as info:
        anypickle.dumps({"cls": make(3)}, backend="portable")
    assert info.value.path == "obj['cls']"


def test_code_object_is_refused():
    """A bare code object is bytecode: portable mode refuses it and says to ship its function."""
    with pytest.raises(anypickle.EncodeError, match="bytecode"):
        anypickle.dumps({"code": FIRST.__code__}, backend="portable")


def test_source_that_no_longer_matches_the_code_is_refused(tmp_path):
    """A file edited after it ran: the def at that line now has other arguments, so nothing is shipped."""
    path = tmp_path / "edited.py"
    path.write_text("def f(a, b):\n    return a + b\n")
    namespace: dict = {"__name__": "edited_module"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102
    path.write_text("def f(x):\n    return x\n")
    linecache.checkcache(str(path))
    with pytest.raises(anypickle.EncodeError, match="no longer matches"):
        anypickle.dumps(namespace["f"], backend="portable")


def test_installed_library_function_travels_by_reference():
    """Functions of installed modules are not shipped as source: the receiver imports them."""
    payload = dumps_portable(textwrap.dedent)
    assert b"textwrap" in payload and b"_rebuild_function" not in payload


def test_by_reference_keeps_a_local_module_by_name(tmp_path, monkeypatch):
    """by_reference names a local module the receiver has: its functions then travel by name."""
    (tmp_path / "localmod_portable.py").write_text("def f():\n    return 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import localmod_portable

    assert b"_rebuild_function" in dumps_portable(localmod_portable.f)
    assert b"_rebuild_function" not in dumps_portable(localmod_portable.f, by_reference=["localmod_portable"])


def _local_modules(tmp_path, monkeypatch):
    (tmp_path / "inner_portable.py").write_text("LEVEL = 2\ndef deeper():\n    return LEVEL * 10\n")
    (tmp_path / "outer_portable.py").write_text(
        "import inner_portable\nRATE = 3\ndef rate(x):\n    return x * RATE\n"
        "def via_inner():\n    return inner_portable.deeper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import outer_portable

    return outer_portable


@pytest.mark.parametrize("order", ["module first", "function first"])
def test_a_local_module_and_its_function_load_as_one_module(tmp_path, monkeypatch, order):
    """A helper module shipped as a value and a function rebuilt in it share one module on the receiver."""
    outer = _local_modules(tmp_path, monkeypatch)
    obj = (outer, outer.rate) if order == "module first" else (outer.rate, outer)
    loaded = pickle.loads(dumps_portable(obj))
    module, rate = loaded if order == "module first" else loaded[::-1]
    assert module is not outer and rate.__globals__ is vars(module)
    assert [module.RATE, rate(2), module.via_inner(), module.inner_portable.deeper()] == [3, 6, 20, 20]


def test_a_function_ships_only_the_module_attributes_it_reads(tmp_path, monkeypatch):
    """Rebuilt code gets the globals it reads, not the whole helper module it came from."""
    outer = _local_modules(tmp_path, monkeypatch)
    rate = pickle.loads(dumps_portable(outer.rate))
    assert rate(5) == 15
    assert "RATE" in rate.__globals__ and "via_inner" not in rate.__globals__


def test_a_method_bound_onto_an_instance_under_any_name_stays_bound():
    """``obj.m = MethodType(f, obj)`` loads as f bound to the loaded obj, not as the class's m."""
    import types

    class Greeter:  # a local class: it goes by value like a __main__ one
        def greet(self):
            return "hello"

    g = Greeter()
    g.greet = types.MethodType(lambda self: "HELLO", g)
    g.extra = types.MethodType(lambda self: self.greet() + "!", g)
    loaded = pickle.loads(dumps_portable(g))
    assert [loaded.greet(), loaded.extra(), type(loaded).greet(loaded)] == ["HELLO", "HELLO!", "hello"]
    assert loaded.extra.__self__ is loaded


def test_a_patched_installed_class_is_patched_again_on_load(tmp_path):
    """A method of a stdlib class replaced by local code is set again when the payload loads elsewhere."""
    sender = textwrap.dedent("""
        import fractions, sys, anypickle
        def as_text(self):
            return f"{self.numerator}/{self.denominator}"
        fractions.Fraction.__repr__ = as_text
        open(sys.argv[1], "wb").write(anypickle.dumps(fractions.Fraction(3, 4), backend="portable"))
    """)
    receiver = "import json, sys, anypickle; print(json.dumps(repr(anypickle.loads(open(sys.argv[1], 'rb').read()))))"
    out = tmp_path / "f.bin"
    run_script(tmp_path / "sender", sender, args=[str(out)])
    assert run_script(tmp_path / "receiver", receiver, args=[str(out)]) == "3/4"


def test_a_submodule_read_through_its_package_is_imported_on_load(tmp_path):
    """``xml.dom.minidom`` read through the global ``xml`` works where nothing imported xml.dom yet."""
    sender = textwrap.dedent("""
        import sys, xml.dom.minidom, anypickle
        def tag(text):
            return xml.dom.minidom.parseString(text).documentElement.tagName
        open(sys.argv[1], "wb").write(anypickle.dumps(tag, backend="portable"))
    """)
    receiver = textwrap.dedent("""
        import json, sys, anypickle
        before = "xml.dom.minidom" in sys.modules
        f = anypickle.loads(open(sys.argv[1], "rb").read())
        print(json.dumps([before, f("<a/>")]))
    """)
    out = tmp_path / "f.bin"
    run_script(tmp_path / "sender", sender, args=[str(out)])
    assert run_script(tmp_path / "receiver", receiver, args=[str(out)]) == [False, "a"]


def test_a_class_whose_machinery_made_methods_close_over_names_still_sees_its_own_name():
    """dataclass's ``__repr__`` is a closure from reprlib: its free variables are not the class body's."""
    record = _source.class_source(SelfNaming)
    assert record["freevars"] == ()
    loaded = pickle.loads(dumps_portable(SelfNaming(1)))
    assert repr(loaded.bump()) == "SelfNaming(n=2)" and not hasattr(loaded, "__dict__")


def test_an_exception_with_its_own_init_loads_without_calling_it():
    """An exception whose __init__ takes other arguments than its args keeps its message and attributes."""
    class HTTPError(Exception):
        def __init__(self, status, reason):
            super().__init__(f"{status} {reason}")
            self.status = status

    loaded = pickle.loads(dumps_portable(HTTPError(404, "Not Found")))
    assert [str(loaded), loaded.status, type(loaded).__name__] == ["404 Not Found", 404, "HTTPError"]


SENDER_312 = '''
import sys, anypickle
class Boom:
    def __reduce__(self):
        return (open, (sys.argv[2], "w"))
square = lambda x: x * x
with open(sys.argv[1], "wb") as f:
    f.write(anypickle.dumps([square, Boom()], backend="cloudpickle"))
'''

RECEIVER = '''
import json, os, sys, anypickle
data = open(sys.argv[1], "rb").read()
try:
    anypickle.loads(data)
    out = {"error": None}
except anypickle.AnyPickleError as exc:
    out = {"error": type(exc).__name__, "message": str(exc), "written_by": getattr(exc, "written_by", None),
           "running": getattr(exc, "running", None)}
out["marker"] = os.path.exists(sys.argv[2])
print(json.dumps(out))
'''


def _python(version: str) -> Receiver:
    if find_interpreter(version) is None:
        pytest.skip(f"Python {version} is not installed (looked in pyenv and on PATH)")
    return receiver_for(version)


def test_bytecode_payload_from_another_version_is_refused_before_anything_runs(tmp_path):
    """A cloudpickle payload written by 3.12 is refused by 3.11, naming both and suggesting backend='portable'."""

    sender, receiver = _python("3.12"), _python("3.11")
    payload, marker = tmp_path / "payload.apkl", tmp_path / "marker"
    run_script(tmp_path / "sender", SENDER_312, args=[str(payload), str(marker)], receiver=sender)
    assert not marker.exists()
    out = run_script(tmp_path / "receiver", RECEIVER, args=[str(payload), str(marker)], receiver=receiver)
    assert out["error"] == "InterpreterMismatchError"
    assert "3.12" in out["written_by"] and "3.11" in out["running"]
    assert "3.12" in out["message"] and "3.11" in out["message"] and "backend='portable'" in out["message"]
    assert out["marker"] is False, "the payload's __reduce__ ran: something was unpickled before the check"


NEW_SYNTAX_SENDER = '''
import sys, anypickle
def quote(d):
    return f"{d["key"]}"
with open(sys.argv[1], "wb") as f:
    f.write(anypickle.dumps(quote, backend="portable"))
'''


def test_source_with_syntax_the_receiver_lacks_fails_with_a_clear_decode_error(tmp_path):
    """PEP 701 f-strings (3.12) reach 3.10 as source that cannot compile there: DecodeError says why."""

    sender, receiver = _python("3.12"), _python("3.10")
    payload = tmp_path / "payload.apkl"
    run_script(tmp_path / "sender", NEW_SYNTAX_SENDER, args=[str(payload)], receiver=sender)
    out = run_script(tmp_path / "receiver", RECEIVER, args=[str(payload), str(tmp_path / "unused")], receiver=receiver)
    assert out["error"] == "DecodeError"
    assert "does not compile on Python 3.10" in out["message"] and "quote" in out["message"]


PEP695_SENDER = '''
import sys, anypickle
def first[U](xs: list[U]) -> U:
    return xs[0]
class Box[V]:
    def __init__(self, v: V):
        self.v = v
with open(sys.argv[1], "wb") as f:
    f.write(anypickle.dumps((first, Box), backend="portable"))
'''

PEP695_RECEIVER = '''
import json, sys, anypickle
first, Box = anypickle.loads(open(sys.argv[1], "rb").read())
print(json.dumps([first([7, 8]), [p.__name__ for p in first.__type_params__], Box(3).v,
                  [p.__name__ for p in Box.__type_params__], repr(Box[int])]))
'''


def test_type_parameter_syntax_crosses_from_312_to_313(tmp_path):
    """``def f[T]`` and ``class C[T]`` (3.12) rebuild with their type parameters under 3.13."""

    sender, receiver = _python("3.12"), _python("3.13")
    payload = tmp_path / "payload.apkl"
    run_script(tmp_path / "sender", PEP695_SENDER, args=[str(payload)], receiver=sender)
    assert run_script(tmp_path / "receiver", PEP695_RECEIVER, args=[str(payload)], receiver=receiver) == [
        7, ["U"], 3, ["V"], "__main__.Box[int]"]


IPYTHON_SENDER = '''
import sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
cells = [
    "import anypickle, dataclasses",
    "@dataclasses.dataclass\\nclass P:\\n    x: int\\n    y: int = 1",
    "double = lambda p: p.x * 2",
    "def total(p):\\n    return double(p) + p.y",
    "class Counter:\\n    def __init__(self):\\n        self.n = 0\\n    def hit(self):\\n        self.n += 1\\n        return self.n",
    "c = Counter(); c.hit()",
    f"_ = open({sys.argv[1]!r}, 'wb').write(anypickle.dumps((P(3), total, c), backend='portable'))",
]
for cell in cells:
    result = shell.run_cell(cell)
    if not result.success:
        raise SystemExit(f"cell failed: {cell!r}: {result.error_in_exec or result.error_before_exec}")
print('"sent"')  # the shell echoes cell values; the runner reads this last line
'''

IPYTHON_RECEIVER = '''
import json, sys, anypickle
p, total, counter = anypickle.loads(open(sys.argv[1], "rb").read())
print(json.dumps([total(p), repr(p), counter.hit(), "IPython" in sys.modules]))
'''


def test_code_typed_in_ipython_cells_loads_in_another_version_without_ipython(tmp_path):
    """Cells run by a real IPython shell (3.11) ship from linecache and load under 3.13, which lacks IPython."""

    pytest.importorskip("IPython", reason="IPython is not installed (pip install -e '.[test]')")
    receiver = _python("3.13")
    payload = tmp_path / "cells.apkl"
    assert run_script(tmp_path / "sender", IPYTHON_SENDER, args=[str(payload)]) == "sent"
    assert run_script(tmp_path / "receiver", IPYTHON_RECEIVER, args=[str(payload)], receiver=receiver) == [
        7, "P(x=3, y=1)", 2, False]


def test_payloads_keep_their_wire_names(tmp_path):
    """Moving code into folders must not change what payloads name: portable rebuilders stay
    ``anypickle._portable.*`` and Wrapped stays ``anypickle.wrap.Wrapped`` (older and newer
    anypickle read each other's payloads), and plain ``pickle.loads`` in a fresh interpreter
    finds them; the attribute ``anypickle.wrap`` is still the function."""
    import pickle
    import pickletools
    import sys

    import anypickle

    portable = dumps_portable(lambda x: x * 7)
    wrapped = pickle.dumps(anypickle.wrap(lambda x: x + 1))
    for data, wire in ((portable, "anypickle._portable"), (wrapped, "anypickle.wrap")):
        strings = [arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
        assert wire in strings and not any(s.startswith(("anypickle.backends", "anypickle.shipping")) for s in strings)
    assert callable(anypickle.wrap) and not isinstance(anypickle.wrap, type(sys))
    path = tmp_path / "p.bin"
    path.write_bytes(portable)
    code = "import pickle, sys; print(pickle.loads(open(sys.argv[1], 'rb').read())(6))"
    assert run_script(tmp_path / "receiver", code, args=[str(path)]) == 42
