"""Source lines for tracebacks: code shipped by value keeps its file name, line numbers *and* lines.

A traceback shows a frame's source line by asking :mod:`linecache` for line N of the code's
``co_filename``. On a receiver that lacks the sender's file (a fresh worker, another machine) there is
nothing to read, so raw pickling libraries show ``File "task.py", line 20, in refuse`` and no text
(cloudpickle 3.1.3 even replaces the name with ``"<dynamic-code>"``).

anypickle ships the lines themselves:

* the sender (:class:`LineCollector`) notes every code object a backend writes by value and, after the
  dump, looks up the lines those code objects can report (``co_lines``/``co_positions``, nested code
  included) in its own :mod:`linecache`, which also holds notebook cells and lines received earlier;
* the lines travel in the envelope's SOURCE section (:func:`encode`), outside the payload's pickle
  stream, so the stream stays exactly what the backend wrote;
* the receiver (:func:`register`) keeps the encoded block as it is and puts a *lazy* entry per file into
  :mod:`linecache`; the block is decoded only when a traceback (or :mod:`inspect`) first asks for a line.

Only lines the code can report travel, not whole files: a lambda costs its one line.
A real file of that name on the receiver wins, as it does for any lazily cached module in Python.
"""

from __future__ import annotations

import functools
import linecache
import _thread
import opcode
import types
import weakref
from typing import Iterable, Iterator

__all__ = ["LineCollector", "add", "decode", "encode", "register"]

# Lines received by this process, per file: {filename: {lineno: text}}. A later payload adds lines
# to what earlier ones brought (two functions of one script, shipped in two tasks).
_received: dict[str, dict[int, str]] = {}
# Lines not decoded yet, per file, as (encoded block, span of its section) or already as {lineno: text}, keyed by
# their content: a worker that receives the same function in every task keeps one copy.
_pending: dict[str, dict[object, tuple[bytes, tuple[int, int]] | dict[int, str]]] = {}
_lock = _thread.RLock()  # _offer, called with it held, may call _text (_thread: threading costs ~1 ms to import)
# Blocks registered already, by content: loading the same function again skips the table walk.
_registered: dict[bytes, list[str]] = {}


class LineCollector:
    """Notes the code objects a dump ships by value; :meth:`encode` then fetches their lines."""

    __slots__ = ("codes",)

    def __init__(self) -> None:
        self.codes: dict[int, types.CodeType] = {}

    def add(self, code: types.CodeType) -> None:
        """Note ``code`` (its nested code objects are noted by :meth:`encode`)."""
        self.codes[id(code)] = code

    def encode(self) -> bytes:
        """The SOURCE section for the noted code, or ``b""`` when no line is known."""
        codes = self.codes
        if len(codes) == 1:  # one function (marshal, most tasks): its block is cached whole
            (code,) = codes.values()
            return _of_code(code)[1]
        found: dict[str, dict[int, str]] = {}
        for code in codes.values():
            for filename, lines in _of_code(code)[0].items():
                found.setdefault(filename, {}).update(lines)
        return encode({name: dict(sorted(lines.items())) for name, lines in found.items()})


# Per code object (by identity, while it lives): its lines and its encoded block. Shipping the same
# function again, as schedulers do for every task, costs a dict lookup instead of a pass over the
# code's positions (~15 µs for a small function).
_cache: dict[int, tuple[weakref.ref, dict[str, dict[int, str]], bytes]] = {}


def _forget(key: int, _: object) -> None:
    _cache.pop(key, None)


def _of_code(code: types.CodeType) -> tuple[dict[str, dict[int, str]], bytes]:
    key = id(code)
    hit = _cache.get(key)
    if hit is not None and hit[0]() is code:
        return hit[1], hit[2]
    wanted: dict[str, set[int]] = {}
    for each in _with_nested((code,)):
        wanted.setdefault(each.co_filename, set()).update(_line_numbers(each))
    found: dict[str, dict[int, str]] = {}
    for filename, numbers in wanted.items():
        lines = linecache.getlines(filename)
        if lines:
            found[filename] = {n: lines[n - 1] for n in sorted(numbers) if 0 < n <= len(lines)}
    block = encode(found)
    if len(_cache) >= 4096:  # bounded, whatever the code objects' lifetimes
        _cache.clear()
    _cache[key] = (weakref.ref(code, functools.partial(_forget, key)), found, block)
    return found, block


