"""The resource tracking of ``_opwalk.c``'s walk, in Python: used only when the C extension is not
built, so that ``max_depth``, ``max_copy`` and ``max_hashed_keys`` hold on every install.

Same model as the C walk (see the comment above ``Track`` in _opwalk.c): one record per container
or call result, shared through the memo; depth checked as depth + slack, where slack sums the depth
gained by records already inside another; copies charged when a record is consumed again. Slower
than the C walk (pickletools parses every argument), linear all the same. One method per group of
opcodes, picked by name from :data:`_STEPS`.
"""

from __future__ import annotations

import pickletools
from typing import Any, Callable

from ._limits import Limits

__all__ = ["track"]

_EMBEDDED, _USED, _TUPLE, _STR = 1, 2, 4, 8
_BIG_LITERAL = 256


class _Limit(Exception):
    def __init__(self, name: str, value: int) -> None:
        self.name, self.value = name, value


def track(data: bytes, limits: Limits) -> tuple[int, str, str, int] | bool | None:
    """(position, message, limit name, measured) when a limit is exceeded; False when the stream
    holds an integer literal longer than max_digits allows on the unchecked path; None otherwise
    (including streams pickletools cannot parse: the static pass judges those)."""
    tracker = _Tracker(limits)
    pos: int | None = 0
    try:
        for op, arg, pos in pickletools.genops(data):
            _STEPS.get(op.name, _Tracker.scalar)(tracker, op.name, arg)
    except _Limit as hit:
        return (pos or 0, "resource limit exceeded", hit.name, hit.value)
    except Exception:  # noqa: BLE001 - a stream pickletools or the model cannot follow: the static
        return None  # pass names what is wrong, and the real unpickler fails at the same place
    return False if tracker.bigint else None


