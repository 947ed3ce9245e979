"""A static model of the unpickler: it walks the opcodes, keeps an abstract stack and memo, and records
what the real unpickler would import, call and mutate, without importing or calling anything.

Abstract values: literals (str, bytes, int, float, bool, None) are kept as themselves when short,
tuples as tuples of abstract values, and everything else as a :class:`Kind`, :class:`Glob` (a global
the stream names) or :class:`Made` (what a call would return). The walk stops at the first STOP, or
at the first point where the real unpickler would fail, which it records as a :class:`Broken`.

The walk is table-driven: one handler per opcode, in a 256-entry table built at import from
``pickletools.opcodes`` (an import fails if an opcode has no handler). safe_loads runs it before the
C unpickler on every stream that names a non-inert global.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass, field

from .._allowlist import map_python2
from ._opcodes import (
    APPEND, BINBYTES, BINFLOAT, BINGET, BININT, BININT1, BININT2, BINPERSID, BINPUT,
    BINSTRING, BINUNICODE, BUILD, BYTEARRAY8, DICT_OP, DUP, EXT1, EXT2, EXT4, FLOAT, FRAME,
    FROZENSET_OP, GET, GLOBAL, HIGHEST_PROTOCOL, INT, LIST_OP, LONG, LONG1, LONG4,
    MEMOIZE, NEWOBJ_EX, OBJ, PERSID, POP, POP_MARK, PROTO, PUT, READONLY_BUFFER,
    REDUCE, SETITEMS, SHORT_BINBYTES, SHORT_BINSTRING, SHORT_BINUNICODE, STACK_GLOBAL, STOP,
    STRING, TABLE, TUPLE, TUPLE1, UNICODE, opname,
)

__all__ = ["BigInt", "Box", "Broken", "Glob", "Kind", "Made", "Trace", "simulate"]


class Kind:
    """An opaque abstract value: a mutable container, a long string, an out-of-band buffer..."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Box(Kind):
    """A list, dict or set the stream creates: one per container, so memo references share it and
    ``n`` counts the items put into it (numpy object arrays and NEWOBJ_EX keywords are checked on it)."""

    __slots__ = ("n",)

    def __init__(self, name: str, n: int = 0) -> None:
        self.name = name
        self.n = n