def _with_nested(codes: Iterable[types.CodeType]) -> Iterator[types.CodeType]:
    stack = list(codes)
    seen: set[int] = set()
    while stack:
        code = stack.pop()
        if id(code) in seen:
            continue
        seen.add(id(code))
        yield code
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


# Instructions of a frame's prologue (3.11+), which sit on the ``def`` line and never fail there:
# the def line travels only when the body itself is on it (a lambda, a one-line def).
_PROLOGUE = frozenset(opcode.opmap[name] for name in (
    "RESUME", "MAKE_CELL", "COPY_FREE_VARS", "RETURN_GENERATOR", "CACHE") if name in opcode.opmap)
_RETURN_GENERATOR = opcode.opmap.get("RETURN_GENERATOR")
_POP_TOP = opcode.opmap["POP_TOP"]


def _line_numbers(code: types.CodeType) -> set[int]:
    """Every line a frame of ``code`` can report: the lines of its instructions, prologue excluded.

    From 3.11, an instruction spans ``lineno..end_lineno`` (a multi-line call): tracebacks of 3.13 show
    all of them, so all travel.
    """
    positions = getattr(code, "co_positions", None)
    if positions is None:  # 3.10: no prologue instructions
        return {line for _, _, line in code.co_lines() if line is not None} or {code.co_firstlineno}
    ops = code.co_code[::2]  # one opcode (or CACHE entry) per position
    spans = list(zip(ops, positions()))
    if _RETURN_GENERATOR is not None:
        at = ops.find(_RETURN_GENERATOR)
        if at >= 0 and at + 1 < len(ops) and ops[at + 1] == _POP_TOP:  # the generator prologue's POP_TOP
            del spans[at + 1]
    numbers = {pos[0] for op, pos in spans if op not in _PROLOGUE and pos[0] is not None}
    for op, (first, last, _, _) in spans:  # multi-line instructions: rare, so checked apart
        if last is not None and first is not None and last > first and op not in _PROLOGUE:
            numbers.update(range(first, last + 1))
    return numbers or {code.co_firstlineno}


