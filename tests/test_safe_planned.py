"""The planned load (anypickle.safe._planned, _opwalk.safe_plan) against the static path it shortcuts.

The planned load runs a stream naming non-inert globals (numpy's reconstructors, bytearray, range, the
copyreg helpers) in the C unpickler with the static pass's rules applied at each call and BUILD. It may
only ever accept what the static path accepts, and load it to the same value; anything else it must
hand on ("miss"). Shown here:

- on ordinary data of every kind the corpus benchmark uses, protocols 0-5 and numpy 1.x names: it
  takes every stream (no miss) and loads what pickle.loads and the static path load, type-exact;
- in a child process, on the adversarial corpus of issue 12, on streams generated from the allowlist's
  own globals with random arguments and BUILD states, and on streams made to tell a literal from a call
  result: whenever it loads a stream, the static path loads it too, to the same bytes when re-pickled;
  every stream the adversarial corpus expects refused, it does not load;
- safe_plan agrees with memo_check on every verdict (random and mutated streams), and its rewrite is
  checked against pickletools' independent reading of both streams.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import io
import pickle
import pickletools
import uuid
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anypickle.safe._loads
from anypickle.safe import safe_loads
from anypickle.safe._allowlist import resolve_global

from _safe_child import run_streams
from adversarial import NP, Asm, _dtype, build_cases
from test_safe_fuzz import generated_streams, mutated

pytestmark = pytest.mark.skipif(anypickle.safe._loads._safe_plan is None, reason="the C extension is not built")


def _objects() -> dict[str, object]:
    utc = datetime.timezone.utc
    when = datetime.datetime(2024, 5, 17, 9, 30, 12, 345678)
    structured = np.array([(i, i / 3, f"n{i}") for i in range(4)], dtype=[("id", "<i4"), ("x", "<f8"), ("name", "U4")])
    return {
        "datetime": [when, when.replace(tzinfo=utc), datetime.date(2024, 1, 2), datetime.timedelta(days=3)],
        "decimal": {"a": decimal.Decimal("19.99"), "b": decimal.Decimal("-0.05")},
        "range": {"rows": range(0, 1000, 7), "cols": range(12)},
        "complex": [complex(i, -i / 2) for i in range(4)],
        "bytes": [b"\x00\x01payload\xff" * 3, b""],
        "bytearray": [bytearray(b"abcdefgh" * 4), bytearray()],
        "sets": {"s": {"red", "green"}, "f": frozenset({1, 2, 3})},
        "uuid": {"id": uuid.UUID(int=0x1234567890ABCDEF)},
        "collections": [collections.OrderedDict(a=1), collections.deque([1, 2], 5),
                        collections.defaultdict(list, {"k": [1]})],
        "numpy arrays": [np.arange(16, dtype=np.float64), np.arange(6, dtype=np.int32).reshape(2, 3),
                         np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)), np.arange(5) % 2 == 0],
        "numpy structured": structured,
        "numpy object array": np.array([1, "x", None, decimal.Decimal("2")], dtype=object),
        "numpy scalars": [np.float64(1.5), np.int64(7), np.bool_(True), np.float32(0.25)],
        "numpy datetime64": np.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]"),
        "numpy shared": (lambda a: [a, a, {"again": a}])(np.linspace(0, 1, 8)),
        "mixed": {"w": np.zeros(3), "r": range(3), "b": bytearray(b"x"), "d": datetime.date(2020, 1, 1)},
    }


def _numpy1_names(data: bytes) -> bytes:
    """The stream a numpy 1.x sender writes (numpy.core.* names), frames rebuilt by pickletools."""
    if data[:2] in (b"\x80\x04", b"\x80\x05"):
        import re
        fixed = re.sub(rb"\x8c(?P<n>[\x00-\xff])numpy\._core\.",
                       lambda m: b"\x8c" + bytes([m.group("n")[0] - 1]) + b"numpy.core.", data)
        return pickletools.optimize(fixed)
    return data.replace(b"cnumpy._core.", b"cnumpy.core.")


def _corpus() -> dict[str, bytes]:
    out = {}
    for name, obj in _objects().items():
        for proto in range(6):
            data = pickle.dumps(obj, proto)
            out[f"{name} p{proto}"] = data
            if b"numpy._core" in data:
                out[f"{name} p{proto} numpy1"] = _numpy1_names(data)
    return out


CORPUS = _corpus()
# Streams that name a global (the others are plain data, which the plain path loads).
NAMED = {n: d for n, d in CORPUS.items()
         if any(op.name in ("GLOBAL", "STACK_GLOBAL", "INST") for op, _, _ in pickletools.genops(d))}


def _same(a, b) -> bool:
    """Equal and type-exact, all the way down (arrays: dtype, shape, order and values)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return (a.dtype == b.dtype and a.shape == b.shape and a.flags.f_contiguous == b.flags.f_contiguous
                and np.array_equal(a, b) if a.dtype != object else list(a.flat) == list(b.flat))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, collections.deque)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _planned(data: bytes):
    """The planned load alone: its result, or anypickle.safe._loads._MISS."""
    plan = anypickle.safe._loads._safe_plan(data)
    if not (type(plan) is tuple and len(plan) == 3):
        return anypickle.safe._loads._MISS
    return anypickle.safe._loads._planned_load(data, anypickle.safe._loads.build_allowlist(()), anypickle.safe._loads.DEFAULT_LIMITS, plan)


