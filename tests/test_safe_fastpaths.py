"""The shortcuts of safe loading's hot path against the longer paths they stand in for (issue 16):

- ``safe_loads`` called with its defaults (no ``limits``, no ``allow``, bytes) takes an entry without
  calls: it must answer exactly what the same call with the defaults spelled out answers;
- ``anypickle.loads(data, safe=True)`` hands an unsigned stdlib-pickle envelope's payload, or a pickle
  stream without envelope, to safe loading without parsing a Header or sniffing: it must answer what
  the full path answers;
- the numpy guard keys a plain dtype state (the types numpy writes) by ``(args, state)`` alone: it
  must accept and refuse exactly what verifying every state afresh accepts and refuses, warm cache
  or cold, and a state that equals a verified one in value but not in type is not taken for it;
- the guard tests "a dtype this stream sealed" inline: an unsealed dtype, ``None`` included, is
  refused by ``scalar``, ``_frombuffer`` and an array's BUILD;
- ``_opwalk.safe_fast``, safe_loads' first steps for bytes with the defaults in one C call (plain
  data to pickle.loads, small streams to the planned load, others to the inert-only load and then
  the planned one), answers what safe_loads' usual way answers, or MISS; never an object for a
  stream that way refuses;
- the planned load's C BUILD of a dtype (``_planload.c``) accepts exactly the states the numpy
  guard, verifying afresh, accepts: it keys plain states as the guard does, in C.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import anypickle
from anypickle.errors import AnyPickleError, UnsafePickleError
from anypickle.safe import Limits, safe_loads
from anypickle.safe import _numpy_guard
from anypickle.safe._limits import DEFAULT_LIMITS
from anypickle.safe._numpy_guard import NumpyGuard

_core = np._core if hasattr(np, "_core") else np.core

SAMPLES = [
    {"a": 1, "b": [1.5, None, "x"]},
    __import__("datetime").datetime(2024, 5, 17, 9, 30),
    __import__("decimal").Decimal("19.99"),
    range(3, 30, 4),
    bytearray(b"abc" * 9),
    np.arange(6, dtype=np.int32).reshape(2, 3),
    np.float64(1.5),
    np.zeros(2, dtype=[("a", "<i4"), ("b", "U2")]),
]


def _outcome(call):
    try:
        value = call()
    except AnyPickleError as exc:
        return ("error", type(exc), str(exc), getattr(exc, "limit", None))
    return ("ok", type(value), pickle.dumps(value, 4))


def _refused_streams():
    class Call:
        def __init__(self, func, args):
            self.func, self.args = func, args

        def __reduce__(self):
            return self.func, self.args

    return [
        pickle.dumps(Call(eval, ("1",)), 2),
        pickle.dumps(Call(bytes, (10**12,)), 2),
        pickle.dumps(Call(_core.multiarray.scalar, (None, b"\0" * 8)), 4),
        b"\x80\x04K\x01.trailing",
    ]


@pytest.mark.parametrize("proto", range(6))
def test_default_entry_answers_as_the_defaults_spelled_out(proto):
    streams = [pickle.dumps(obj, proto) for obj in SAMPLES] + _refused_streams()
    for data in streams:
        fast = _outcome(lambda: safe_loads(data))
        assert fast == _outcome(lambda: safe_loads(data, limits=Limits(), allow=[]))
        assert fast == _outcome(lambda: safe_loads(bytearray(data), limits=DEFAULT_LIMITS))
        assert fast == _outcome(lambda: safe_loads(memoryview(data), allow=()))
        assert fast == _outcome(lambda: anypickle.safe_loads(data, allow=list()))


def _envelope_with(payload: bytes) -> bytes:
    """An unsigned stdlib-pickle envelope around any payload (the header anypickle writes for it)."""
    from anypickle import _envelope as env

    return env.pickle_header(len(payload)) + payload


@pytest.mark.parametrize("proto", [2, 5])
def test_envelope_shortcut_answers_as_the_full_parse(proto):
    envelopes = [anypickle.dumps(obj) for obj in SAMPLES]
    envelopes += [_envelope_with(pickle.dumps(obj, proto)) for obj in SAMPLES]
    envelopes += [_envelope_with(data) for data in _refused_streams()]
    envelopes += [anypickle.dumps(lambda x: x + 1), anypickle.dumps(SAMPLES[0], key=b"k" * 32)]
    shortcut_taken = 0
    for data in envelopes:
        fast = _outcome(lambda: anypickle.loads(data, safe=True))
        assert fast == _outcome(lambda: anypickle.loads(data, safe=True, limits=DEFAULT_LIMITS))  # full parse
        assert fast == _outcome(lambda: anypickle.loads(bytearray(data), safe=True))
        from anypickle import _envelope as env

        shortcut_taken += env.pickle_payload(data) is not None
    assert shortcut_taken >= len(SAMPLES) + 4


@pytest.mark.parametrize("proto", range(6))
def test_raw_stream_shortcut_answers_as_the_full_path(proto):
    """anypickle.loads(<pickle bytes>, safe=True) skips the envelope sniffing: same answers, errors
    included, as the path a bytearray or an explicit limits= takes."""
    streams = [pickle.dumps(obj, proto) for obj in SAMPLES] + _refused_streams()
    streams += [b"", b"\x00abc", b"\x80\x09K\x01.", b"\x80", b"APKL\x00\x01junk", b"N.", b"(lp0\n."]
    for data in streams:
        fast = _outcome(lambda: anypickle.loads(data, safe=True))
        assert fast == _outcome(lambda: anypickle.loads(data, safe=True, limits=DEFAULT_LIMITS)), data[:20]
        assert fast == _outcome(lambda: anypickle.loads(bytearray(data), safe=True)), data[:20]


PLAIN_DTYPES = ["f8", ">f8", "i1", "<u2", ">i8", "?", "c16", "S3", "U5", "V4", "f2", "g", "O", "i4",
                "M8[D]", "m8[s]", ">M8[ns]", "M8", "m8[25us]"]


def _mutations(state: tuple):
    """Variants of a plain dtype state: each value replaced by one of equal value and another type,
    and by other values of the same type."""
    out = []
    for i, value in enumerate(state):
        for other in (True, False, 1.0, float(value) if type(value) is int else None, value + 1 if type(value) is int else None,
                      "<", ">", "|", "=", b"<", None, 0):
            if other is value or (type(other) is type(value) and other == value):
                continue
            out.append(state[:i] + (other,) + state[i + 1:])
    out.append(state + (None,))
    out.append(state[:7])
    if len(state) == 9:  # a datetime's metadata (None, (unit, num, den, events)): its parts too
        meta = state[8]
        out += [state[:8] + (m,) for m in ((0, meta[1]), (None, list(meta[1])), (None, meta[1][:3]), (None,), meta[1])]
        for i, value in enumerate(meta[1]):
            for other in (True, False, 1.0, value.decode() if type(value) is bytes else None, b"s", b"generic", 2, 0):
                if other is value or (type(other) is type(value) and other == value):
                    continue
                out.append(state[:8] + ((None, meta[1][:i] + (other,) + meta[1][i + 1:]),))
    return out


def _typed_equal(a: object, b: object) -> bool:
    """Equal, and of the same types all the way down (tuples looked into)."""
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(_typed_equal(x, y) for x, y in zip(a, b))
    return a == b


def _fresh_verdict(args: tuple, state: tuple) -> str:
    """The long path: numpy's own __reduce__ compared afresh, nothing cached; then the state applied
    (numpy itself raises on a few states the comparison lets through, such as a datetime unit count
    of 0: the answer is then that exception, on both paths)."""
    guard = NumpyGuard(DEFAULT_LIMITS)
    try:
        guard._verify(args, state, None)
        np.dtype(*args).__setstate__(state)
    except UnsafePickleError:
        return "refused"
    except Exception as exc:  # noqa: BLE001 - numpy's own error, compared by type
        return type(exc).__name__
    return "ok"


def _guard_verdict(args: tuple, state: tuple) -> str:
    guard = NumpyGuard(DEFAULT_LIMITS)
    try:
        dtype = guard._dtype(np.dtype, *args)
        guard._build_dtype(dtype, state)
    except UnsafePickleError:
        return "refused"
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__
    finally:
        guard.close()
    return "ok"


@pytest.mark.parametrize("spec", PLAIN_DTYPES)
def test_plain_dtype_key_agrees_with_verifying_afresh(spec, monkeypatch):
    monkeypatch.setattr(_numpy_guard, "_VERIFIED", {})
    _cls, args, state = np.dtype(spec).__reduce__()
    assert _guard_verdict(args, state) == _fresh_verdict(args, state) == "ok"  # numpy's own state: cached
    assert (args, state) in _numpy_guard._VERIFIED
    checked = 0
    for variant in _mutations(state):
        expected = _fresh_verdict(args, variant)
        for _ in range(2):  # cold, then with whatever the first call cached
            assert _guard_verdict(args, variant) == expected, (spec, variant)
        checked += 1
        if type(variant) is tuple and variant == state and not _typed_equal(variant, state):
            assert expected != "ok", ("a state equal in value but not in type is not numpy's", variant)
    assert checked > 20


def test_cached_plain_state_is_not_taken_for_an_equal_one_of_other_types(monkeypatch):
    monkeypatch.setattr(_numpy_guard, "_VERIFIED", {})
    _cls, args, state = np.dtype("i4").__reduce__()
    assert _guard_verdict(args, state) == "ok"
    flags_as_bool = state[:7] + (bool(state[7]),)  # 0 == False
    assert flags_as_bool == state
    assert _guard_verdict(args, flags_as_bool) == "refused"


@pytest.mark.parametrize("dtype", [None, np.dtype("f8"), "f8"])
def test_unsealed_dtypes_are_refused(dtype):
    guard = NumpyGuard(DEFAULT_LIMITS)
    with pytest.raises(UnsafePickleError, match="not a dtype this stream made"):
        guard._scalar(_core.multiarray.scalar, dtype, b"\0" * 8)
    with pytest.raises(UnsafePickleError, match="not a dtype this stream made"):
        guard._frombuffer(np.frombuffer, bytearray(8), dtype, (1,), "C")
    array = guard._reconstruct(_core.multiarray._reconstruct, np.ndarray, (0,), b"b")
    with pytest.raises(UnsafePickleError, match="not a dtype this stream made"):
        guard._build_array(array, (1, (1,), dtype, False, b"\0" * 8))


@pytest.mark.parametrize("proto", range(6))
def test_scalar_of_none_is_refused_by_safe_loads(proto):
    data = _refused_streams()[2] if proto == 4 else pickle.dumps(
        type("C", (), {"__reduce__": lambda self: (_core.multiarray.scalar, (None, b"\0" * 8))})(), proto)
    with pytest.raises(UnsafePickleError):
        safe_loads(data)
    assert anypickle.safe._loads._planned_load(
        data, anypickle.safe._loads.build_allowlist(()), DEFAULT_LIMITS,
        anypickle.safe._loads._safe_plan(data, *DEFAULT_LIMITS.c_args())) is anypickle.safe._loads._MISS


def _usual_way(data, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(anypickle.safe._loads, "_safe_fast", None)
        return _outcome(lambda: safe_loads(data))


@pytest.mark.parametrize("proto", range(6))
def test_safe_fast_answers_as_the_usual_way(proto, monkeypatch):
    from anypickle.safe._loads import _MISS, _safe_fast

    streams = [pickle.dumps(obj, proto) for obj in SAMPLES] + [b"(lp0\n."]
    for data in streams:
        got = _safe_fast(data)
        assert got is not _MISS, data[:40]  # every sample is taken
        assert _outcome(lambda: got) == _usual_way(data, monkeypatch)
    for data in _refused_streams() + [b"", b"\x80\x09K\x01.", b"(lp0\n", b"\x80\x04K\x01.."]:
        assert _safe_fast(data) is _MISS, data[:40]
        assert _usual_way(data, monkeypatch)[0] == "error"


def test_safe_fast_misses_what_it_does_not_take(monkeypatch):
    import copyreg
    import datetime

    from anypickle.safe._loads import _MISS, _PLAN_FIRST, _PLAN_MAX, _safe_fast

    data = pickle.dumps(SAMPLES[1], 4)
    assert _safe_fast(data) == SAMPLES[1]
    assert _safe_fast(bytearray(data)) is _MISS  # bytes only (safe_loads makes bytes of the others first)
    copyreg.add_extension("datetime", "datetime", 240001)  # EXT codes resolve without find_class
    try:
        assert _safe_fast(data) is _MISS
        assert safe_loads(data) == SAMPLES[1]
    finally:
        copyreg.remove_extension("datetime", "datetime", 240001)
    assert _safe_fast(data) == SAMPLES[1]
    when = [datetime.datetime(2024, 1, 1, 0, 0, i % 60) for i in range(800)]
    for proto in range(6):  # larger streams: the inert-only load, then (a range) the planned one
        for obj in (when, when + [range(3)], when + [np.arange(3.0)]):
            large = pickle.dumps(obj, proto)
            assert _PLAN_FIRST < len(large) <= _PLAN_MAX
            got = _safe_fast(large)
            assert got is not _MISS, proto
            assert _outcome(lambda: got) == _usual_way(large, monkeypatch)
    trailing = pickle.dumps(when, 4) + b"."
    assert _safe_fast(trailing) is _MISS and _usual_way(trailing, monkeypatch)[0] == "error"
    start = datetime.datetime(2024, 1, 1)
    huge = pickle.dumps([start + datetime.timedelta(seconds=i) for i in range(60_000)] + [range(3)], 4)
    # over _PLAN_MAX: no planned load
    assert len(huge) > _PLAN_MAX and _safe_fast(huge) is _MISS
    assert _outcome(lambda: safe_loads(huge))[0] == "ok"


def test_inert_only_load_in_c_resolves_inert_globals_only(monkeypatch):
    """The C inert-only load hands a stream naming a non-inert global on (MISS, then the usual way),
    and gives _codecs.encode's substitute, as the Python one does."""
    from anypickle.safe._loads import _MISS, _PLAN_MAX, _safe_fast

    pad = ["x" * 40] * 300  # past _PLAN_FIRST: the inert-only load goes first
    for proto in (0, 2):
        data = pickle.dumps(pad + [b"\x00\xff"], proto)  # protocols 0-2 write bytes as encode(str, 'latin1')
        assert _outcome(lambda: _safe_fast(data)) == _usual_way(data, monkeypatch)
    evil = pickle.dumps(pad + [__import__("collections").Counter("ab")], 4)  # Counter is not inert
    assert len(evil) < _PLAN_MAX
    got = _safe_fast(evil)
    assert got is _MISS or _outcome(lambda: got) == _usual_way(evil, monkeypatch)