class BigInt(Kind):
    """An integer literal too long to keep: ``digits`` is (an upper bound on) its decimal digits."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.name = "int"
        self.digits = digits


FROZENSET = Kind("frozenset")
BYTEARRAY = Kind("bytearray")
BUFFER = Kind("buffer")
LONG_STR = Kind("str")
LONG_BYTES = Kind("bytes")
PERSISTENT = Kind("persistent object")

# Literals longer than this are kept as a Kind: no copy of an 8 MB array buffer, and no module
# name is that long.
_LITERAL_MAX = 256


class Glob:
    """A global the stream names: ``pair`` is the mapped (module, qualname), None when computed."""

    __slots__ = ("pos", "op", "raw", "pair")

    def __init__(self, pos: int, op: str, raw: tuple[object, object], pair: tuple[str, str] | None):
        self.pos = pos
        self.op = op
        self.raw = raw
        self.pair = pair


class Made:
    """What calling ``callee`` with ``args`` would return (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST)."""

    __slots__ = ("pos", "op", "callee", "args", "kwargs")

    def __init__(self, pos: int, op: str, callee: object, args: object, kwargs: object = None):
        self.pos = pos
        self.op = op
        self.callee = callee
        self.args = args
        self.kwargs = kwargs


@dataclass
class Broken:
    """Where and why the real unpickler would fail on this stream."""

    pos: int
    op: str
    message: str


@dataclass
class Trace:
    """What one walk recorded, in stream order; the rule passes read it."""

    proto: int = 0
    globals: list[Glob] = field(default_factory=list)
    calls: list[Made] = field(default_factory=list)
    builds: list[tuple[int, object, object]] = field(default_factory=list)  # (pos, target, state)
    mutations: list[tuple[int, str, object]] = field(default_factory=list)  # (pos, op, target)
    refused: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, op, why)
    memo_overwrites: list[tuple[int, str, int]] = field(default_factory=list)
    oddities: list[tuple[int, str, str]] = field(default_factory=list)  # legal but never written
    broken: Broken | None = None
    stop: int | None = None  # position of the first STOP
    end: int = 0  # first byte after the first STOP
    length: int = 0  # bytes in the stream


class _Fail(Exception):
    def __init__(self, pos: int, op: str, message: str) -> None:
        self.pos, self.op, self.message = pos, op, message


_u16 = struct.Struct("<H").unpack_from
_i32 = struct.Struct("<i").unpack_from
_u32 = struct.Struct("<I").unpack_from
_u64 = struct.Struct("<Q").unpack_from
_f64 = struct.Struct(">d").unpack_from

_NO_FRAME = 1 << 64  # beyond any position: one comparison per opcode outside frames
_STOPPED = -1  # what the STOP handler returns instead of a position


def simulate(data: bytes) -> Trace:
    """Walk ``data`` from its first byte to its first STOP; never raises on malformed input."""
    trace = Trace(length=len(data))
    try:
        _walk(data, trace)
    except _Fail as fail:
        trace.broken = Broken(fail.pos, fail.op, fail.message)
    except RecursionError:  # pragma: no cover - the walk is iterative; kept as a fail-closed net
        trace.broken = Broken(0, "?", "stream too deeply nested to analyse")
    return trace


class _State:
    """The abstract unpickler between two opcodes: stack, mark stack, memo, protocol, frame end."""

    __slots__ = ("n", "stack", "metastack", "memo", "trace", "proto", "frame_end")

    def __init__(self, data: bytes, trace: Trace) -> None:
        self.n = len(data)
        self.stack: list = []
        self.metastack: list[list] = []
        self.memo: dict[int, object] = {}
        self.trace = trace
        self.proto = 0
        # Inside a FRAME, the file-reading C unpickler (pickle.load, safe_loads) reads from the frame's
        # buffer; an argument that runs past the frame's end makes it drop the frame's remaining bytes
        # and read the argument from after the frame, so it would run other opcodes than this walk sees
        # (a stream could hide GLOBAL os.system or a huge LONG_BINPUT). Picklers never write that, and
        # pickle.py refuses it: so do we. ``frame_end`` is _NO_FRAME outside frames.
        self.frame_end = _NO_FRAME


def _walk(data: bytes, trace: Trace) -> None:
    """The loop: each opcode byte picks its handler from :data:`_HANDLERS`, which returns the next position."""
    w = _State(data, trace)
    n = w.n
    handlers = _HANDLERS
    pos = at = 0
    while True:
        if pos >= w.frame_end:
            if pos > w.frame_end:
                raise _Fail(at, opname(data[at]), f"the {opname(data[at])} argument runs past the end of its FRAME "
                            "(the C unpickler would read it from after the frame: another stream than this one)")
            w.frame_end = _NO_FRAME
        if pos >= n:
            raise _Fail(pos, "EOF", "stream ends before STOP (truncated)")
        at = pos
        pos = handlers[data[pos]](w, data, pos + 1, at)
        if pos == _STOPPED:
            return


# Helpers of the handlers. Each handler takes (state, data, position after the opcode byte, position of
# the opcode byte) and returns the position after its argument.

def _underflow(at: int, op: int) -> _Fail:
    return _Fail(at, opname(op), "stack underflow: the opcode needs more values than are on the stack")


def _truncated(at: int, op: int) -> _Fail:
    return _Fail(at, opname(op), f"stream truncated inside the {opname(op)} argument")


def _need(w: _State, pos: int, k: int, op: int) -> None:
    if pos + k > w.n:
        raise _Fail(pos - 1, opname(op), f"stream truncated inside the {opname(op)} argument")


def _pop_mark(w: _State, at: int, op: int) -> list:
    if not w.metastack:
        raise _Fail(at, opname(op), "no MARK on the stack")
    items = w.stack
    w.stack = w.metastack.pop()
    return items


def _memo_put(w: _State, at: int, op: int, idx: int) -> None:
    if not w.stack:
        raise _underflow(at, op)
    memo = w.memo
    if idx != len(memo):
        # Picklers number memo entries 0, 1, 2...: an index already used is memo confusion; one
        # beyond the next free slot makes the C unpickler allocate and zero a memo array of
        # 2 * index pointers (gh-115952: 8 input bytes, tens of gigabytes).
        if idx in memo:
            w.trace.memo_overwrites.append((at, opname(op), idx))
        else:
            raise _Fail(at, opname(op), f"memo index {idx} skips ahead of the next free index {len(memo)} "
                        "(the C unpickler would allocate a memo array that large)")
    memo[idx] = w.stack[-1]


def _memo_get(w: _State, at: int, op: int, idx: int) -> None:
    try:
        w.stack.append(w.memo[idx])
    except KeyError:
        raise _Fail(at, opname(op), f"memo index {idx} was never stored") from None


def _add_global(w: _State, at: int, op: int, module: object, name: object) -> Glob:
    raw = (module, name)
    if type(module) is str and type(name) is str:
        pair = map_python2(module, name) if w.proto < 3 else (module, name)
    else:
        pair = None
    glob = Glob(at, opname(op), raw, pair)
    w.trace.globals.append(glob)
    return glob


def _add_call(w: _State, at: int, op: int, callee: object, args: object, kwargs: object = None) -> None:
    made = Made(at, opname(op), callee, args, kwargs)
    w.trace.calls.append(made)
    w.stack.append(made)


def _mutate(w: _State, at: int, op: int, added: int) -> None:
    """APPEND(S), SETITEM(S), ADDITEMS: count into a container the stream made, else record a mutation."""
    if not w.stack:
        raise _underflow(at, op)
    target = w.stack[-1]
    if type(target) is Box:
        target.n += added
    else:
        w.trace.mutations.append((at, opname(op), target))


def _utf8(data: bytes, start: int, end: int, at: int, op: int) -> str:
    try:
        return data[start:end].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        raise _Fail(at, opname(op), "string is not valid UTF-8") from None


def _sized(w: _State, data: bytes, pos: int, at: int, width: int) -> tuple[int, int]:
    """The byte count of a counted argument (``width`` bytes, little-endian) and where the bytes start."""
    op = data[at]
    _need(w, pos, width, op)
    k = data[pos] if width == 1 else (_i32 if width == 4 and op in _SIGNED_COUNTS else _u32 if width == 4
                                      else _u64)(data, pos)[0]
    if k < 0:
        raise _Fail(at, opname(op), "negative byte count")
    _need(w, pos + width, k, op)
    return k, pos + width


_SIGNED_COUNTS = frozenset({BINSTRING, LONG4})  # pickle reads these counts as signed 32-bit


def _line(data: bytes, pos: int, n: int, op: int) -> tuple[bytes, int]:
    end = data.find(b"\n", pos, n)
    if end < 0:
        raise _Fail(pos - 1, opname(op), "stream ends inside a newline-terminated argument")
    return data[pos:end], end + 1


def _decimal_int(raw: bytes, pos: int, op: int) -> int:
    try:
        value = int(raw.decode("ascii"), 10)
    except (UnicodeDecodeError, ValueError):
        raise _Fail(pos, opname(op), f"bad memo index {raw[:40]!r}") from None
    if value < 0:
        raise _Fail(pos, opname(op), "negative memo index")
    return value


def _short(value, kind):
    return value if len(value) <= _LITERAL_MAX else kind


# The handlers, one per opcode, in the order of pickletools' table: values and literals first.

def _op_int(w, data, pos, at):
    raw, pos = _line(data, pos, w.n, INT)
    w.stack.append(False if raw == b"00" else True if raw == b"01" else _text_int(raw, at, INT))
    return pos


def _op_binint(w, data, pos, at):
    if pos + 4 > w.n:
        raise _truncated(at, BININT)
    w.stack.append(_i32(data, pos)[0])
    return pos + 4


def _op_binint1(w, data, pos, at):
    if pos >= w.n:
        raise _truncated(at, BININT1)
    w.stack.append(data[pos])
    return pos + 1


def _op_binint2(w, data, pos, at):
    if pos + 2 > w.n:
        raise _truncated(at, BININT2)
    w.stack.append(_u16(data, pos)[0])
    return pos + 2


def _op_long(w, data, pos, at):
    raw, pos = _line(data, pos, w.n, LONG)
    w.stack.append(_text_int(raw[:-1] if raw.endswith(b"L") else raw, at, LONG))
    return pos


def _op_long_n(w, data, pos, at):  # LONG1, LONG4
    k, start = _sized(w, data, pos, at, 1 if data[at] == LONG1 else 4)
    chunk = data[start : start + k]
    w.stack.append(int.from_bytes(chunk, "little", signed=True) if k <= 64 else BigInt(k * 241 // 100 + 1))
    return start + k


def _op_string(w, data, pos, at):
    raw, pos = _line(data, pos, w.n, STRING)
    if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
        raise _Fail(at, "STRING", "the STRING opcode argument must be quoted")
    try:
        value = codecs.escape_decode(raw[1:-1])[0]
    except ValueError:
        raise _Fail(at, "STRING", "bad escape in STRING argument") from None
    w.stack.append(_py2_str(value, at, STRING))
    return pos


def _op_binstring(w, data, pos, at):  # BINSTRING, SHORT_BINSTRING
    k, start = _sized(w, data, pos, at, 1 if data[at] == SHORT_BINSTRING else 4)
    w.stack.append(_py2_str(data[start : start + k], at, data[at]))
    return start + k


def _op_binbytes(w, data, pos, at):  # BINBYTES, BINBYTES8, BYTEARRAY8
    op = data[at]
    k, start = _sized(w, data, pos, at, 4 if op == BINBYTES else 8)
    if op == BYTEARRAY8:
        w.stack.append(BYTEARRAY)
    else:
        w.stack.append(data[start : start + k] if k <= _LITERAL_MAX else LONG_BYTES)
    return start + k


def _op_short_binbytes(w, data, pos, at):
    if pos >= w.n or pos + 1 + data[pos] > w.n:
        raise _truncated(at, SHORT_BINBYTES)
    k = data[pos] + 1
    w.stack.append(data[pos + 1 : pos + k])
    return pos + k


def _op_none(w, data, pos, at):
    w.stack.append(None)
    return pos


def _op_newtrue(w, data, pos, at):
    w.stack.append(True)
    return pos


def _op_newfalse(w, data, pos, at):
    w.stack.append(False)
    return pos


def _op_unicode(w, data, pos, at):
    raw, pos = _line(data, pos, w.n, UNICODE)
    try:
        w.stack.append(_short(raw.decode("raw-unicode-escape"), LONG_STR))
    except UnicodeDecodeError:
        raise _Fail(at, "UNICODE", "bad raw-unicode-escape argument") from None
    return pos


def _op_short_binunicode(w, data, pos, at):
    if pos >= w.n or pos + 1 + data[pos] > w.n:
        raise _truncated(at, SHORT_BINUNICODE)
    k = data[pos] + 1
    try:  # _utf8, inlined: the most frequent opcode of string-keyed data
        w.stack.append(data[pos + 1 : pos + k].decode("utf-8", "surrogatepass"))
    except UnicodeDecodeError:
        raise _Fail(at, "SHORT_BINUNICODE", "string is not valid UTF-8") from None
    return pos + k


def _op_binunicode(w, data, pos, at):  # BINUNICODE, BINUNICODE8
    op = data[at]
    k, start = _sized(w, data, pos, at, 4 if op == BINUNICODE else 8)
    w.stack.append(_utf8(data, start, start + k, at, op) if k <= _LITERAL_MAX else LONG_STR)
    return start + k


def _op_float(w, data, pos, at):
    raw, pos = _line(data, pos, w.n, FLOAT)
    try:
        w.stack.append(float(raw.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        raise _Fail(at, "FLOAT", f"bad FLOAT literal {raw[:40]!r}") from None
    return pos


def _op_binfloat(w, data, pos, at):
    if pos + 8 > w.n:
        raise _truncated(at, BINFLOAT)
    w.stack.append(_f64(data, pos)[0])
    return pos + 8


# Containers.

def _op_empty_list(w, data, pos, at):
    w.stack.append(Box("list"))
    return pos


def _op_append(w, data, pos, at):  # APPEND, SETITEM
    op = data[at]
    k = 1 if op == APPEND else 2
    if len(w.stack) < k + 1:
        raise _underflow(at, op)
    del w.stack[-k:]
    _mutate(w, at, op, 1)
    return pos


def _op_appends(w, data, pos, at):  # APPENDS, SETITEMS, ADDITEMS
    op = data[at]
    items = _pop_mark(w, at, op)
    if op == SETITEMS and len(items) % 2:
        raise _Fail(at, opname(op), "odd number of items for SETITEMS")
    _mutate(w, at, op, len(items) // 2 if op == SETITEMS else len(items))
    return pos


def _op_list(w, data, pos, at):
    items = _pop_mark(w, at, LIST_OP)  # _pop_mark rebinds the stack: append afterwards
    w.stack.append(Box("list", len(items)))
    return pos


def _op_empty_tuple(w, data, pos, at):
    w.stack.append(())
    return pos


def _op_tuple(w, data, pos, at):
    tup = tuple(_pop_mark(w, at, TUPLE))  # _pop_mark rebinds the stack: append afterwards
    w.stack.append(tup)
    return pos


def _op_tuple1(w, data, pos, at):
    if not w.stack:
        raise _underflow(at, TUPLE1)
    w.stack[-1] = (w.stack[-1],)
    return pos


def _op_tuple_n(w, data, pos, at):  # TUPLE2, TUPLE3
    op = data[at]
    k = op - TUPLE1 + 1
    stack = w.stack
    if len(stack) < k:
        raise _underflow(at, op)
    tup = tuple(stack[-k:])
    del stack[-k:]
    stack.append(tup)
    return pos


def _op_empty_dict(w, data, pos, at):
    w.stack.append(Box("dict"))
    return pos


def _op_dict(w, data, pos, at):
    items = _pop_mark(w, at, DICT_OP)
    if len(items) % 2:
        raise _Fail(at, "DICT", "odd number of items for DICT")
    w.stack.append(Box("dict", len(items) // 2))
    return pos


def _op_empty_set(w, data, pos, at):
    w.stack.append(Box("set"))
    return pos


def _op_frozenset(w, data, pos, at):
    _pop_mark(w, at, FROZENSET_OP)
    w.stack.append(FROZENSET)
    return pos


# Stack and memo.

def _op_pop(w, data, pos, at):
    if w.stack:
        w.stack.pop()
    elif w.metastack:
        _pop_mark(w, at, POP)
    else:
        raise _underflow(at, POP)
    return pos


def _op_dup(w, data, pos, at):
    if not w.stack:
        raise _underflow(at, DUP)
    w.stack.append(w.stack[-1])
    return pos


def _op_mark(w, data, pos, at):
    w.metastack.append(w.stack)
    w.stack = []
    return pos


def _op_pop_mark(w, data, pos, at):
    _pop_mark(w, at, POP_MARK)
    return pos


def _memo_arg(w: _State, data: bytes, pos: int, at: int, op: int) -> tuple[int, int]:
    """The memo index of GET/PUT (decimal text), BINGET/BINPUT (1 byte), LONG_BINGET/LONG_BINPUT (4 bytes)."""
    if op == GET or op == PUT:
        raw, pos = _line(data, pos, w.n, op)
        return _decimal_int(raw, at, op), pos
    if op == BINGET or op == BINPUT:
        if pos >= w.n:
            raise _truncated(at, op)
        return data[pos], pos + 1
    _need(w, pos, 4, op)
    return _u32(data, pos)[0], pos + 4


def _op_binget(w, data, pos, at):  # _op_get's most frequent form, inlined
    if pos >= w.n:
        raise _truncated(at, BINGET)
    try:
        w.stack.append(w.memo[data[pos]])
    except KeyError:
        raise _Fail(at, "BINGET", f"memo index {data[pos]} was never stored") from None
    return pos + 1


def _op_get(w, data, pos, at):  # GET, LONG_BINGET (and BINGET: _op_binget)
    op = data[at]
    idx, pos = _memo_arg(w, data, pos, at, op)
    _memo_get(w, at, op, idx)
    return pos


def _op_put(w, data, pos, at):  # PUT, BINPUT, LONG_BINPUT
    op = data[at]
    idx, pos = _memo_arg(w, data, pos, at, op)
    _memo_put(w, at, op, idx)
    return pos


def _op_memoize(w, data, pos, at):
    if not w.stack:
        raise _underflow(at, MEMOIZE)
    w.memo[len(w.memo)] = w.stack[-1]  # never an overwrite: PUTs may not skip ahead (_memo_put)
    return pos


# Globals, calls and state: what the rule passes judge.

def _op_ext(w, data, pos, at):  # EXT1, EXT2, EXT4
    op = data[at]
    width = {EXT1: 1, EXT2: 2, EXT4: 4}[op]
    _need(w, pos, width, op)
    code = data[pos] if width == 1 else (_u16 if width == 2 else _i32)(data, pos)[0]
    w.trace.refused.append(
        (at, opname(op), f"extension code {code}: {opname(op)} imports a global through "
         "copyreg's extension registry, which the stream does not name"))
    w.stack.append(Glob(at, opname(op), ("<extension>", str(code)), None))
    return pos + width


def _op_global(w, data, pos, at):  # GLOBAL, INST
    op = data[at]
    raw_module, pos = _line(data, pos, w.n, op)
    raw_name, pos = _line(data, pos, w.n, op)
    try:
        module, name = raw_module.decode("utf-8"), raw_name.decode("utf-8")
    except UnicodeDecodeError:
        raise _Fail(at, opname(op), "global name is not valid UTF-8") from None
    glob = _add_global(w, at, op, module, name)
    if op == GLOBAL:
        w.stack.append(glob)
    else:
        _add_call(w, at, op, glob, tuple(_pop_mark(w, at, op)))
    return pos


def _op_stack_global(w, data, pos, at):
    stack = w.stack
    if len(stack) < 2:
        raise _underflow(at, STACK_GLOBAL)
    name = stack.pop()
    module = stack.pop()
    stack.append(_add_global(w, at, STACK_GLOBAL, module, name))
    return pos


def _op_reduce(w, data, pos, at):  # REDUCE, NEWOBJ
    op = data[at]
    stack = w.stack
    if len(stack) < 2:
        raise _underflow(at, op)
    args = stack.pop()
    made = Made(at, "REDUCE" if op == REDUCE else "NEWOBJ", stack[-1], args)
    w.trace.calls.append(made)
    stack[-1] = made
    return pos


def _op_build(w, data, pos, at):
    stack = w.stack
    if len(stack) < 2:
        raise _underflow(at, BUILD)
    state = stack.pop()
    w.trace.builds.append((at, stack[-1], state))
    return pos


def _op_obj(w, data, pos, at):
    items = _pop_mark(w, at, OBJ)
    if not items:
        raise _Fail(at, "OBJ", "OBJ needs a class after its MARK")
    _add_call(w, at, OBJ, items[0], tuple(items[1:]))
    return pos


def _op_newobj_ex(w, data, pos, at):
    stack = w.stack
    if len(stack) < 3:
        raise _underflow(at, NEWOBJ_EX)
    kwargs = stack.pop()
    args = stack.pop()
    cls = stack.pop()
    _add_call(w, at, NEWOBJ_EX, cls, args, kwargs)
    return pos


# Machine control, persistent ids and buffers.

def _op_proto(w, data, pos, at):
    _need(w, pos, 1, PROTO)
    proto = data[pos]
    if proto > HIGHEST_PROTOCOL:
        raise _Fail(at, "PROTO", f"unsupported pickle protocol {proto}")
    if at != 0:
        w.trace.oddities.append((at, "PROTO", "PROTO after the first opcode (picklers write it first)"))
    w.proto = w.trace.proto = proto
    return pos + 1


def _op_stop(w, data, pos, at):
    if not w.stack:
        raise _underflow(at, STOP)
    if len(w.stack) != 1 or w.metastack:
        # The unpickler returns the top value and ignores the rest; picklers never do this.
        w.trace.oddities.append((
            at, "STOP",
            f"STOP leaves {len(w.stack) - 1} extra values and {len(w.metastack)} open MARKs behind "
            "(ignored by the unpickler, never written by a pickler)",
        ))
    w.trace.stop = at
    w.trace.end = pos
    return _STOPPED


def _op_frame(w, data, pos, at):
    if w.frame_end != _NO_FRAME:
        raise _Fail(at, "FRAME", "FRAME inside a frame (picklers never write that)")
    _need(w, pos, 8, FRAME)
    k = _u64(data, pos)[0]
    pos += 8
    if pos + k > w.n:
        raise _Fail(at, "FRAME", f"frame of {k} bytes runs past the end of the stream")
    w.frame_end = pos + k
    return pos


def _op_persid(w, data, pos, at):
    _, pos = _line(data, pos, w.n, PERSID)
    w.trace.refused.append((at, "PERSID", "persistent id: the loader would call persistent_load"))
    w.stack.append(PERSISTENT)
    return pos


def _op_binpersid(w, data, pos, at):
    if not w.stack:
        raise _underflow(at, BINPERSID)
    w.stack.pop()
    w.trace.refused.append((at, "BINPERSID", "persistent id: the loader would call persistent_load"))
    w.stack.append(PERSISTENT)
    return pos


def _op_next_buffer(w, data, pos, at):
    w.trace.oddities.append((at, "NEXT_BUFFER", "out-of-band buffer: loads needs buffers=..."))
    w.stack.append(BUFFER)
    return pos


def _op_readonly_buffer(w, data, pos, at):
    if not w.stack:
        raise _underflow(at, READONLY_BUFFER)
    return pos


def _not_an_opcode(w, data, pos, at):
    raise _Fail(at, opname(data[at]), f"byte 0x{data[at]:02x} is not a pickle opcode")


def _handler_table() -> list:
    """256 handlers by opcode byte, one for each opcode in pickletools' table; an import fails on a gap."""
    by_name = {
        "INT": _op_int, "BININT": _op_binint, "BININT1": _op_binint1, "BININT2": _op_binint2,
        "LONG": _op_long, "LONG1": _op_long_n, "LONG4": _op_long_n,
        "STRING": _op_string, "BINSTRING": _op_binstring, "SHORT_BINSTRING": _op_binstring,
        "BINBYTES": _op_binbytes, "SHORT_BINBYTES": _op_short_binbytes, "BINBYTES8": _op_binbytes,
        "BYTEARRAY8": _op_binbytes, "NEXT_BUFFER": _op_next_buffer, "READONLY_BUFFER": _op_readonly_buffer,
        "NONE": _op_none, "NEWTRUE": _op_newtrue, "NEWFALSE": _op_newfalse,
        "UNICODE": _op_unicode, "SHORT_BINUNICODE": _op_short_binunicode, "BINUNICODE": _op_binunicode,
        "BINUNICODE8": _op_binunicode, "FLOAT": _op_float, "BINFLOAT": _op_binfloat,
        "EMPTY_LIST": _op_empty_list, "APPEND": _op_append, "APPENDS": _op_appends, "LIST": _op_list,
        "EMPTY_TUPLE": _op_empty_tuple, "TUPLE": _op_tuple, "TUPLE1": _op_tuple1, "TUPLE2": _op_tuple_n,
        "TUPLE3": _op_tuple_n, "EMPTY_DICT": _op_empty_dict, "DICT": _op_dict, "SETITEM": _op_append,
        "SETITEMS": _op_appends, "EMPTY_SET": _op_empty_set, "ADDITEMS": _op_appends,
        "FROZENSET": _op_frozenset, "POP": _op_pop, "DUP": _op_dup, "MARK": _op_mark, "POP_MARK": _op_pop_mark,
        "GET": _op_get, "BINGET": _op_binget, "LONG_BINGET": _op_get, "PUT": _op_put,
        "BINPUT": _op_put, "LONG_BINPUT": _op_put, "MEMOIZE": _op_memoize,
        "EXT1": _op_ext, "EXT2": _op_ext, "EXT4": _op_ext, "GLOBAL": _op_global, "STACK_GLOBAL": _op_stack_global,
        "REDUCE": _op_reduce, "BUILD": _op_build, "INST": _op_global, "OBJ": _op_obj, "NEWOBJ": _op_reduce,
        "NEWOBJ_EX": _op_newobj_ex, "PROTO": _op_proto, "STOP": _op_stop, "FRAME": _op_frame,
        "PERSID": _op_persid, "BINPERSID": _op_binpersid,
    }
    missing = set(TABLE.values()) ^ set(by_name)
    if missing:  # pragma: no cover - a new pickletools opcode (or a typo here)
        raise ImportError(f"the scanner has no handler for (or an unknown) opcode: {sorted(missing)}")
    table = [_not_an_opcode] * 256
    for code, name in TABLE.items():
        table[code] = by_name[name]
    return table


