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

import linecache
import struct
import threading
import types
from typing import Iterable, Iterator

__all__ = ["LineCollector", "add", "decode", "encode", "register"]

_COUNT = struct.Struct("<I")
_ENTRY = struct.Struct("<II")  # line number, text length in bytes

# Lines received by this process, per file: {filename: {lineno: text}}. A later payload adds lines
# to what earlier ones brought (two functions of one script, shipped in two tasks).
_received: dict[str, dict[int, str]] = {}
# Lines not decoded yet, per file, as (encoded block, offset) or already as {lineno: text}, keyed by
# their content: a worker that receives the same function in every task keeps one copy.
_pending: dict[str, dict[object, tuple[bytes, int] | dict[int, str]]] = {}
_lock = threading.RLock()  # _offer, called with it held, may call _text


class LineCollector:
    """Notes the code objects a dump ships by value; :meth:`encode` then fetches their lines."""

    __slots__ = ("codes",)

    def __init__(self) -> None:
        self.codes: dict[int, types.CodeType] = {}

    def add(self, code: types.CodeType) -> None:
        """Note ``code`` (its nested code objects are noted by :meth:`encode`)."""
        self.codes[id(code)] = code

    def clear(self) -> None:
        """Forget every code object (a backend's failed attempt wrote nothing that stays)."""
        self.codes.clear()

    def encode(self) -> bytes:
        """The SOURCE section for the noted code, or ``b""`` when no line is known."""
        if not self.codes:
            return b""
        wanted: dict[str, set[int]] = {}
        for code in _with_nested(self.codes.values()):
            wanted.setdefault(code.co_filename, set()).update(_line_numbers(code))
        found: dict[str, dict[int, str]] = {}
        for filename, numbers in wanted.items():
            lines = linecache.getlines(filename)
            if not lines:
                continue
            found[filename] = {n: lines[n - 1] for n in sorted(numbers) if 0 < n <= len(lines)}
        return encode(found)


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


def _line_numbers(code: types.CodeType) -> set[int]:
    """Every line a frame of ``code`` can report: its first line and each line of its instructions.

    From 3.11, an instruction spans ``lineno..end_lineno`` (a multi-line call): tracebacks of 3.13 show
    all of them, so all travel.
    """
    numbers = {code.co_firstlineno}
    positions = getattr(code, "co_positions", None)
    if positions is not None:
        for start, end, _, _ in positions():
            if start is not None:
                numbers.update(range(start, (end or start) + 1))
    else:  # 3.10
        numbers.update(line for _, _, line in code.co_lines() if line is not None)
    return numbers


def encode(files: dict[str, dict[int, str]]) -> bytes:
    """``{filename: {lineno: text}}`` as bytes: counts and lengths as little-endian u32, text as UTF-8.

    A plain layout rather than pickle or marshal: the receiver decodes it with nothing but struct.
    """
    parts = [_COUNT.pack(len(files))]
    for filename, lines in files.items():
        name = filename.encode("utf-8", "surrogatepass")
        parts.append(_COUNT.pack(len(name)) + name + _COUNT.pack(len(lines)))
        for n, text in lines.items():
            data = text.encode("utf-8", "surrogatepass")
            parts.append(_ENTRY.pack(n, len(data)) + data)
    return b"".join(parts) if files else b""


def _files(block: bytes) -> Iterator[tuple[str, int]]:
    """``(filename, offset of its line count)`` for each file of an encoded block."""
    (count,) = _COUNT.unpack_from(block, 0)
    pos = _COUNT.size
    for _ in range(count):
        (size,) = _COUNT.unpack_from(block, pos)
        pos += _COUNT.size
        name = block[pos:pos + size].decode("utf-8", "surrogatepass")
        pos += size
        yield name, pos
        (nlines,) = _COUNT.unpack_from(block, pos)
        pos += _COUNT.size
        for _ in range(nlines):
            _, length = _ENTRY.unpack_from(block, pos)
            pos += _ENTRY.size + length


def _file_lines(block: bytes, pos: int) -> dict[int, str]:
    (nlines,) = _COUNT.unpack_from(block, pos)
    pos += _COUNT.size
    lines = {}
    for _ in range(nlines):
        n, length = _ENTRY.unpack_from(block, pos)
        pos += _ENTRY.size
        lines[n] = block[pos:pos + length].decode("utf-8", "surrogatepass")
        pos += length
    return lines


def decode(block: bytes) -> dict[str, dict[int, str]]:
    """The ``{filename: {lineno: text}}`` of an encoded block (raises ``struct.error``/``ValueError`` if malformed)."""
    return {name: _file_lines(block, pos) for name, pos in _files(block)} if block else {}


def register(block: bytes) -> None:
    """Offer the lines of an encoded block to :mod:`linecache`, lazily.

    Costs a walk over the file names only; the lines are decoded on the first lookup of their file.
    A malformed block is ignored: lines are a courtesy for tracebacks and never fail a load.
    """
    try:
        names = list(_files(block))
    except (struct.error, UnicodeDecodeError):
        return
    with _lock:
        for filename, pos in names:
            _add(filename, (block, pos), block[pos:])


def add(filename: str, first_lineno: int, text: str) -> None:
    """Offer the lines of ``text``, which starts at line ``first_lineno`` of ``filename`` (portable mode)."""
    lines = {first_lineno + i: line for i, line in enumerate(text.splitlines(True))}
    with _lock:
        _add(filename, lines, (first_lineno, text))


def _add(filename: str, lines: tuple[bytes, int] | dict[int, str], content: object) -> None:
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
            lines.update(more if isinstance(more, dict) else _file_lines(*more))
        if not lines:
            return ""
        out = ["\n"] * max(lines)
        for n, text in lines.items():
            out[n - 1] = text if text.endswith("\n") else text + "\n"
        return "".join(out)
