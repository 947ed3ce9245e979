"""The C fast path of ``anypickle.loads`` (``_opwalk.FastLoads`` and ``load_pickle_envelope``).

It must be invisible: for every input and every call shape, ``anypickle.loads`` gives what the
Python ``loads`` (its ``__wrapped__``) gives, and what the pure-Python first step (used when the
extension is not built) gives. The same result, or the same error type and message.
"""

from __future__ import annotations

import datetime
import gc
import inspect
import os
import pickle
import random
import tracemalloc
import zlib
from fractions import Fraction

import cloudpickle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anypickle
from anypickle import _api
from anypickle import _envelope as env
from anypickle.analysis._modules import ModulePolicy
from anypickle.errors import AnyPickleError, DecodeError, UnsafePickleError

try:
    from anypickle.safe import _opwalk
except ImportError:  # built optionally (setup.py)
    _opwalk = None

needs_extension = pytest.mark.skipif(_opwalk is None, reason="the optional C extension anypickle.safe._opwalk was not built")


def test_loads_has_the_fast_path_exactly_when_the_extension_is_built():
    if os.environ.get("CI") == "true":
        assert _opwalk is not None, "CI must build anypickle.safe._opwalk (pip install -e .)"
    assert isinstance(anypickle.loads, _opwalk.FastLoads) if _opwalk else inspect.isfunction(anypickle.loads)


@needs_extension
def test_the_c_header_is_the_envelope_modules_header():
    assert _opwalk.ENVELOPE_PREFIX == env._PICKLE_PREFIX
    for n in (0, 10, 4000, 4100, 1 << 20):  # payloads under and over 4 KiB (copied / viewed)
        for safe in (False, True):
            assert _opwalk.load_pickle_envelope(_envelope(pickle.dumps(bytes(n), 5)), safe) == bytes(n)
            assert _opwalk.load_pickle_envelope(anypickle.dumps(bytes(n)), safe) == bytes(n)


@needs_extension
def test_it_looks_like_the_python_function():
    python_loads = anypickle.loads.__wrapped__
    assert inspect.isfunction(python_loads)
    assert inspect.signature(anypickle.loads) == inspect.signature(python_loads)
    assert anypickle.loads.__doc__ == python_loads.__doc__ and "safe=True" in anypickle.loads.__doc__
    assert (anypickle.loads.__name__, anypickle.loads.__module__) == ("loads", "anypickle._api")
    assert "loads" in repr(anypickle.loads)


@needs_extension
def test_it_pickles_by_reference_as_functions_do():
    """Schedulers ship anypickle.loads itself inside tasks."""
    for module in (pickle, cloudpickle):
        data = module.dumps(anypickle.loads)
        assert b"anypickle._api" in data and len(data) < 100
        assert pickle.loads(data) is anypickle.loads
    assert anypickle.loads(anypickle.dumps(anypickle.loads)) is anypickle.loads


# -- every input, every call shape: the same outcome as the Python loads ---------------------------


def _outcome(call):
    try:
        value = call()
    except BaseException as exc:  # noqa: BLE001 - the outcome is what is compared
        return ("raised", type(exc), str(exc))
    if inspect.isfunction(value):  # a loaded function is a new object each time: compare its result
        return ("ok", "function", value())
    if isinstance(value, list) and value and all(inspect.isfunction(v) for v in value):
        return ("ok", "functions", [v() for v in value])
    return ("ok", type(value), value)


def _envelope(payload: bytes) -> bytes:
    return env.pickle_header(len(payload)) + payload


def _python_first_step(monkeypatch):
    monkeypatch.setattr(_api, "_load_pickle_envelope", _api._load_pickle_envelope_py)
    monkeypatch.setattr(_api, "_MISS", object())


class Reduces:
    def __reduce__(self):
        return (Fraction, (1, 3))


_OBJECTS = [
    {"id": 42, "name": "task", "ok": True, "tags": ["a", "b"]},
    list(range(5000)),  # payload over 4 KiB: loaded from a view, not a copy
    b"x" * 10_000,
    [datetime.date(2026, 11, 21)] * 3,  # not plain data: safe=True takes the long way
    Reduces(),
    None,
    ({}, [], ()),
]


def _inputs():
    rng = random.Random(5)
    for obj in _OBJECTS:
        data = anypickle.dumps(obj)
        yield data
        yield data[:-1]  # truncated payload: length field no longer matches
        yield data + b"\x00"  # trailing byte
        yield bytearray(data)
        yield memoryview(data)
        for _ in range(6):  # one header or payload byte flipped
            i = rng.randrange(min(len(data), 40))
            yield data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    yield env.pickle_header(0)  # a valid header with an empty payload
    yield _envelope(b"K\x01.")  # no PROTO opcode: still plain data
    yield _envelope(b"}K\x01s.")  # sound walk, plain opcodes, pickle.loads fails
    yield _envelope(b"\x80\x04cnosuchmodule\nthing\n.")  # a module the receiver lacks
    yield anypickle.dumps(lambda: 1)  # marshal envelope: not the fast path's header
    yield anypickle.dumps({"a": 1}, key=b"k" * 32)  # signed
    yield pickle.dumps({"a": 1})  # a plain pickle, no envelope
    yield b""
    yield b"APKL"