class _Tracker:
    """Records (depth, item count, flags) by index, the abstract stack of record indexes, marks, memo."""

    def __init__(self, limits: Limits) -> None:
        self.max_depth, self.max_copy, self.max_int_bytes, self.max_hashed = limits.c_args()
        self.depth, self.count, self.flags = [0, 0], [0, 0], [0, _STR]
        self.items: dict[int, list[int]] = {}
        self.stack: list[int] = []
        self.marks: list[int] = []
        self.memo: list[int] = []
        self.slack = self.copied = self.hashed_count = 0
        self.bigint = False

    # The model.

    def new(self, d: int, c: int) -> int:
        self.depth.append(d)
        self.count.append(c)
        self.flags.append(0)
        return len(self.depth) - 1

    def check(self, d: int) -> None:
        if self.max_depth >= 0 and d + self.slack > self.max_depth:
            raise _Limit("max_depth", d + self.slack)

    def insert(self, target: int, new_items: list[int]) -> None:
        depth, flags = self.depth, self.flags
        d = 0
        for r in new_items:
            if r:
                flags[r] |= _EMBEDDED
                d = max(d, depth[r])
        if not target:
            return
        self.count[target] += len(new_items)
        if d + 1 > depth[target]:
            if flags[target] & _EMBEDDED:
                self.slack += d + 1 - depth[target]
            depth[target] = d + 1
        self.check(depth[target])

    def hash_keys(self, keys: list[int]) -> None:
        if self.max_hashed < 0:
            return
        self.hashed_count += sum(1 for r in keys if not self.flags[r] & _STR)
        if self.hashed_count > self.max_hashed:
            raise _Limit("max_hashed_keys", self.hashed_count)

    def consume(self, r: int) -> None:
        if not r or not self.count[r]:
            return
        if not self.flags[r] & _USED:
            self.flags[r] |= _USED
            return
        self.copied += self.count[r]
        if self.max_copy >= 0 and self.copied > self.max_copy:
            raise _Limit("max_copy", self.copied)

    def container(self, new_items: list[int], is_tuple: bool) -> None:
        r = self.new(1, 0)
        if is_tuple and new_items:
            self.items[r] = new_items[:16]
            self.flags[r] |= _TUPLE
        self.insert(r, new_items)
        self.stack.append(r)

    def call(self, args: list[int]) -> None:
        d = total = 0
        for a in args:
            if not a:
                continue
            self.flags[a] |= _EMBEDDED
            d = max(d, self.depth[a])
            self.consume(a)
            for item in self.items.get(a, ()) if self.flags[a] & _TUPLE else (a,):
                if item is not a:
                    self.consume(item)
                total += self.count[item]
        if self.max_hashed >= 0:
            self.hashed_count += total
            if self.hashed_count > self.max_hashed:
                raise _Limit("max_hashed_keys", self.hashed_count)
        r = self.new(d + 1, total)
        self.check(d + 1)
        self.stack.append(r)

    def pop_mark(self) -> list[int]:
        mark = self.marks.pop()
        popped = self.stack[mark:]
        del self.stack[mark:]
        return popped

    def pop(self, k: int) -> list[int]:
        popped = self.stack[-k:]
        del self.stack[-k:]
        return popped

    # The steps, one per group of opcodes (name: the opcode's pickletools name; arg: its argument).

    def scalar(self, name: str, arg: Any) -> None:  # scalars, globals, EXT*, PERSID, NEXT_BUFFER
        self.stack.append(0)

    def nothing(self, name: str, arg: Any) -> None:  # PROTO, FRAME, STOP, READONLY_BUFFER
        pass

    def string(self, name: str, arg: Any) -> None:
        size = len(arg) if isinstance(arg, (str, bytes)) else 0
        if size > _BIG_LITERAL:
            r = self.new(0, size)
            self.flags[r] |= _STR
            self.stack.append(r)
        else:
            self.stack.append(1)

    def bytearray8(self, name: str, arg: Any) -> None:
        self.stack.append(self.new(0, len(arg)) if len(arg) > _BIG_LITERAL else 0)

    def integer(self, name: str, arg: Any) -> None:
        if self.max_int_bytes >= 0 and isinstance(arg, int) and arg.bit_length() > 8 * self.max_int_bytes:
            self.bigint = True
        self.stack.append(0)

    def mark(self, name: str, arg: Any) -> None:
        self.marks.append(len(self.stack))

    def empty(self, name: str, arg: Any) -> None:
        self.container([], name == "EMPTY_TUPLE")

    def from_mark(self, name: str, arg: Any) -> None:  # TUPLE, LIST, DICT, FROZENSET
        popped = self.pop_mark()
        if name == "DICT":
            self.hash_keys(popped[::2])
        elif name == "FROZENSET":
            self.hash_keys(popped)
        self.container(popped, name == "TUPLE")

    def small_tuple(self, name: str, arg: Any) -> None:
        self.container(self.pop(int(name[-1])), True)

    def add_one(self, name: str, arg: Any) -> None:  # APPEND, SETITEM
        popped = self.pop(1 if name == "APPEND" else 2)
        if name == "SETITEM":
            self.hash_keys(popped[:1])
        self.insert(self.stack[-1], popped)

    def add_many(self, name: str, arg: Any) -> None:  # APPENDS, SETITEMS, ADDITEMS
        popped = self.pop_mark()
        if name != "APPENDS":
            self.hash_keys(popped[::2] if name == "SETITEMS" else popped)
        self.insert(self.stack[-1], popped)

    def pop_one(self, name: str, arg: Any) -> None:
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
        else:
            self.stack.pop()

    def pop_to_mark(self, name: str, arg: Any) -> None:
        self.pop_mark()

    def dup(self, name: str, arg: Any) -> None:
        self.stack.append(self.stack[-1])

    def put(self, name: str, arg: Any) -> None:
        self.memo.append(self.stack[-1])

    def get(self, name: str, arg: Any) -> None:
        self.stack.append(self.memo[arg])

    def reduce(self, name: str, arg: Any) -> None:  # REDUCE, NEWOBJ
        args = self.stack.pop()
        self.stack.pop()
        self.call([args])

    def newobj_ex(self, name: str, arg: Any) -> None:
        kwargs, args = self.stack.pop(), self.stack.pop()
        self.stack.pop()
        self.call([args, kwargs])

    def obj(self, name: str, arg: Any) -> None:  # OBJ, INST
        popped = self.pop_mark()
        self.call(popped[1:] if name == "OBJ" else popped)

    def build(self, name: str, arg: Any) -> None:
        state = self.stack.pop()
        self.consume(state)
        for item in self.items.get(state, ()):
            self.consume(item)
        self.insert(self.stack[-1], [state])

    def stack_global(self, name: str, arg: Any) -> None:
        del self.stack[-2:]
        self.stack.append(0)

    def binpersid(self, name: str, arg: Any) -> None:
        self.stack[-1] = 0


def _steps() -> dict[str, Callable[[_Tracker, str, Any], None]]:
    groups: dict[Callable[[_Tracker, str, Any], None], tuple[str, ...]] = {
        _Tracker.string: ("STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                          "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"),
        _Tracker.bytearray8: ("BYTEARRAY8",), _Tracker.integer: ("LONG1", "LONG4", "INT", "LONG"),
        _Tracker.mark: ("MARK",), _Tracker.empty: ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "EMPTY_TUPLE"),
        _Tracker.from_mark: ("TUPLE", "LIST", "DICT", "FROZENSET"),
        _Tracker.small_tuple: ("TUPLE1", "TUPLE2", "TUPLE3"), _Tracker.add_one: ("APPEND", "SETITEM"),
        _Tracker.add_many: ("APPENDS", "SETITEMS", "ADDITEMS"), _Tracker.pop_one: ("POP",),
        _Tracker.pop_to_mark: ("POP_MARK",), _Tracker.dup: ("DUP",),
        _Tracker.put: ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"), _Tracker.get: ("GET", "BINGET", "LONG_BINGET"),
        _Tracker.reduce: ("REDUCE", "NEWOBJ"), _Tracker.newobj_ex: ("NEWOBJ_EX",), _Tracker.obj: ("OBJ", "INST"),
        _Tracker.build: ("BUILD",), _Tracker.stack_global: ("STACK_GLOBAL",), _Tracker.binpersid: ("BINPERSID",),
        _Tracker.nothing: ("PROTO", "FRAME", "STOP", "READONLY_BUFFER"),
    }
    return {name: step for step, names in groups.items() for name in names}


_STEPS = _steps()