_SMALL = [bytes((i,)) for i in range(128)]


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(block: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = block[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def encode(files: dict[str, dict[int, str]]) -> bytes:
    """``{filename: {lineno: text}}`` as bytes, small: most of it is the text itself.

    A table first (file count; per file its name and the size of its section, as LEB128 varints),
    then one section per file: ``(line number minus the previous one, text length, UTF-8 text)`` per
    line. The receiver reads the table alone to know the files, and a file's section only when a
    traceback asks for one of its lines. Nothing but bytes and integers: no pickle, no marshal.
    """
    if not files:
        return b""
    table = [_varint(len(files))]
    sections = []
    for filename, lines in files.items():
        parts: list[bytes] = []
        previous = 0
        for n in sorted(lines):
            data = lines[n].encode("utf-8", "surrogatepass")
            parts += (_varint(n - previous), _varint(len(data)), data)
            previous = n
        section = b"".join(parts)
        name = filename.encode("utf-8", "surrogatepass")
        table += (_varint(len(name)), name, _varint(len(section)))
        sections.append(section)
    return b"".join(table + sections)


def _files(block: bytes) -> Iterator[tuple[str, tuple[int, int]]]:
    """``(filename, (start, end) of its section)`` for each file of an encoded block."""
    count, pos = _read_varint(block, 0)
    table: list[tuple[str, int]] = []
    for _ in range(count):
        size, pos = _read_varint(block, pos)
        raw = block[pos:pos + size]
        if len(raw) != size:
            raise ValueError("truncated source lines")
        pos += size
        length, pos = _read_varint(block, pos)
        table.append((raw.decode("utf-8", "surrogatepass"), length))
    for name, length in table:
        if pos + length > len(block):
            raise ValueError("truncated source lines")
        yield name, (pos, pos + length)
        pos += length


def _file_lines(block: bytes, span: tuple[int, int]) -> dict[int, str]:
    pos, end = span
    lines = {}
    n = 0
    while pos < end:
        delta, pos = _read_varint(block, pos)
        length, pos = _read_varint(block, pos)
        n += delta
        lines[n] = block[pos:pos + length].decode("utf-8", "surrogatepass")
        pos += length
    return lines


def decode(block: bytes) -> dict[str, dict[int, str]]:
    """The ``{filename: {lineno: text}}`` of an encoded block (raises ``ValueError``/``IndexError`` if malformed)."""
    return {name: _file_lines(block, span) for name, span in list(_files(block))} if block else {}


def register(block: bytes) -> None:
    """Offer the lines of an encoded block to :mod:`linecache`, lazily.

    Costs a walk over the file names only; the lines are decoded on the first lookup of their file.
    A malformed block is ignored: lines are a courtesy for tracebacks and never fail a load.
    Paid by every function payload a worker loads: kept to dict lookups in the common cases.
    """
    known = _registered.get(block)
    if known is not None:
        cache = linecache.cache
        for name in known:
            if name not in cache:
                break
        else:
            return  # the same function again (a scheduler's every task), still offered: nothing new
    names = _table(block)
    if names is None:
        return
    if len(_registered) >= 1024:  # bounded, whatever the number of distinct functions received
        _registered.clear()
    _registered[block] = [name for name, _ in names]
    _lock.acquire()  # (not "with": ~75 ns less, on a path every function payload takes)
    try:
        for filename, span in names:
            _add(filename, (block, span), block[span[0]:span[1]])
    finally:
        _lock.release()


def _table(block: bytes) -> list[tuple[str, tuple[int, int]]] | None:
    """``list(_files(block))``, or None for a malformed block; one file is read without the generator."""
    n = len(block)
    # One file (count 1) whose name is under 128 bytes and whose section is under 16 KiB: every
    # varint of the table is one or two bytes, read inline.
    if n > 3 and block[0] == 1 and block[1] < 0x80:
        end = 2 + block[1]
        if end + 1 < n:
            size = block[end]
            start = end + 1
            if size >= 0x80:
                size = (size & 0x7F) | (block[start] << 7)
                start += 1
            if size < 0x4000 and start + size <= n:
                try:
                    return [(block[2:end].decode("utf-8", "surrogatepass"), (start, start + size))]
                except UnicodeDecodeError:
                    return None
    try:
        return list(_files(block))
    except (ValueError, IndexError):  # UnicodeDecodeError is a ValueError
        return None


def add(filename: str, first_lineno: int, text: str) -> None:
    """Offer the lines of ``text``, which starts at line ``first_lineno`` of ``filename`` (portable mode)."""
    lines = {first_lineno + i: line for i, line in enumerate(text.splitlines(True))}
    with _lock:
        _add(filename, lines, (first_lineno, text))


def _add(filename: str, lines: tuple[bytes, tuple[int, int]] | dict[int, str], content: object) -> None:
    entry = linecache.cache.get(filename)
    if entry is None or (len(entry) == 4 and entry[1] is None and filename in _received):
        # Nothing cached, or lines this module served before this payload brought more.
        _pending.setdefault(filename, {})[content] = lines
        _offer(filename)
    elif len(entry) == 1 and filename in _pending:  # our lazy entry, not realized yet
        _pending[filename][content] = lines
    # else: linecache holds the file itself (the receiver has it): it wins, nothing is kept


def _offer(filename: str) -> None:
    if filename.startswith("<") and filename.endswith(">"):
        # linecache never resolves a lazy entry for such names (notebook cells of old IPython,
        # "<stdin>"): give it the lines now, as IPython itself does for its cells.
        text = _text(filename)
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    else:
        linecache.cache[filename] = (lambda: _text(filename),)


def _text(filename: str) -> str:
    """The file as far as it is known: received lines at their numbers, blank lines elsewhere."""
    with _lock:
        lines = _received.setdefault(filename, {})
        for more in _pending.pop(filename, {}).values():
            try:
                lines.update(more if isinstance(more, dict) else _file_lines(*more))
            except (ValueError, IndexError):  # a malformed section: lines are a courtesy, never an error
                pass
        if not lines:
            return ""
        out = ["\n"] * max(lines)
        for n, text in lines.items():
            out[n - 1] = text if text.endswith("\n") else text + "\n"
        return "".join(out)