def _reheader(data: bytes, **changes) -> bytes:
    """``data`` with its envelope header rebuilt (CRC included) with some fields changed."""
    h = env.parse(memoryview(data))
    fields = {"backend": h.backend, "flags": h.flags & ~(env.LIBRARY | env.SOURCE), "library_version": h.library_version,
              "source": h.source or b"", "payload": bytes(data[h.payload_offset:])}
    fields.update(changes)
    payload = fields.pop("payload")
    fields["payload_length"] = len(payload)
    return env.build_header(**fields) + payload


def _patch_header(data: bytes, old: bytes, new: bytes) -> bytes:
    """``data`` with ``old`` replaced by ``new`` (same length) in its header, CRC recomputed."""
    end = env.parse(memoryview(data)).header_length - 4
    at = data.index(old, 0, end)
    head = data[:at] + new + data[at + len(old):end]
    return head + env._CRC.pack(zlib.crc32(head)) + data[end + 4:]


def _other_interpreter(data: bytes) -> bytes:
    """``data`` as if written by another CPython (another bytecode magic), CRC valid."""
    packed = env._CURRENT_PACKED
    return _patch_header(data, packed, packed[:-4] + bytes([packed[-4] ^ 1]) + packed[-3:])


def _missing_module(backend: str = "auto") -> bytes:
    """A function payload whose load fails: it refers to a module the receiver lacks."""
    import json
    import marshal

    from anypickle.backends._marshal import encode_function

    def uses_json():
        return json.dumps

    data = anypickle.dumps(uses_json, backend=backend)
    if backend == "cloudpickle":
        return _reheader(data, payload=b"\x80\x04cnosuchmodule_for_fast_loads\nthing\n.")
    record = list(encode_function(uses_json, ModulePolicy()))
    record[9] = {"json": ("m", "nosuchmodule_for_fast_loads")}
    return _reheader(data, payload=marshal.dumps(tuple(record), 2))


_BASE = 10


def _code_payloads():
    """Function payloads, the C code path's input: marshal, cloudpickle (auto and forced), dill."""
    offset = 5
    yield anypickle.dumps(lambda: _BASE + 1)  # marshal, with its SOURCE lines (this file exists)
    yield anypickle.dumps(lambda: offset + _BASE)  # marshal, a closure
    yield anypickle.dumps(lambda: offset, backend="cloudpickle")  # raw cloudpickle, LIBRARY section
    yield anypickle.dumps([lambda i=i: i + offset for i in range(400)])  # auto: cloudpickle+, over 4 KiB
    yield anypickle.dumps(lambda: 3, backend="dill")  # not the C path's: the Python loads takes it


def _code_inputs():
    rng = random.Random(16)
    for data in _code_payloads():
        yield data
        yield data[:-1]
        yield data + b"\x00"
        yield bytearray(data)
        h = env.parse(memoryview(data))
        for _ in range(12):  # one header byte flipped: a DecodeError, never a load of a bad header
            i = rng.randrange(h.header_length)
            yield data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
        yield _other_interpreter(data)  # InterpreterMismatchError, nothing loaded
        if h.backend is anypickle.Backend.CLOUDPICKLE:
            yield _reheader(data, library_version="3.0.99")  # loads; only failures mention the skew
            not_ascii = _reheader(data, library_version="3.0.99")
            yield _patch_header(not_ascii, b"3.0.99", b"3.0.\xe9\xe9")  # the Python parse refuses it
            yield _reheader(data, payload=bytes(data[env.parse(memoryview(data)).payload_offset:])[:-1])  # cut
        yield _reheader(data, flags=h.flags | env.CONTEXT)  # a context payload: needs context=
        yield _reheader(data, flags=h.flags & ~env.BYTECODE)  # no interpreter section: the Python parse
        yield _reheader(data, source=b"\xff\x00garbage")  # a malformed SOURCE block is ignored
    # Loads that fail inside the backend: the same DecodeError (with the skew, for cloudpickle).
    yield _missing_module()
    broken = _missing_module("cloudpickle")
    yield broken
    yield _reheader(broken, library_version="3.0.99")
    yield _reheader(anypickle.dumps(lambda: 1), payload=b"\x00garbage")  # not a marshal record


