"""Out-of-band buffers: ``dumps(obj, buffers=True)`` returns a header and the large buffers apart.

Pickle protocol 5 hands every buffer that supports it (numpy arrays, bytearrays, PickleBuffers) to
a ``buffer_callback`` instead of copying it into the stream. A transport that can send several
frames (ZeroMQ multipart, Dask, shared memory) then ships the buffers as they are, and the receiver
rebuilds the arrays on top of the buffers it received: no copy on either side.

The envelope carries the BUFFERS flag, and its payload starts with a table of the buffer sizes::

    4   count of buffers (little-endian)
    8n  size in bytes of each buffer
    ..  the pickle stream, which refers to the buffers in order

so ``loads`` says "needs 2 buffers, got 1" (or "buffer 0 has 10 bytes, needs 80") instead of
letting pickle fail, or silently ignore extra buffers.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any, Iterable

from .errors import DecodeError, UsageError

__all__ = ["BufferCollector", "check_buffers", "table"]

_COUNT = struct.Struct("<I")
_SIZE = struct.Struct("<Q")


class BufferCollector:
    """The ``buffer_callback`` of one dumps: keeps each contiguous buffer out of band, as a memoryview."""

    __slots__ = ("buffers",)

    def __init__(self) -> None:
        self.buffers: list[memoryview] = []

    def clear(self) -> None:
        """Forget the buffers of a failed attempt (auto may try several backends)."""
        self.buffers = []

    def __call__(self, buffer: pickle.PickleBuffer) -> bool:
        try:
            view = buffer.raw()  # a flat byte view of the same memory; no copy
        except BufferError:  # not contiguous: pickle copies it into the stream instead
            return True
        self.buffers.append(view)
        return False


def table(buffers: list[memoryview]) -> bytes:
    """The size table that starts a BUFFERS payload."""
    return _COUNT.pack(len(buffers)) + b"".join(_SIZE.pack(b.nbytes) for b in buffers)


def _split(payload: memoryview) -> tuple[list[int], memoryview]:
    """The buffer sizes and the pickle stream of a BUFFERS payload."""
    if len(payload) < _COUNT.size:
        raise DecodeError("truncated out-of-band payload: the buffer table is cut off")
    (count,) = _COUNT.unpack_from(payload, 0)
    end = _COUNT.size + count * _SIZE.size
    if len(payload) < end:
        raise DecodeError(f"truncated out-of-band payload: the table of {count} buffers is cut off")
    sizes = [_SIZE.unpack_from(payload, _COUNT.size + i * _SIZE.size)[0] for i in range(count)]
    return sizes, payload[end:]


def check_buffers(payload: memoryview, buffers: Iterable[Any]) -> tuple[list[Any], memoryview]:
    """The buffers as a list and the pickle stream, once count and sizes match the table."""
    sizes, stream = _split(payload)
    given = list(buffers)
    if len(given) != len(sizes):
        raise DecodeError(f"this payload needs {len(sizes)} out-of-band buffers, {len(given)} were passed")
    for i, (buffer, size) in enumerate(zip(given, sizes)):
        try:
            nbytes = memoryview(buffer).nbytes
        except TypeError:
            raise UsageError(f"buffers[{i}] is a {type(buffer).__qualname__}, not a bytes-like object") from None
        if nbytes != size:
            raise DecodeError(f"buffers[{i}] has {nbytes} bytes; this payload needs {size} there (buffers out of order?)")
    return given, stream

