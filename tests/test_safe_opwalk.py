"""The C helper anypickle.safe._opwalk.memo_check, which makes safe loading's C-first path safe.

It must agree with an independent walker built from pickletools' opcode table (same verdict, same
position), with the static scanner's memo findings, and it must stop the streams that make CPython's
C unpickler allocate gigabytes (gh-115952) or parse another stream than a linear walk (an argument
straddling a FRAME's end), before the C unpickler runs.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anypickle.safe._loads
from anypickle.safe._scanner._machine import simulate
from anypickle.lab.runner import run_script

try:
    from anypickle.safe._opwalk import memo_check
except ImportError:  # built optionally: without it safe loading runs the static pass first
    memo_check = None

needs_extension = pytest.mark.skipif(memo_check is None, reason="the optional C extension anypickle.safe._opwalk was not built")


def test_c_first_is_on_exactly_when_the_extension_is_built():
    """C-first is the default iff the extension imports; under CI (CI=true) it must have been built."""
    assert anypickle.safe._loads.C_FIRST is (memo_check is not None)
    if os.environ.get("CI") == "true":
        assert memo_check is not None, "CI must build anypickle.safe._opwalk (pip install -e .)"
        assert anypickle.safe._loads.C_FIRST


# -- an independent reference walker, from pickletools' opcode table ---------------------------------

_TABLE = {ord(op.code): op for op in pickletools.opcodes}
_COUNTED = {
    pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
    pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
    pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
    pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
}


def reference(data: bytes) -> int | None:
    """Position of the first problem memo_check must report, or None (see _opwalk.c's rules)."""
    n, pos, frame_end, count = len(data), 0, None, 0
    while True:
        if frame_end is not None and pos == frame_end:
            frame_end = None
        limit = n if frame_end is None else frame_end
        if pos >= limit:
            return pos
        at, op = pos, _TABLE.get(data[pos])
        pos += 1
        if op is None:
            return at
        if op.name == "STOP":
            return None if pos == n else pos
        if op.name == "MEMOIZE":
            count += 1
            continue
        arg = op.arg
        if arg is None:
            continue
        if op.name == "FRAME":
            if frame_end is not None or pos + 8 > limit:
                return at
            size = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
            if pos + size > n:
                return at
            frame_end = pos + size
            continue
        if arg.n == pickletools.UP_TO_NEWLINE:
            for _ in range(2 if arg.name == "stringnl_noescape_pair" else 1):
                end = data.find(b"\n", pos, limit)
                if end < 0:
                    return at
                line, pos = data[pos:end], end + 1
            if op.name == "PUT":
                if not line or not all(48 <= c <= 57 for c in line) or int(line) != count:
                    return at
                count += 1
            if op.name == "GET" and (not line or not all(48 <= c <= 57 for c in line)):
                return at  # the C walk refuses an empty or non-decimal GET index (the unpickler fails there)
            continue
        if arg.n in _COUNTED:
            width, signed = _COUNTED[arg.n]
            if pos + width > limit:
                return at
            size = int.from_bytes(data[pos : pos + width], "little", signed=signed)
            if size < 0 or pos + width + size > limit:
                return at
            pos += width + size
            continue
        if pos + arg.n > limit:
            return at
        if op.name == "PROTO" and data[pos] > pickle.HIGHEST_PROTOCOL:
            return at
        if op.name in ("BINPUT", "LONG_BINPUT"):
            if int.from_bytes(data[pos : pos + arg.n], "little") != count:
                return at
            count += 1
        pos += arg.n


def _position(data: bytes) -> int | None:
    verdict = memo_check(data)
    if verdict is None:
        return None
    position, message = verdict
    assert isinstance(position, int) and isinstance(message, str) and message
    return position


# -- streams: real pickles, their mutations, and opcode soup with frames --------------------------

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    | st.tuples(inner, inner),
    max_leaves=20,
)


@st.composite
def _real_and_mutated(draw):
    data = bytearray(pickle.dumps(draw(_VALUES), draw(st.integers(0, 5))))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        where = draw(st.integers(0, len(data)))
        if action == "flip" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[where:]
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