_INPUTS = list(_inputs()) + list(_code_inputs())
_SHAPES = [
    {},
    {"safe": True},
    {"safe": False},
    {"safe": 1},
    {"safe": True, "allow": ["fractions.Fraction"]},
    {"key": None},
    {"safe": True, "key": None, "buffers": None, "context": None},
]


@needs_extension
@pytest.mark.parametrize("shape", _SHAPES, ids=[",".join(s) or "positional" for s in _SHAPES])
def test_same_outcome_as_the_python_loads(shape, monkeypatch):
    python_loads = anypickle.loads.__wrapped__
    for data in _INPUTS:
        fast = _outcome(lambda: anypickle.loads(data, **shape))
        assert fast == _outcome(lambda: python_loads(data, **shape)), data
        with monkeypatch.context() as m:
            _python_first_step(m)
            assert fast == _outcome(lambda: python_loads(data, **shape)), data


@pytest.mark.parametrize("override", [None, True, False])
def test_a_safe_decoder_answers_as_loads_with_safe(override):
    """Decoder(safe=True).decode binds safe=True in C (_api._safe_decode): the same outcome as
    loads(data, safe=True) on every input, errors included; a call's own safe= still wins."""
    decode = anypickle.Decoder(safe=True).decode
    assert decode is anypickle.Decoder(safe=True).decode  # built once
    extra = {} if override is None else {"safe": override}
    for data in _INPUTS:
        expected = _outcome(lambda: anypickle.loads(data, **{"safe": True, **extra}))
        assert _outcome(lambda: decode(data, **extra)) == expected, data
        assert _outcome(lambda: decode(bytearray(data), **extra)) == expected, data


@needs_extension
@given(st.binary(max_size=40), st.booleans())
@settings(max_examples=300, deadline=None)
def test_random_bytes_after_a_valid_header(tail, safe):
    data = env.pickle_header(len(tail)) + tail
    fast = _outcome(lambda: anypickle.loads(data, safe=safe))
    assert fast == _outcome(lambda: anypickle.loads.__wrapped__(data, safe=safe))
    assert fast[0] == "ok" or issubclass(fast[1], AnyPickleError)


@needs_extension
def test_function_payloads_take_the_c_path(monkeypatch):
    """Unsigned function payloads of marshal and cloudpickle never enter the Python loads; others do."""
    entered = []
    fast = _opwalk.FastLoads(lambda *a, **k: entered.append(1) or _api.loads.__wrapped__(*a, **k),
                             _api._raise_pickle_error, _CODE)
    offset = 4
    for data in (anypickle.dumps(lambda: offset), anypickle.dumps(lambda: offset, backend="cloudpickle"),
                 anypickle.dumps([lambda: offset] * 2)):
        loaded = fast(data)
        assert (loaded() if callable(loaded) else [f() for f in loaded]) in (4, [4, 4])
        assert fast(data, safe=False) is not None
    assert entered == []
    for data, shape in ((anypickle.dumps(lambda: offset, backend="dill"), {}),
                        (anypickle.dumps(lambda: offset), {"safe": True}),
                        (anypickle.dumps(lambda: offset, key=b"k" * 32), {"key": b"k" * 32}),
                        (_other_interpreter(anypickle.dumps(lambda: offset)), {})):
        try:
            fast(data, **shape)
        except AnyPickleError:
            pass
        assert entered, (data, shape)
        entered.clear()


_CODE = (env._CURRENT_PACKED, _api._code_loader_for, _api._lines.register, _api._raise_code_error)


@needs_extension
def test_safe_envelopes_beyond_plain_data_take_the_c_path():
    """loads(<unsigned pickle envelope>, safe=True) of data naming globals (datetime, Decimal, numpy,
    a large list) is answered by safe loading's C first steps (_opwalk.safe_fast) without entering
    the Python loads; a refused payload enters it, and gets its error there."""
    import decimal

    import numpy as np

    import anypickle.safe._loads  # noqa: F401 - configures safe_fast, as the first safe load does

    entered = []
    fast = _opwalk.FastLoads(lambda *a, **k: entered.append(1) or _api.loads.__wrapped__(*a, **k),
                             _api._raise_pickle_error, _CODE)
    start = datetime.datetime(2024, 1, 1)
    for obj in ([datetime.date(2026, 1, 1)], {"p": decimal.Decimal("1.5")}, np.arange(4.0),
                [start + datetime.timedelta(seconds=i) for i in range(1000)]):
        got = fast(anypickle.dumps(obj), safe=True)
        assert type(got) is type(obj) and pickle.dumps(got) == pickle.dumps(obj)
    assert entered == []
    with pytest.raises(UnsafePickleError):
        fast(_envelope(pickle.dumps(os.getcwd)), safe=True)  # a global outside the allowlist
    assert entered == [1]



