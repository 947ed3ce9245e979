"""A static model of the unpickler: it walks the opcodes, keeps an abstract stack and memo, and records
what the real unpickler would import, call and mutate, without importing or calling anything.

Abstract values: literals (str, bytes, int, float, bool, None) are kept as themselves when short,
tuples as tuples of abstract values, and everything else as a :class:`Kind`, :class:`Glob` (a global
the stream names) or :class:`Made` (what a call would return). The walk stops at the first STOP, or
at the first point where the real unpickler would fail, which it records as a :class:`Broken`.

The loop is written for speed (one function, locals, ``struct.unpack_from``): safe_loads runs it
before the C unpickler on every stream that names a non-inert global.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass, field

from .._allowlist import map_python2

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

from ._opcodes import (  # noqa: F401 - the walk compares opcode bytes by name
    ADDITEMS, APPEND, APPENDS, BINBYTES, BINBYTES8, BINFLOAT, BINGET, BININT, BININT1, BININT2,
    BINPERSID, BINPUT, BINSTRING, BINUNICODE, BINUNICODE8, BUILD, BYTEARRAY8, DICT_OP, DUP,
    EMPTY_DICT, EMPTY_LIST, EMPTY_SET, EMPTY_TUPLE, EXT1, EXT2, EXT4, FLOAT, FRAME, FROZENSET_OP,
    GET, GLOBAL, HIGHEST_PROTOCOL, INST, INT, LIST_OP, LONG, LONG1, LONG4, LONG_BINGET, LONG_BINPUT,
    MARK, MEMOIZE, NEWFALSE, NEWOBJ, NEWOBJ_EX, NEWTRUE, NEXT_BUFFER, NONE, OBJ, PERSID, POP,
    POP_MARK, PROTO, PUT, READONLY_BUFFER, REDUCE, SETITEM, SETITEMS, SHORT_BINBYTES,
    SHORT_BINSTRING, SHORT_BINUNICODE, STACK_GLOBAL, STOP, STRING, TUPLE, TUPLE1, TUPLE2, TUPLE3,
    UNICODE, opname,
)


_NO_FRAME = 1 << 64  # beyond any position: one comparison per opcode outside frames


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


def simulate(data: bytes) -> Trace:  # noqa: C901 - one loop on purpose, see module docstring
    """Walk ``data`` from its first byte to its first STOP; never raises on malformed input."""
    trace = Trace(length=len(data))
    try:
        _walk(data, trace)
    except _Fail as fail:
        trace.broken = Broken(fail.pos, fail.op, fail.message)
    except RecursionError:  # pragma: no cover - the walk is iterative; kept as a fail-closed net
        trace.broken = Broken(0, "?", "stream too deeply nested to analyse")
    return trace


def _walk(data: bytes, trace: Trace) -> None:  # noqa: C901
    n = len(data)
    stack: list = []
    metastack: list[list] = []
    memo: dict[int, object] = {}
    globals_ = trace.globals
    calls = trace.calls
    proto = 0
    pos = 0
    # Inside a FRAME, the file-reading C unpickler (pickle.load, safe_loads) reads from the frame's
    # buffer; an argument that runs past the frame's end makes it drop the frame's remaining bytes
    # and read the argument from after the frame, so it would run other opcodes than this walk sees
    # (a stream could hide GLOBAL os.system or a huge LONG_BINPUT). Picklers never write that, and
    # pickle.py refuses it: so do we. ``frame_end`` is _NO_FRAME outside frames.
    frame_end = _NO_FRAME
    at = 0

    def underflow(at: int, op: int) -> _Fail:
        return _Fail(at, opname(op), "stack underflow: the opcode needs more values than are on the stack")

    def truncated(at: int, op: int) -> _Fail:
        return _Fail(at, opname(op), f"stream truncated inside the {opname(op)} argument")

    def need(at: int, k: int, op: int) -> None:
        if at + k > n:
            raise _Fail(at - 1, opname(op), f"stream truncated inside the {opname(op)} argument")

    def pop_mark(at: int, op: int) -> list:
        nonlocal stack
        if not metastack:
            raise _Fail(at, opname(op), "no MARK on the stack")
        items = stack
        stack = metastack.pop()
        return items

    def memo_put(at: int, op: int, idx: int) -> None:
        if not stack:
            raise underflow(at, op)
        if idx != len(memo):
            # Picklers number memo entries 0, 1, 2...: an index already used is memo confusion; one
            # beyond the next free slot makes the C unpickler allocate and zero a memo array of
            # 2 * index pointers (gh-115952: 8 input bytes, tens of gigabytes).
            if idx in memo:
                trace.memo_overwrites.append((at, opname(op), idx))
            else:
                raise _Fail(at, opname(op), f"memo index {idx} skips ahead of the next free index {len(memo)} "
                            "(the C unpickler would allocate a memo array that large)")
        memo[idx] = stack[-1]

    def memo_get(at: int, op: int, idx: int) -> None:
        try:
            stack.append(memo[idx])
        except KeyError:
            raise _Fail(at, opname(op), f"memo index {idx} was never stored") from None

    def add_global(at: int, op: int, module: object, name: object) -> Glob:
        raw = (module, name)
        if type(module) is str and type(name) is str:
            pair = map_python2(module, name) if proto < 3 else (module, name)
        else:
            pair = None
        glob = Glob(at, opname(op), raw, pair)
        globals_.append(glob)
        return glob

    def add_call(at: int, op: int, callee: object, args: object, kwargs: object = None) -> None:
        made = Made(at, opname(op), callee, args, kwargs)
        calls.append(made)
        stack.append(made)

    while True:
        if pos >= frame_end:
            if pos > frame_end:
                raise _Fail(at, opname(data[at]), f"the {opname(data[at])} argument runs past the end of its FRAME "
                            "(the C unpickler would read it from after the frame: another stream than this one)")
            frame_end = _NO_FRAME
        if pos >= n:
            raise _Fail(pos, "EOF", "stream ends before STOP (truncated)")
        op = data[pos]
        at = pos
        pos += 1
        # Two chains (the ASCII opcodes of protocols 0-3, then the 0x80+ ones of protocols 2-5), each
        # in order of frequency: every comparison a frequent opcode skips is paid on every stream.
        if op < 0x80:
            if op == BINGET:
                if pos >= n:
                    raise truncated(at, op)
                try:
                    stack.append(memo[data[pos]])
                except KeyError:
                    raise _Fail(at, "BINGET", f"memo index {data[pos]} was never stored") from None
                pos += 1
            elif op == SHORT_BINBYTES:
                if pos >= n or pos + 1 + data[pos] > n:
                    raise truncated(at, op)
                k = data[pos] + 1
                stack.append(data[pos + 1 : pos + k])
                pos += k
            elif op == BININT1:
                if pos >= n:
                    raise truncated(at, op)
                stack.append(data[pos])
                pos += 1
            elif op == BININT2:
                if pos + 2 > n:
                    raise truncated(at, op)
                stack.append(_u16(data, pos)[0])
                pos += 2
            elif op == BININT:
                if pos + 4 > n:
                    raise truncated(at, op)
                stack.append(_i32(data, pos)[0])
                pos += 4
            elif op == REDUCE:
                if len(stack) < 2:
                    raise underflow(at, op)
                args = stack.pop()
                made = Made(at, "REDUCE" if op == REDUCE else "NEWOBJ", stack[-1], args)
                calls.append(made)
                stack[-1] = made
            elif op == BUILD:
                if len(stack) < 2:
                    raise underflow(at, op)
                state = stack.pop()
                trace.builds.append((at, stack[-1], state))
            elif op == MARK:
                metastack.append(stack)
                stack = []
            elif op == EMPTY_TUPLE:
                stack.append(())
            elif op == EMPTY_DICT:
                stack.append(Box("dict"))
            elif op == EMPTY_LIST:
                stack.append(Box("list"))
            elif op == APPENDS or op == SETITEMS:
                items = pop_mark(at, op)
                if op == SETITEMS and len(items) % 2:
                    raise _Fail(at, opname(op), "odd number of items for SETITEMS")
                if not stack:
                    raise underflow(at, op)
                target = stack[-1]
                if type(target) is Box:
                    target.n += len(items) // 2 if op == SETITEMS else len(items)
                else:
                    trace.mutations.append((at, opname(op), target))
            elif op == APPEND or op == SETITEM:
                k = 1 if op == APPEND else 2
                if len(stack) < k + 1:
                    raise underflow(at, op)
                del stack[-k:]
                target = stack[-1]
                if type(target) is Box:
                    target.n += 1
                else:
                    trace.mutations.append((at, opname(op), target))
            elif op == NONE:
                stack.append(None)
            elif op == BINFLOAT:
                if pos + 8 > n:
                    raise truncated(at, op)
                stack.append(_f64(data, pos)[0])
                pos += 8
            elif op == TUPLE:
                tup = tuple(pop_mark(at, op))  # pop_mark rebinds stack: append afterwards
                stack.append(tup)
            elif op == BINPUT:
                if pos >= n:
                    raise truncated(at, op)
                memo_put(at, op, data[pos])
                pos += 1
            elif op == BINUNICODE:
                w = 4
                need(pos, w, op)
                k = _u32(data, pos)[0]
                need(pos + w, k, op)
                if k <= _LITERAL_MAX:
                    try:
                        stack.append(data[pos + w : pos + w + k].decode("utf-8", "surrogatepass"))
                    except UnicodeDecodeError:
                        raise _Fail(at, opname(op), "string is not valid UTF-8") from None
                else:
                    stack.append(LONG_STR)
                pos += w + k
            elif op == BINBYTES:
                w = 4
                need(pos, w, op)
                k = _u32(data, pos)[0]
                need(pos + w, k, op)
                stack.append(data[pos + w : pos + w + k] if k <= _LITERAL_MAX else LONG_BYTES)
                pos += w + k
            elif op == LONG_BINPUT:
                need(pos, 4, op)
                memo_put(at, op, _u32(data, pos)[0])
                pos += 4
            elif op == LONG_BINGET:
                need(pos, 4, op)
                memo_get(at, op, _u32(data, pos)[0])
                pos += 4
            elif op == LIST_OP:
                items = pop_mark(at, op)  # pop_mark rebinds stack: append afterwards
                stack.append(Box("list", len(items)))
            elif op == DICT_OP:
                items = pop_mark(at, op)
                if len(items) % 2:
                    raise _Fail(at, "DICT", "odd number of items for DICT")
                stack.append(Box("dict", len(items) // 2))
            elif op == POP:
                if stack:
                    stack.pop()
                elif metastack:
                    pop_mark(at, op)
                else:
                    raise underflow(at, op)
            elif op == POP_MARK:
                pop_mark(at, op)
            elif op == DUP:
                if not stack:
                    raise underflow(at, op)
                stack.append(stack[-1])
            elif op == SHORT_BINSTRING or op == BINSTRING:
                w = 1 if op == SHORT_BINSTRING else 4
                need(pos, w, op)
                k = data[pos] if w == 1 else _i32(data, pos)[0]
                if k < 0:
                    raise _Fail(at, opname(op), "negative byte count")
                need(pos + w, k, op)
                stack.append(_py2_str(data[pos + w : pos + w + k], at, op))
                pos += w + k
            elif op == GLOBAL or op == INST:
                raw_module, pos = _line(data, pos, n, op)
                raw_name, pos = _line(data, pos, n, op)
                try:
                    module, name = raw_module.decode("utf-8"), raw_name.decode("utf-8")
                except UnicodeDecodeError:
                    raise _Fail(at, opname(op), "global name is not valid UTF-8") from None
                glob = add_global(at, op, module, name)
                if op == GLOBAL:
                    stack.append(glob)
                else:
                    add_call(at, op, glob, tuple(pop_mark(at, op)))
            elif op == OBJ:
                items = pop_mark(at, op)
                if not items:
                    raise _Fail(at, "OBJ", "OBJ needs a class after its MARK")
                add_call(at, op, items[0], tuple(items[1:]))
            elif op == INT:
                raw, pos = _line(data, pos, n, op)
                if raw == b"00":
                    stack.append(False)
                elif raw == b"01":
                    stack.append(True)
                else:
                    stack.append(_text_int(raw, at, op))
            elif op == LONG:
                raw, pos = _line(data, pos, n, op)
                stack.append(_text_int(raw[:-1] if raw.endswith(b"L") else raw, at, op))
            elif op == FLOAT:
                raw, pos = _line(data, pos, n, op)
                try:
                    stack.append(float(raw.decode("ascii")))
                except (UnicodeDecodeError, ValueError):
                    raise _Fail(at, "FLOAT", f"bad FLOAT literal {raw[:40]!r}") from None
            elif op == STRING:
                raw, pos = _line(data, pos, n, op)
                if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
                    raise _Fail(at, "STRING", "the STRING opcode argument must be quoted")
                try:
                    value = codecs.escape_decode(raw[1:-1])[0]
                except ValueError:
                    raise _Fail(at, "STRING", "bad escape in STRING argument") from None
                stack.append(_py2_str(value, at, op))
            elif op == UNICODE:
                raw, pos = _line(data, pos, n, op)
                try:
                    stack.append(_short(raw.decode("raw-unicode-escape"), LONG_STR))
                except UnicodeDecodeError:
                    raise _Fail(at, "UNICODE", "bad raw-unicode-escape argument") from None
            elif op == PUT:
                raw, pos = _line(data, pos, n, op)
                memo_put(at, op, _decimal_int(raw, at, op))
            elif op == GET:
                raw, pos = _line(data, pos, n, op)
                memo_get(at, op, _decimal_int(raw, at, op))
            elif op == PERSID:
                _, pos = _line(data, pos, n, op)
                trace.refused.append((at, "PERSID", "persistent id: the loader would call persistent_load"))
                stack.append(PERSISTENT)
            elif op == BINPERSID:
                if not stack:
                    raise underflow(at, op)
                stack.pop()
                trace.refused.append((at, "BINPERSID", "persistent id: the loader would call persistent_load"))
                stack.append(PERSISTENT)
            elif op == STOP:
                if not stack:
                    raise underflow(at, op)
                if len(stack) != 1 or metastack:
                    # The unpickler returns the top value and ignores the rest; picklers never do this.
                    trace.oddities.append((
                        at, "STOP",
                        f"STOP leaves {len(stack) - 1} extra values and {len(metastack)} open MARKs behind "
                        "(ignored by the unpickler, never written by a pickler)",
                    ))
                trace.stop = at
                trace.end = pos
                return
            else:
                raise _Fail(at, opname(op), f"byte 0x{op:02x} is not a pickle opcode")
        else:
            if op == MEMOIZE:
                if not stack:
                    raise underflow(at, op)
                memo[len(memo)] = stack[-1]  # never an overwrite: PUTs may not skip ahead (memo_put)
            elif op == SHORT_BINUNICODE:
                if pos >= n or pos + 1 + data[pos] > n:
                    raise truncated(at, op)
                k = data[pos] + 1
                try:
                    stack.append(data[pos + 1 : pos + k].decode("utf-8", "surrogatepass"))
                except UnicodeDecodeError:
                    raise _Fail(at, opname(op), "string is not valid UTF-8") from None
                pos += k
            elif op == TUPLE1:
                if not stack:
                    raise underflow(at, op)
                stack[-1] = (stack[-1],)
            elif op == TUPLE2 or op == TUPLE3:
                k = op - TUPLE1 + 1
                if len(stack) < k:
                    raise underflow(at, op)
                tup = tuple(stack[-k:])
                del stack[-k:]
                stack.append(tup)
            elif op == NEWTRUE:
                stack.append(True)
            elif op == NEWFALSE:
                stack.append(False)
            elif op == STACK_GLOBAL:
                if len(stack) < 2:
                    raise underflow(at, op)
                name = stack.pop()
                module = stack.pop()
                stack.append(add_global(at, op, module, name))
            elif op == NEWOBJ:
                if len(stack) < 2:
                    raise underflow(at, op)
                args = stack.pop()
                made = Made(at, "REDUCE" if op == REDUCE else "NEWOBJ", stack[-1], args)
                calls.append(made)
                stack[-1] = made
            elif op == FRAME:
                if frame_end != _NO_FRAME:
                    raise _Fail(at, "FRAME", "FRAME inside a frame (picklers never write that)")
                need(pos, 8, op)
                k = _u64(data, pos)[0]
                pos += 8
                if pos + k > n:
                    raise _Fail(at, "FRAME", f"frame of {k} bytes runs past the end of the stream")
                frame_end = pos + k
            elif op == PROTO:
                need(pos, 1, op)
                proto = data[pos]
                pos += 1
                if proto > HIGHEST_PROTOCOL:
                    raise _Fail(at, "PROTO", f"unsupported pickle protocol {proto}")
                if at != 0:
                    trace.oddities.append((at, "PROTO", "PROTO after the first opcode (picklers write it first)"))
                trace.proto = proto
            elif op == ADDITEMS:
                items = pop_mark(at, op)
                if op == SETITEMS and len(items) % 2:
                    raise _Fail(at, opname(op), "odd number of items for SETITEMS")
                if not stack:
                    raise underflow(at, op)
                target = stack[-1]
                if type(target) is Box:
                    target.n += len(items)
                else:
                    trace.mutations.append((at, opname(op), target))
            elif op == BINUNICODE8:
                w = 8
                need(pos, w, op)
                k = _u64(data, pos)[0]
                need(pos + w, k, op)
                if k <= _LITERAL_MAX:
                    try:
                        stack.append(data[pos + w : pos + w + k].decode("utf-8", "surrogatepass"))
                    except UnicodeDecodeError:
                        raise _Fail(at, opname(op), "string is not valid UTF-8") from None
                else:
                    stack.append(LONG_STR)
                pos += w + k
            elif op == BINBYTES8 or op == BYTEARRAY8:
                w = 8
                need(pos, w, op)
                k = _u64(data, pos)[0]
                need(pos + w, k, op)
                if op == BYTEARRAY8:
                    stack.append(BYTEARRAY)
                else:
                    stack.append(data[pos + w : pos + w + k] if k <= _LITERAL_MAX else LONG_BYTES)
                pos += w + k
            elif op == NEWOBJ_EX:
                if len(stack) < 3:
                    raise underflow(at, op)
                kwargs = stack.pop()
                args = stack.pop()
                cls = stack.pop()
                add_call(at, op, cls, args, kwargs)
            elif op == EMPTY_SET:
                stack.append(Box("set"))
            elif op == FROZENSET_OP:
                pop_mark(at, op)
                stack.append(FROZENSET)
            elif op == LONG1 or op == LONG4:
                w = 1 if op == LONG1 else 4
                need(pos, w, op)
                k = data[pos] if w == 1 else _i32(data, pos)[0]
                if k < 0:
                    raise _Fail(at, opname(op), "negative byte count")
                need(pos + w, k, op)
                chunk = data[pos + w : pos + w + k]
                stack.append(int.from_bytes(chunk, "little", signed=True) if k <= 64 else BigInt(k * 241 // 100 + 1))
                pos += w + k
            elif op == EXT1 or op == EXT2 or op == EXT4:
                w = {EXT1: 1, EXT2: 2, EXT4: 4}[op]
                need(pos, w, op)
                code = data[pos] if w == 1 else (_u16 if w == 2 else _i32)(data, pos)[0]
                pos += w
                trace.refused.append(
                    (at, opname(op), f"extension code {code}: {opname(op)} imports a global through "
                     "copyreg's extension registry, which the stream does not name")
                )
                glob = Glob(at, opname(op), ("<extension>", str(code)), None)
                stack.append(glob)
            elif op == NEXT_BUFFER:
                trace.oddities.append((at, "NEXT_BUFFER", "out-of-band buffer: loads needs buffers=..."))
                stack.append(BUFFER)
            elif op == READONLY_BUFFER:
                if not stack:
                    raise underflow(at, op)
            else:
                raise _Fail(at, opname(op), f"byte 0x{op:02x} is not a pickle opcode")


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