_TOKENS = st.sampled_from([
    b"N", b"]", b"}", b"(", b")", b"0", b"2", b"e", b"u", b"a", b"s", b"l", b"t", b"\x94", b"\x85",
    b"K\x05", b"M\x01\x02", b"J\x01\x02\x03\x04", b"I12\n", b"p0\n", b"p1\n", b"p01\n", b"p-1\n",
    b"p 1\n", b"p1_0\n", b"p0\x00\n", b"g0\n", b"q\x00", b"q\x01", b"q\x02", b"q\xff", b"h\x00",
    b"r\x00\x00\x00\x00", b"r\x01\x00\x00\x00", b"r\x00\x00\x00\x40", b"j\x00\x00\x00\x00",
    b"\x8c\x03abc", b"U\x02hi", b"X\x02\x00\x00\x00hi", b"T\xff\xff\xff\xff", b"\x8a\x01\x05",
    b"\x8b\x01\x00\x00\x00\x05", b"B\x01\x00\x00\x00x", b"\x8e\x01\x00\x00\x00\x00\x00\x00\x00x",
    b"cdatetime\ndate\n", b"S'x'\n", b"V\xc3\xa9\n", b"F1.5\n", b"\x80\x05", b"\x80\x09",
    b"\x82\x01", b"\x83\x01\x00", b"\x84\x01\x00\x00\x00", b"\x01", b"\xff", b"\n", b".",
])


@st.composite
def _opcode_soup(draw):
    parts = [b"\x80\x04"] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 4))):
        body = b"".join(draw(st.lists(_TOKENS, max_size=8)))
        if draw(st.booleans()):
            # A frame whose declared size may cut an opcode in two (straddling) or run past the end.
            size = max(0, len(body) + draw(st.integers(-3, 3)))
            parts.append(b"\x95" + struct.pack("<Q", size))
        parts.append(body)
    parts.append(b"." if draw(st.booleans()) else b"")
    return b"".join(parts)


_STREAMS = _real_and_mutated() | _opcode_soup() | st.binary(max_size=64)


@needs_extension
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_STREAMS)
def test_memo_check_agrees_with_the_reference_walker(data):
    """Same verdict and same byte position as a walker built from pickletools' opcode table."""
    assert _position(data) == reference(data)
    assert _position(bytearray(data)) == _position(memoryview(data)) == reference(data)


@needs_extension
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_STREAMS)
def test_memo_check_agrees_with_the_scanner_on_memo_findings(data):
    """A memo index the scanner refuses (skip-ahead or overwrite) is refused by memo_check too, and a
    stream the scanner walks cleanly to a final STOP with plain PUT indices passes memo_check."""
    trace = simulate(data)
    verdict = memo_check(data)
    if trace.broken is not None and "skips ahead" in trace.broken.message:
        assert verdict is not None and verdict[0] <= trace.broken.pos
    if trace.memo_overwrites:
        assert verdict is not None and verdict[0] <= trace.memo_overwrites[0][0]
    plain_puts = all(
        op.name != "PUT" or (isinstance(arg, int) and str(arg).encode() + b"\n" == data[p + 1 : p + 2 + len(str(arg))])
        for op, arg, p in _safe_genops(data)
    )
    if trace.broken is None and trace.end == len(data) and not trace.memo_overwrites and plain_puts:
        assert verdict is None, verdict


def _safe_genops(data: bytes):
    try:
        return list(pickletools.genops(data))
    except Exception:
        return []


@needs_extension
def test_every_pickle_opcode_is_known():
    """Each opcode of pickletools' table, with a well-formed argument, passes; every other byte is refused."""
    for code in range(256):
        verdict = memo_check(bytes([code]) + b"N.")
        if code not in _TABLE:
            assert verdict == (0, f"byte 0x{code:02x} is not a pickle opcode")
    for value in [0, -1, 2**40, 1.5, "é" * 300, b"x" * 300, bytearray(b"ab"), (1, 2, 3), {1, 2},
                  frozenset({3}), [[]] * 3, {"a": [1]}, True, None, pickle.PickleBuffer(b"buf")]:
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            try:
                data = pickle.dumps(value, proto)
            except pickle.PicklingError:
                continue  # PickleBuffer needs protocol 5
            assert memo_check(data) is None, (value, proto)


@needs_extension
@pytest.mark.parametrize("proto", [4, 5])
@pytest.mark.parametrize("writer", ["dumps", "py_dumps", "dump", "py_dump"])
def test_large_payloads_written_between_frames_pass(proto, writer):
    """Picklers write payloads of 64 KiB or more outside frames (header included): no straddling,
    so neither memo_check nor the scanner refuses them, with the C or the Python pickler."""
    import io

    value = [b"x" * 200_000, "a" * 70_000, bytearray(100_000), "small", [1] * 20_000, b"y" * 70_000]
    if writer.startswith("py_"):
        # The pure-Python pickler runs in a child: importing dill (other tests do) adds dill's
        # reducers to pickle._Pickler.dispatch for the whole process.
        import subprocess
        import sys

        code = (
            "import io, pickle, sys\n"
            'value = [b"x" * 200_000, "a" * 70_000, bytearray(100_000), "small", [1] * 20_000, b"y" * 70_000]\n'
            f"proto = {proto}\n"
            + ("data = pickle._dumps(value, proto)\n" if writer == "py_dumps" else
               "f = io.BytesIO(); pickle._dump(value, f, proto); data = f.getvalue()\n")
            + "sys.stdout.buffer.write(data)\n")
        data = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    elif writer == "dumps":
        data = pickle.dumps(value, proto)
    else:
        file = io.BytesIO()
        pickle.dump(value, file, proto)
        data = file.getvalue()
    assert memo_check(data) is None
    assert simulate(data).broken is None
    assert anypickle.safe.safe_loads(data) == value