def test_corpus_shape():
    assert len(NAMED) >= 120 and len(CORPUS) - len(NAMED) <= 10, (len(NAMED), len(CORPUS))
    assert sum(n.endswith("numpy1") for n in NAMED) >= 40


@pytest.mark.parametrize("name", sorted(NAMED))
def test_ordinary_data_takes_the_planned_load(name, monkeypatch):
    """Every ordinary stream that names a global loads through the planned load (no miss) to exactly
    what pickle.loads and the static path give."""
    data = NAMED[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = pickle.loads(data)
        got = _planned(data)
        assert got is not anypickle.safe._loads._MISS, "the planned load handed an ordinary stream on"
        assert _same(got, expected)
        monkeypatch.setattr(anypickle.safe._loads, "C_FIRST", False)
        assert _same(safe_loads(data), got)
    if name.startswith("numpy shared"):
        assert got[0] is got[1] is got[2]["again"]  # the memo still shares one array


def test_the_planned_load_is_what_safe_loads_uses(monkeypatch):
    """safe_loads takes the planned load in its one C call (_opwalk.safe_fast): neither the static
    pass nor the Python steps run (a stream it misses would show their cost)."""
    data = CORPUS["numpy arrays p5"]
    assert _same(anypickle.safe._loads._safe_fast(data), pickle.loads(data))  # not MISS
    monkeypatch.setattr(anypickle.safe._loads, "_refusal", lambda *a: pytest.fail("the static pass ran"))
    monkeypatch.setattr(anypickle.safe._loads, "_planned_load", lambda *a: pytest.fail("the Python steps ran"))
    assert _same(safe_loads(data), pickle.loads(data))


# -- streams that tell a literal from a call result ------------------------------------------------

def _bool_call(a: Asm, value: int) -> Asm:
    return a.g("builtins", "bool").mark().i(value).tuple().reduce()


def _encode(a: Asm, text: str) -> Asm:
    return a.g("_codecs", "encode").mark().s(text).s("latin1").tuple().reduce()


def _shape_streams() -> dict[str, bytes]:
    """Each stream puts a call result where the static pass wants a literal (or feeds a range to a
    call, or builds a shared result): the static path refuses it, so the planned load must miss."""
    out = {}
    a = Asm()  # numpy.dtype('f8', bool(0), True)
    a.g("numpy", "dtype").mark().s("f8")
    _bool_call(a, 0).true().tuple().reduce()
    out["dtype with a call-result bool"] = a.stop()
    a = Asm()  # list(range(5)): a range result fed to a call
    a.g("builtins", "list").mark().g("builtins", "range").mark().i(5).tuple().reduce().tuple().reduce()
    out["range fed to list"] = a.stop()
    a = Asm()  # __newobj_ex__-style nesting: tuple((range(3),))
    a.g("builtins", "tuple").mark().mark().g("builtins", "range").mark().i(3).tuple().reduce().tuple().tuple().reduce()
    out["conservative: range inside a tuple argument"] = a.stop()  # the static pass looks one level only
    a = Asm()  # bytearray(bytes(b'x')): bytes() result where a literal or encode() result is wanted
    a.g("builtins", "bytearray").mark().g("builtins", "bytes").mark().b(b"x").tuple().reduce().tuple().reduce()
    out["bytearray of a bytes() result"] = a.stop()
    a = Asm()  # scalar(<dtype>, ...) then BUILD on the scalar (shared np.True_)
    a.g(NP, "scalar").mark()
    _dtype(a, "?", (3, "|", None, None, None, -1, -1, 0))
    a.b(b"\x01").tuple().reduce().mark().dict().build()
    out["BUILD on a numpy scalar"] = a.stop()
    a = Asm()  # an array whose BUILD state has is_fortran = bool(0), a call result
    a.g(NP, "_reconstruct").mark().g("numpy", "ndarray").mark().i(0).tuple().b(b"b").tuple().reduce()
    a.mark().i(1).mark().i(2).tuple()
    _dtype(a, "u1", (3, "|", None, None, None, -1, -1, 0))
    _bool_call(a, 0).b(b"\x00\x01").tuple().build()
    out["array state with a call-result flag"] = a.stop()
    a = Asm()  # _reconstruct(ndarray, (0,), encode('b', 'latin1')) is what protocol 2 writes: loads
    a.g(NP, "_reconstruct").mark().g("numpy", "ndarray").mark().i(0).tuple()
    _encode(a, "b").tuple().reduce()
    a.mark().i(1).mark().i(2).tuple()
    _dtype(a, "u1", (3, "|", None, None, None, -1, -1, 0))
    a.false()
    _encode(a, "\x00\x01").tuple().build()
    out["control: protocol-2 shape"] = a.stop()
    a = Asm()  # Decimal(1.5): the static pass allows Decimal(<str>) and Decimal(<int>) only
    a.mark().g("builtins", "range").mark().i(2).tuple().reduce()
    a.g("decimal", "Decimal").mark().op(b"G" + (1.5).hex().encode()[:0] + __import__("struct").pack(">d", 1.5))
    a.tuple().reduce().list()
    out["Decimal of a float next to a range"] = a.stop()
    a = Asm()  # __newobj__(SafeUUID, 0) then BUILD: a shared enum member
    a.g("copyreg", "__newobj__").mark().g("uuid", "SafeUUID").i(0).tuple().reduce().mark().dict().build()
    out["__newobj__ of a shared enum member, built"] = a.stop()
    a = Asm()  # SETITEM into a bytearray literal (bytearray takes it; the static pass refuses)
    a.mark().g("builtins", "range").mark().i(2).tuple().reduce()
    a.op(b"\x96" + (4).to_bytes(8, "little") + b"abcd").i(0).i(65).op(b"s").list()
    out["SETITEM into a bytearray literal"] = a.stop()
    a = Asm()  # BUILD on a global
    a.g("builtins", "range").mark().s("x").i(1).dict().build()
    out["BUILD on a global"] = a.stop()
    for code in (b"f", b"O"):  # _reconstruct(ndarray, (0,), <another dtype code>): numpy writes b'b' only
        a = Asm()
        a.g(NP, "_reconstruct").mark().g("numpy", "ndarray").mark().i(0).tuple().b(code).tuple().reduce()
        a.mark().i(1).mark().i(2).tuple()
        _dtype(a, "u1", (3, "|", None, None, None, -1, -1, 0))
        a.false().b(b"\x00\x01").tuple().build()
        out[f"_reconstruct with dtype code {code!r}"] = a.stop()
    return out


SHAPES = _shape_streams()


@pytest.fixture(scope="module")
def differential(tmp_path_factory):
    """Planned-only and static-first outcomes of the adversarial, generated and shape streams, each
    set loaded in children (a crash or hang is caught and named), same hash seed for both."""
    streams = {f"adv {n}": c.data for n, c in build_cases().items()}
    streams.update({f"gen {n}": d for n, d in generated_streams(1616, 600).items()})
    streams.update({f"shape {n}": d for n, d in SHAPES.items()})
    workdir = tmp_path_factory.mktemp("planned")
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONHASHSEED", "0")
    try:
        planned = run_streams(streams, workdir, mode="planned", timeout=240)
        static = run_streams(streams, workdir, mode="static_first", timeout=240)
    finally:
        mp.undo()
    return streams, planned, static


def test_planned_load_accepts_only_what_the_static_path_accepts(differential):
    streams, planned, static = differential
    wrong = {}
    for name in streams:
        p, s = planned[name], static[name]
        assert p["outcome"] in ("loads", "miss"), (name, p)  # it never refuses or fails: it hands on
        assert not p["new_modules"] and not p["state_changed"], (name, p)
        if p["outcome"] == "loads" and (s["outcome"] != "loads" or s["result"] != p["result"]):
            wrong[name] = (p["outcome"], s["outcome"], s["error"])
    assert not wrong, wrong
    counts = collections.Counter(planned[n]["outcome"] for n in streams if n.startswith("gen "))
    assert counts["loads"] >= 50, counts  # the comparison is not vacuous


def test_adversarial_streams_are_not_loaded_by_the_planned_load(differential):
    streams, planned, _ = differential
    cases = build_cases()
    for name, case in cases.items():
        if case.expect == "refused":
            assert planned[f"adv {name}"]["outcome"] == "miss", name


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shapes_the_static_pass_judges(differential, name):
    _, planned, static = differential
    p, s = planned[f"shape {name}"], static[f"shape {name}"]
    if name.startswith("control"):
        assert p["outcome"] == s["outcome"] == "loads" and p["result"] == s["result"], (p, s)
    elif name.startswith("conservative"):  # the planned load may hand on more than it must
        assert p["outcome"] == "miss" and s["outcome"] == "loads", (p, s)
    else:
        assert s["outcome"] != "loads", s  # the stream is one the static path refuses...
        assert p["outcome"] == "miss", p  # ...and the planned load hands it on


# -- the C walk's plan against memo_check and pickletools --------------------------------------------

STREAMS = list(CORPUS.values()) + list(SHAPES.values())
FUZZ = settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _check_plan(data: bytes) -> None:
    check = anypickle.safe._loads._memo_check(data)
    plan = anypickle.safe._loads._safe_plan(data)
    if not (type(plan) is tuple and len(plan) == 3):
        assert plan == check  # no plan: exactly memo_check's verdict
        return
    assert check is None  # a plan only for a sound stream
    occ, builds, rewritten = plan
    try:
        ops = [op.name for op, _, _ in pickletools.genops(data)]
    except (ValueError, UnicodeDecodeError):  # pickletools reads GLOBAL lines as ASCII, the C unpickler as UTF-8
        return
    builder = 1 << 62
    assert sum(o == builder for o in occ) == len(builds) == ops.count("BUILD")
    assert len(occ) - len(builds) == sum(ops.count(n) for n in ("GLOBAL", "STACK_GLOBAL", "INST"))
    new = list(pickletools.genops(rewritten))
    names = [op.name for op, _, _ in new]
    assert "BUILD" not in names and names.count("FRAME") == 1 and names[-1] == "STOP"
    assert sum(1 for op, arg, _ in new if op.name == "GLOBAL" and arg == "_ _") == len(builds)
    frame = next(i for i, (op, _, _) in enumerate(new) if op.name == "FRAME")
    assert new[frame][1] == len(rewritten) - new[frame][2] - 9  # one frame around the rest
    # The rewrite keeps every other opcode, in order, and turns each BUILD into TUPLE2 REDUCE.
    kept = [n for n in names if n != "FRAME"]
    for n in ops:
        if n == "FRAME":
            continue
        if n == "BUILD":
            assert "TUPLE2" in kept and "REDUCE" in kept
            continue
        assert n in kept


@FUZZ
@given(st.one_of(st.sampled_from(STREAMS), mutated(STREAMS), st.binary(max_size=200)))
def test_safe_plan_agrees_with_memo_check(data):
    _check_plan(data)


def test_rewritten_streams_load_like_the_originals():
    """Loading the rewrite with plain globals and pickle's own BUILD gives pickle.loads' value: the
    inserted GLOBALs land where each BUILD finds its function, and nothing else moved."""

    def build(inst, state):
        stack = type("S", (), {})()
        stack.stack = [inst, state]
        pickle._Unpickler.load_build(stack)
        return inst

    class Plain(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("_", "_"):
                return build
            return super().find_class(module, name)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name, data in CORPUS.items():
            plan = anypickle.safe._loads._safe_plan(data)
            if type(plan) is tuple and len(plan) == 3:
                assert _same(Plain(io.BytesIO(plan[2])).load(), pickle.loads(data)), name


def test_larger_streams_take_the_planned_load_after_the_inert_one(monkeypatch):
    """Past anypickle.safe._loads._PLAN_FIRST bytes the inert-only load goes first (cheaper per opcode); a
    non-inert global after it still ends in the planned load, not in the static pass: in safe_fast's
    one C call, and in the Python steps (taken with limits= or without the C call)."""
    when = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    obj = [when + datetime.timedelta(seconds=i) for i in range(600)] + [np.arange(4.0), range(3)]
    data = pickle.dumps(obj, 5)
    assert len(data) > anypickle.safe._loads._PLAN_FIRST
    assert _same(anypickle.safe._loads._safe_fast(data), obj)  # not MISS
    monkeypatch.setattr(anypickle.safe._loads, "_refusal", lambda *a: pytest.fail("the static pass ran"))
    calls = []
    real = anypickle.safe._loads._planned_load
    monkeypatch.setattr(anypickle.safe._loads, "_planned_load", lambda *a: calls.append(1) or real(*a))
    assert _same(safe_loads(data), obj) and calls == []  # the C call took it
    monkeypatch.setattr(anypickle.safe._loads, "_safe_fast", None)
    assert _same(safe_loads(data), obj)
    assert calls == [1]
    small = pickle.dumps(obj[-2:], 5)  # and a small one is planned first
    assert _same(safe_loads(small), obj[-2:]) and calls == [1, 1]


def test_the_dtype_verdict_cache_keys_on_exact_types():
    """A dtype state the guard verified once is cached by value *and type*: a state equal to it but
    for a bool where numpy writes an int (False == 0) is still refused, first time or cached; so is
    a structured dtype whose field dtype differs from the one its cached verdict was made with."""
    from anypickle.errors import UnsafePickleError
    from anypickle.safe._numpy_guard import NumpyGuard

    def build(guard, args, state):
        dtype = guard._dtype(np.dtype, *args)
        guard._build_dtype(dtype, state)
        return dtype

    guard = NumpyGuard(anypickle.safe._loads.DEFAULT_LIMITS)
    state = np.dtype("f8").__reduce__()[2]
    for _ in range(2):  # the second time from the cache
        build(guard, ("f8", False, True), state)
    for bad in [state[:7] + (False,), (3.0,) + state[1:], state[:5] + (-1.0,) + state[6:]]:
        assert bad == state
        with pytest.raises(UnsafePickleError):
            build(guard, ("f8", False, True), bad)
    structured = np.dtype([("a", "<i4"), ("b", "<f8")])
    spec_args, spec_state = structured.__reduce__()[1:]

    def fields_state(field_dtypes):
        fields = {n: (field_dtypes[n], structured.fields[n][1]) for n in ("a", "b")}
        return spec_state[:4] + (fields,) + spec_state[5:]

    sealed = {n: build(guard, structured.fields[n][0].__reduce__()[1], structured.fields[n][0].__reduce__()[2])
              for n in ("a", "b")}
    for _ in range(2):
        build(guard, spec_args, fields_state(sealed))
    # the same state but field b a 16-byte U4 at offset 4 of a 12-byte struct: refused, not cached
    wide = build(guard, np.dtype("<U4").__reduce__()[1], np.dtype("<U4").__reduce__()[2])
    with pytest.raises(UnsafePickleError):
        build(guard, spec_args, fields_state(dict(sealed, b=wide)))