def test_a_failed_function_load_names_module_and_skew():
    with pytest.raises(DecodeError, match="module 'nosuchmodule_for_fast_loads'") as info:
        anypickle.loads(_missing_module())
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    skewed = _reheader(_missing_module("cloudpickle"), library_version="3.0.99")
    with pytest.raises(DecodeError, match="version skew: written by cloudpickle 3.0.99"):
        anypickle.loads(skewed)


def test_function_payloads_bring_their_source_lines():
    import linecache

    data = anypickle.dumps(lambda: 1 / 0)  # noqa: E731  # the line a traceback must show
    assert env.parse(memoryview(data)).source
    saved = linecache.cache.pop(__file__, None)
    try:
        linecache.cache.pop(__file__, None)
        func = anypickle.loads(data)
        assert "1 / 0" in linecache.getline(__file__, func.__code__.co_firstlineno)
    finally:
        linecache.cache.pop(__file__, None)
        if saved is not None:
            linecache.cache[__file__] = saved


def test_errors_of_pickle_loads_become_anypickle_errors():
    data = _envelope(b"\x80\x04cnosuchmodule\nthing\n.")
    with pytest.raises(DecodeError, match="module 'nosuchmodule'") as info:
        anypickle.loads(data)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    with pytest.raises(UnsafePickleError, match="nosuchmodule.thing"):
        anypickle.loads(data, safe=True)


def raise_keyboard_interrupt():
    raise KeyboardInterrupt


def raise_decode_error():
    raise DecodeError("raised by the payload itself")


class _Raises:
    def __init__(self, func):
        self.func = func

    def __reduce__(self):
        return (self.func, ())


def test_anypickle_errors_and_keyboard_interrupts_pass_through_unwrapped():
    with pytest.raises(DecodeError, match="^raised by the payload itself$"):
        anypickle.loads(anypickle.dumps(_Raises(raise_decode_error)))
    with pytest.raises(KeyboardInterrupt):
        anypickle.loads(anypickle.dumps(_Raises(raise_keyboard_interrupt)))


@needs_extension
def test_the_header_cache_never_accepts_a_header_it_did_not_check():
    good = anypickle.dumps({"a": 1})
    assert anypickle.loads(good) == {"a": 1}  # now the cached header
    bad_crc = good[:16] + bytes([good[16] ^ 1]) + good[17:]
    with pytest.raises(DecodeError, match="CRC|checksum|corrupt"):
        anypickle.loads(bad_crc)
    assert _opwalk.load_pickle_envelope(good[:-1], False) is _opwalk.MISS  # same header, short payload
    assert _opwalk.load_pickle_envelope(good + b".", False) is _opwalk.MISS
    assert anypickle.loads(good) == {"a": 1}


@needs_extension
def test_the_code_header_cache_never_accepts_a_header_it_did_not_check():
    offset = 2
    good = anypickle.dumps(lambda: offset, backend="cloudpickle")
    assert anypickle.loads(good)() == 2  # now the cached code header
    end = env.parse(memoryview(good)).header_length
    for i in range(end):  # every header byte flipped, the same length: refused, never loaded
        bad = good[:i] + bytes([good[i] ^ 0x10]) + good[i + 1:]
        with pytest.raises(AnyPickleError):
            anypickle.loads(bad)
        assert anypickle.loads(good)() == 2
    with pytest.raises(DecodeError):
        anypickle.loads(good[:-1])


@needs_extension
@pytest.mark.parametrize("safe", [False, True])
def test_no_leak_on_any_path(safe):
    """Loaded, missed (datetime under safe), failed and refused calls leave no memory behind."""
    calls = [
        anypickle.dumps({"a": [1, 2, "x" * 50]}),
        anypickle.dumps(list(range(2000))),
        anypickle.dumps([datetime.date(2026, 1, 1)]),
        anypickle.dumps(lambda: 1),
        anypickle.dumps(lambda: 1, backend="cloudpickle"),
        _missing_module(),
        _missing_module("cloudpickle"),
        _envelope(b"}K\x01s."),
        b"APKL\x01\x01\x00\x00" + b"\x00" * 12,
    ]

    def run():
        for data in calls:
            try:
                anypickle.loads(data, safe=safe)
            except AnyPickleError:
                pass

    for _ in range(200):
        run()
    gc.collect()  # errors' tracebacks are cycles
    # Two windows of 2000 rounds: a leak grows in both, while a one-off resize of some process-wide
    # table (seen: a 1.9 MB block in pathlib after other test files ran) lands in one window only.
    tracemalloc.start()
    grown = []
    for _window in range(2):
        before = tracemalloc.take_snapshot()
        for _ in range(2000):
            run()
        gc.collect()
        after = tracemalloc.take_snapshot()
        grown.append(sum(stat.size_diff for stat in after.compare_to(before, "filename") if stat.size_diff > 0))
    tracemalloc.stop()
    assert min(grown) < 64 * 1024, f"{grown} bytes kept after each window of 2000 rounds"