class _DtypeWithState:
    """Pickles as ``numpy.dtype(*args)`` then a BUILD of ``state``: REDUCE, then BUILD."""

    def __init__(self, args: tuple, state: tuple) -> None:
        self.args, self.state = args, state

    def __reduce__(self):
        return np.dtype, self.args, self.state


def _c_build_verdict(args: tuple, state: tuple, proto: int) -> str:
    from anypickle.safe._loads import _MISS, _safe_fast

    data = pickle.dumps([_DtypeWithState(args, state)], proto)
    got = _safe_fast(data)
    if got is _MISS:
        return "refused"
    assert type(got) is list and isinstance(got[0], np.dtype)
    return "ok"


@pytest.mark.parametrize("spec", PLAIN_DTYPES)
def test_c_build_of_a_dtype_agrees_with_verifying_afresh(spec):
    _cls, args, state = np.dtype(spec).__reduce__()
    _numpy_guard._VERIFIED.clear()  # cold (the C BUILD shares this dict with the guard)
    assert _c_build_verdict(args, state, 4) == _fresh_verdict(args, state) == "ok"
    assert (args, state) in _numpy_guard._VERIFIED
    checked = 0
    for variant in _mutations(state):
        expected = "ok" if _fresh_verdict(args, variant) == "ok" else "refused"
        for proto in (2, 4, 2):  # cold, then with whatever the first call cached
            assert _c_build_verdict(args, variant, proto) == expected, (spec, variant, proto)
        checked += 1
    assert checked > 20


def test_static_first_mode_skips_the_c_first_steps(monkeypatch):
    """C_FIRST = False (the static-first path the differential tests and bench_safe compare against)
    must not take safe_fast either: otherwise they would compare the C path with itself."""
    monkeypatch.setattr(anypickle.safe._loads, "C_FIRST", False)
    monkeypatch.setattr(anypickle.safe._loads, "_safe_fast", lambda data: pytest.fail("safe_fast ran"))
    for obj in SAMPLES:
        assert _outcome(lambda: safe_loads(pickle.dumps(obj, 4)))[0] == "ok"