@needs_extension
@pytest.mark.parametrize(
    "data, position",
    [
        (b"]r\x00\x00\xc2\x23.", 1),  # gh-115952: 8 bytes ask for a 600M-entry memo array
        (b"]q\xff.", 1),
        (b"]p99999999999999999999999999\n.", 1),  # a PUT index too big for any integer type
        (b"]p0\x001234\n.", 1),  # PyLong_FromString stops at NUL: C would read 0, Python fails
        (b"]q\x00]q\x00.", 4),  # memo confusion: an index written twice
        (b"N.N", 2),  # bytes after STOP
        (b"]q\x00", 3),  # no STOP
        (b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00]r\x00\x00\x00\x00.", 12),  # LONG_BINPUT straddles
        (b"\x80\x04\x95\x01\x00\x00\x00\x00\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00\x00N.", 11),
    ],
)
def test_memo_check_refuses(data, position):
    """Each hazardous or malformed stream is refused at the named byte."""
    assert _position(data) == position


@needs_extension
def test_memo_check_rejects_non_buffers():
    """A str is not bytes: TypeError, not a crash."""
    with pytest.raises(TypeError):
        memo_check("N.")  # type: ignore[arg-type]


# A stream that scanners walking it linearly see as harmless, but that the file-reading C unpickler
# (pickle.load, and safe loading) runs differently: the frame ends inside BININT's argument, so
# pickle.load drops the frame's last 2 bytes and reads BININT from after the frame, 2 bytes later,
# where a linear walk sees SHORT_BINBYTES swallowing a GLOBAL os.system call.
FRAME_STRADDLE = r"""
import io, json, os, pickle, resource, struct, sys
marker = sys.argv[1]
payload = b"cos\nsystem\n(S'touch " + marker.encode() + b"'\ntR"
frame = b"J\x00\x00"
hidden = b"\x80\x04\x95" + struct.pack("<Q", len(frame)) + frame + b"\x00\x00C" + bytes([len(payload)]) + payload + b"0."
# gh-115952 with the index hidden the same way: LONG_BINPUT 0 to a linear walk, 0x30290000 to C.
memo_bomb = b"\x80\x04\x95\x04\x00\x00\x00\x00\x00\x00\x00]r\x00\x00\x00\x00)0."
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the bomb asks for ~13 GB
import anypickle, anypickle.safe._loads
from anypickle import scan
out = {"scan_hidden_safe": scan(hidden).safe, "scan_bomb_safe": scan(memo_bomb).safe}
for c_first in (True, False):
    anypickle.safe._loads.C_FIRST = c_first
    for name, data in (("hidden", hidden), ("bomb", memo_bomb)):
        try:
            anypickle.loads(data, safe=True)
            out[f"{name}_{c_first}"] = "loaded"
        except BaseException as exc:
            out[f"{name}_{c_first}"] = type(exc).__name__
out["marker_after_safe"] = os.path.exists(marker)
try:
    pickle.load(io.BytesIO(memo_bomb))
    out["plain_bomb"] = "loaded"
except BaseException as exc:
    out["plain_bomb"] = type(exc).__name__
pickle.load(io.BytesIO(hidden))
out["marker_after_plain"] = os.path.exists(marker)
print(json.dumps(out))
"""


def test_frame_straddling_streams_are_refused_in_a_child(tmp_path):
    """Streams that parse differently in pickle.load than in a linear walk are flagged by scan and
    refused by safe loading (C-first and static-first) before anything runs; they are real: plain
    pickle.load runs the hidden os.system and attempts the hidden 13 GB memo."""
    marker = tmp_path / "straddle_marker"
    out = run_script(tmp_path / "child", FRAME_STRADDLE, args=[str(marker)])
    assert out["scan_hidden_safe"] is False and out["scan_bomb_safe"] is False
    for key in ("hidden_True", "hidden_False", "bomb_True", "bomb_False"):
        assert out[key] == "UnsafePickleError", (key, out)
    assert out["marker_after_safe"] is False
    assert out["plain_bomb"] == "MemoryError"
    assert out["marker_after_plain"] is True