_HANDLERS = _handler_table()


def _py2_str(value: bytes, at: int, op: int):
    # Python 2 str: the unpickler decodes it as ASCII by default (encoding="ASCII"), so it can be a
    # STACK_GLOBAL operand; non-ASCII would make the real load fail.
    try:
        return _short(value.decode("ascii"), LONG_STR)
    except UnicodeDecodeError:
        raise _Fail(at, opname(op), "Python 2 string is not ASCII (the loader decodes it as ASCII)") from None


_TEXT_INT_MAX = 4400  # characters parsed exactly; CPython 3.11+ refuses more than 4300 digits itself


def _text_int(raw: bytes, at: int, op: int):
    if len(raw) > _TEXT_INT_MAX:
        # Parsing a decimal string is quadratic in CPython (3.10 has no digit limit): the walk must
        # stay linear, so a long literal is only checked to be digits and kept as a BigInt.
        body = raw.strip().lstrip(b"+-")
        if not body.isdigit():
            raise _Fail(at, opname(op), f"bad integer literal {raw[:40]!r}")
        return BigInt(len(body))
    try:
        text = raw.decode("ascii")
        value = int(text, 0) if text.strip().lstrip("+-").startswith(("0x", "0o", "0b", "0X")) else int(text)
    except (UnicodeDecodeError, ValueError):
        raise _Fail(at, opname(op), f"bad integer literal {raw[:40]!r}") from None
    return value if value.bit_length() <= 512 else BigInt(len(raw))
