"""The resource tracking of ``_opwalk.c``'s walk, in Python: used only when the C extension is not
built, so that ``max_depth``, ``max_copy`` and ``max_hashed_keys`` hold on every install.

Same model as the C walk (see the comment above ``Track`` in _opwalk.c): one record per container
or call result, shared through the memo; depth checked as depth + slack, where slack sums the depth
gained by records already inside another; copies charged when a record is consumed again. Slower
than the C walk (pickletools parses every argument), linear all the same.
"""

from __future__ import annotations

import pickletools
from typing import Any

from ._limits import Limits

__all__ = ["track"]

_EMBEDDED, _USED, _TUPLE, _STR = 1, 2, 4, 8
_BIG_LITERAL = 256
_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                      "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"})
_CONTAINERS = {"EMPTY_LIST": 0, "EMPTY_DICT": 0, "EMPTY_SET": 0, "EMPTY_TUPLE": 1}


class _Limit(Exception):
    def __init__(self, name: str, value: int) -> None:
        self.name, self.value = name, value


def track(data: bytes, limits: Limits) -> tuple[int, str, str, int] | bool | None:
    """(position, message, limit name, measured) when a limit is exceeded; False when the stream
    holds an integer literal longer than max_digits allows on the unchecked path; None otherwise
    (including streams pickletools cannot parse: the static pass judges those)."""
    max_depth, max_copy, max_int_bytes, max_hashed = limits.c_args()
    depth, count, flags = [0, 0], [0, 0], [0, _STR]
    items: dict[int, list[int]] = {}
    stack: list[int] = []
    marks: list[int] = []
    memo: list[int] = []
    state = {"slack": 0, "copied": 0, "hashed": 0, "bigint": False}

    def new(d: int, c: int) -> int:
        depth.append(d)
        count.append(c)
        flags.append(0)
        return len(depth) - 1

    def check(d: int) -> None:
        if max_depth >= 0 and d + state["slack"] > max_depth:
            raise _Limit("max_depth", d + state["slack"])

    def insert(target: int, new_items: list[int]) -> None:
        d = 0
        for r in new_items:
            if r:
                flags[r] |= _EMBEDDED
                d = max(d, depth[r])
        if not target:
            return
        count[target] += len(new_items)
        if d + 1 > depth[target]:
            if flags[target] & _EMBEDDED:
                state["slack"] += d + 1 - depth[target]
            depth[target] = d + 1
        check(depth[target])

    def hashed(keys: list[int]) -> None:
        if max_hashed < 0:
            return
        state["hashed"] += sum(1 for r in keys if not flags[r] & _STR)
        if state["hashed"] > max_hashed:
            raise _Limit("max_hashed_keys", state["hashed"])

    def consume(r: int) -> None:
        if not r or not count[r]:
            return
        if not flags[r] & _USED:
            flags[r] |= _USED
            return
        state["copied"] += count[r]
        if max_copy >= 0 and state["copied"] > max_copy:
            raise _Limit("max_copy", state["copied"])

    def container(new_items: list[int], is_tuple: bool) -> None:
        r = new(1, 0)
        if is_tuple and new_items:
            items[r] = new_items[:16]
            flags[r] |= _TUPLE
        insert(r, new_items)
        stack.append(r)

    def call(args: list[int]) -> None:
        d = total = 0
        for a in args:
            if not a:
                continue
            flags[a] |= _EMBEDDED
            d = max(d, depth[a])
            consume(a)
            for item in items.get(a, ()) if flags[a] & _TUPLE else (a,):
                if item is not a:
                    consume(item)
                total += count[item]
        if max_hashed >= 0:
            state["hashed"] += total
            if state["hashed"] > max_hashed:
                raise _Limit("max_hashed_keys", state["hashed"])
        r = new(d + 1, total)
        check(d + 1)
        stack.append(r)

    def pop_mark() -> list[int]:
        mark = marks.pop()
        popped = stack[mark:]
        del stack[mark:]
        return popped

    pos: int | None = 0
    arg: Any
    try:
        for op, arg, pos in pickletools.genops(data):
            name = op.name
            if name in _STRINGS:
                size = len(arg) if isinstance(arg, (str, bytes)) else 0
                if size > _BIG_LITERAL:
                    r = new(0, size)
                    flags[r] |= _STR
                    stack.append(r)
                else:
                    stack.append(1)
            elif name == "BYTEARRAY8":
                stack.append(new(0, len(arg)) if len(arg) > _BIG_LITERAL else 0)
            elif name in ("LONG1", "LONG4", "INT", "LONG"):
                if max_int_bytes >= 0 and isinstance(arg, int) and arg.bit_length() > 8 * max_int_bytes:
                    state["bigint"] = True
                stack.append(0)
            elif name == "MARK":
                marks.append(len(stack))
            elif name in _CONTAINERS:
                container([], bool(_CONTAINERS[name]))
            elif name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
                popped = pop_mark()
                if name == "DICT":
                    hashed(popped[::2])
                elif name == "FROZENSET":
                    hashed(popped)
                container(popped, name == "TUPLE")
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                k = int(name[-1])
                popped = stack[-k:]
                del stack[-k:]
                container(popped, True)
            elif name in ("APPEND", "SETITEM"):
                k = 1 if name == "APPEND" else 2
                popped = stack[-k:]
                del stack[-k:]
                if name == "SETITEM":
                    hashed(popped[:1])
                insert(stack[-1], popped)
            elif name in ("APPENDS", "SETITEMS", "ADDITEMS"):
                popped = pop_mark()
                if name != "APPENDS":
                    hashed(popped[::2] if name == "SETITEMS" else popped)
                insert(stack[-1], popped)
            elif name == "POP":
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    stack.pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                memo.append(stack[-1])
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif name in ("REDUCE", "NEWOBJ"):
                args = stack.pop()
                stack.pop()
                call([args])
            elif name == "NEWOBJ_EX":
                kwargs, args = stack.pop(), stack.pop()
                stack.pop()
                call([args, kwargs])
            elif name in ("OBJ", "INST"):
                popped = pop_mark()
                call(popped[1:] if name == "OBJ" else popped)
            elif name == "BUILD":
                state_rec = stack.pop()
                consume(state_rec)
                for item in items.get(state_rec, ()):
                    consume(item)
                insert(stack[-1], [state_rec])
            elif name == "STACK_GLOBAL":
                del stack[-2:]
                stack.append(0)
            elif name == "BINPERSID":
                stack[-1] = 0
            elif name in ("PROTO", "FRAME", "STOP", "READONLY_BUFFER"):
                pass
            else:  # scalars, globals, EXT*, PERSID, NEXT_BUFFER
                stack.append(0)
    except _Limit as hit:
        return (pos or 0, "resource limit exceeded", hit.name, hit.value)
    except Exception:  # noqa: BLE001 - a stream pickletools or the model cannot follow: the static
        return None  # pass names what is wrong, and the real unpickler fails at the same place
    return False if state["bigint"] else None