@pytest.mark.parametrize("c_first", [True, False], ids=["c-first", "static-first"])
@pytest.mark.parametrize(
    "mutation",
    [
        b"}S'x'\nI1\nsb.",  # BUILD with a state dict
        b"(N}S'x'\nI1\nstb.",  # BUILD with (state, slotstate)
        b"(S'x'\nI1\nu.",  # SETITEMS
        b"(I1\ne.",  # APPENDS
        b"I1\na.",  # APPEND
    ],
)
def test_uuid_class_cannot_be_changed_by_a_stream(monkeypatch, c_first, mutation):
    """uuid.UUID is resolved without a static pass (inert): every opcode that mutates its target
    fails on the class itself, the load is refused, and the class is unchanged."""
    import uuid

    if c_first and anypickle.safe._loads._memo_check is None:
        pytest.skip("the optional C extension anypickle.safe._opwalk was not built")
    monkeypatch.setattr(anypickle.safe._loads, "C_FIRST", c_first)
    before = dict(vars(uuid.UUID))
    with pytest.raises(anypickle.UnsafePickleError) as info:
        anypickle.safe.safe_loads(b"cuuid\nUUID\n" + mutation)
    assert info.value.position is not None
    assert dict(vars(uuid.UUID)) == before
    assert uuid.UUID.__setstate__.__code__.co_argcount == 2  # what makes BUILD on the class fail


_ACTIVE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
                   "REDUCE", "BUILD", "NEWOBJ", "NEWOBJ_EX", "NEXT_BUFFER", "READONLY_BUFFER"}


def _reference_plain_data(data: bytes) -> bool:
    """plain_data by pickletools: a sound memo walk and no opcode that imports, calls or builds."""
    if memo_check(data) is not None:
        return False
    return not any(op.name in _ACTIVE_OPCODES for op, _, _ in pickletools.genops(data))


@needs_extension
@pytest.mark.parametrize("proto", range(6))
def test_plain_data_accepts_builtin_data_and_refuses_anything_that_imports(proto):
    """Containers of scalars are plain data at every protocol; a datetime, a set at protocol 0-1
    (written as a builtins.set call), or bytes at protocol 0-2 (a _codecs.encode call) are not."""
    from anypickle.safe._opwalk import plain_data

    assert plain_data(pickle.dumps({"a": [1, 2.5, "x", None, True], "b": (1, (2,))}, proto))
    assert not plain_data(pickle.dumps(__import__("datetime").date(2020, 1, 2), proto))
    assert plain_data(pickle.dumps({1, 2}, proto)) is (proto >= 4)
    assert plain_data(pickle.dumps(b"xy", proto)) is (proto >= 3)
    assert not plain_data(b"\x80\x04N" + b"r" + (600_000_000).to_bytes(4, "little") + b".")


@needs_extension
# The reference decodes protocol-0 STRING arguments with codecs.escape_decode, which warns on a mutated
# backslash escape ("\i"): a warning of the reference, not of the code under test.
@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([pickle.dumps(v, p) for v in ({"k": [1, "a"]}, [b"x", 2.5], __import__("fractions").Fraction(1, 3))
                        for p in range(6)]), st.integers(0, 10_000), st.integers(0, 255))
def test_plain_data_agrees_with_a_pickletools_reference(stream, where, byte):
    """On mutated streams, the C verdict equals a reference built from pickletools' opcode table."""
    from anypickle.safe._opwalk import plain_data

    data = bytearray(stream)
    data[where % len(data)] = byte
    data = bytes(data)
    try:
        expected = _reference_plain_data(data)
    except ValueError:
        # pickletools cannot decode an argument (e.g. INT b"\x00"); plain_data judges structure
        # only, so when it says plain, loading must still fail or give builtin data and nothing else
        if plain_data(data):
            try:
                out = pickle.loads(data)
            except Exception:  # noqa: BLE001 - any load failure is acceptable here
                return
            assert _only_builtin_data(out)
        return
    assert plain_data(data) is expected


def _only_builtin_data(obj) -> bool:
    """True when obj and everything it contains are builtin containers and scalars (cycles allowed)."""
    seen, stack = set(), [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if type(o) is dict:
            stack.extend(o.keys())
            stack.extend(o.values())
        elif type(o) in (list, tuple, set, frozenset):
            stack.extend(o)
        elif type(o) not in (str, bytes, bytearray, int, float, complex, bool, type(None)):
            return False
    return True
