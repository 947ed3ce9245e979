"""Pickle opcode bytes by their pickletools names, checked against :mod:`pickletools` at import, and
:func:`opname` for messages.

The constants are written out so that readers (and type checkers) see them; :data:`TABLE` and the
names come from ``pickletools.opcodes``, and an import fails if the two ever disagree.
"""

from __future__ import annotations

import pickletools

__all__ = ["HIGHEST_PROTOCOL", "TABLE", "opname"]

# Opcode bytes, by pickletools name (DICT, LIST and FROZENSET get an _OP suffix: they are builtins).
MARK, STOP, POP, POP_MARK, DUP = 0x28, 0x2E, 0x30, 0x31, 0x32
FLOAT, INT, BININT, BININT1, LONG, BININT2, NONE = 0x46, 0x49, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E
PERSID, BINPERSID, REDUCE, STRING, BINSTRING, SHORT_BINSTRING = 0x50, 0x51, 0x52, 0x53, 0x54, 0x55
UNICODE, BINUNICODE, APPEND, BUILD, GLOBAL, DICT_OP = 0x56, 0x58, 0x61, 0x62, 0x63, 0x64
EMPTY_DICT, APPENDS, GET, BINGET, INST, LONG_BINGET = 0x7D, 0x65, 0x67, 0x68, 0x69, 0x6A
LIST_OP, EMPTY_LIST, OBJ, PUT, BINPUT, LONG_BINPUT = 0x6C, 0x5D, 0x6F, 0x70, 0x71, 0x72
SETITEM, TUPLE, EMPTY_TUPLE, SETITEMS, BINFLOAT = 0x73, 0x74, 0x29, 0x75, 0x47
PROTO, NEWOBJ, EXT1, EXT2, EXT4 = 0x80, 0x81, 0x82, 0x83, 0x84
TUPLE1, TUPLE2, TUPLE3, NEWTRUE, NEWFALSE, LONG1, LONG4 = 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B
BINBYTES, SHORT_BINBYTES = 0x42, 0x43
SHORT_BINUNICODE, BINUNICODE8, BINBYTES8, EMPTY_SET = 0x8C, 0x8D, 0x8E, 0x8F
ADDITEMS, FROZENSET_OP, NEWOBJ_EX, STACK_GLOBAL, MEMOIZE, FRAME = 0x90, 0x91, 0x92, 0x93, 0x94, 0x95
BYTEARRAY8, NEXT_BUFFER, READONLY_BUFFER = 0x96, 0x97, 0x98

TABLE: dict[int, str] = {ord(op.code): op.name for op in pickletools.opcodes}
"""Every opcode byte the running Python's pickletools knows, with its name."""

_WRITTEN = {name.removesuffix("_OP"): value for name, value in dict(globals()).items()
            if isinstance(value, int) and name.isupper() and name != "HIGHEST_PROTOCOL"}
if _WRITTEN != {name: code for code, name in TABLE.items()}:  # pragma: no cover - a new pickletools
    raise ImportError(f"anypickle's opcode constants disagree with pickletools: "
                      f"{sorted(set(_WRITTEN.items()) ^ {(n, c) for c, n in TABLE.items()})}")

HIGHEST_PROTOCOL = 5


def opname(code: int) -> str:
    """The pickletools name of an opcode byte (``"0x99"`` for bytes that are no opcode)."""
    return TABLE.get(code) or f"0x{code:02x}"
