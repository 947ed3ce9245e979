"""The worker process of :class:`anypickle.ProcessPoolExecutor`, and the messages both sides exchange.

Each worker owns one duplex pipe to the parent. Messages are bytes: a one-byte kind, a task id, then
anypickle payloads. Tasks run one at a time, in order; before running one, the worker writes its id
into a shared integer (a memory write, no message), so when a worker dies the parent knows which task
it was running (that one, if it has no reply) and which ones it never read (they go to another worker).

The worker reads its pipe only between tasks. The parent therefore never writes a large message from
its manager thread (it would stall until the worker finished its task, or deadlock with a worker
blocked writing a large reply): those go through a sender thread (see ``executor._Outbox``).
"""

from __future__ import annotations

import struct
import traceback
from collections import OrderedDict
from typing import Any

from .._api import dumps, loads, note_skew
from ..errors import EncodeError

# parent -> worker
CALL = b"C"  # id, payload of (fn, args, kwargs)
CHUNK = b"K"  # id, fn payload length, fn payload, payload of [args, ...]
STOP = b"S"
# worker -> parent
READY = b"I"
RESULT = b"R"  # id, payload of the result
ERROR = b"E"  # id, payload of (exception, formatted remote traceback)
INIT_FAILED = b"F"  # formatted traceback of the initializer's exception

TASK_ID = struct.Struct("<Q")
FN_LENGTH = struct.Struct("<I")
HEAD = 1 + TASK_ID.size

_FN_CACHE_SIZE = 16


def call_message(task_id: int, payload: bytes) -> bytes:
    """The message that runs ``fn(*args, **kwargs)`` from one payload of ``(fn, args, kwargs)``."""
    return b"".join((CALL, TASK_ID.pack(task_id), payload))


def chunk_message(task_id: int, fn_payload: bytes, args_payload: bytes) -> bytes:
    """The message that runs ``[fn(*args) for args in chunk]``; the function travels once per chunk."""
    return b"".join((CHUNK, TASK_ID.pack(task_id), FN_LENGTH.pack(len(fn_payload)), fn_payload, args_payload))


def task_id_of(message: bytes) -> int:
    return TASK_ID.unpack_from(message, 1)[0]


def main(conn: Any, running: Any, initializer: bytes | None) -> None:
    """Entry point of a worker process (started by the executor with spawn or forkserver).

    ``running`` is a shared ``RawValue("q")``: the id of the task this worker is running.
    """
    if initializer is not None:
        try:
            fn, args = loads(initializer)
            fn(*args)
        except BaseException:  # noqa: BLE001 - reported to the parent, which marks the pool broken
            _send(conn, INIT_FAILED + traceback.format_exc().encode("utf-8", "replace"))
            return
    _send(conn, READY)
    functions: OrderedDict[bytes, Any] = OrderedDict()
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):  # the parent closed the pipe or died: nobody is waiting
            break
        if message[:1] == STOP:
            break
        kind = message[:1]
        head = message[:HEAD]
        fn_payload = b""
        result = None
        running.value = TASK_ID.unpack_from(message, 1)[0]
        try:
            if kind == CALL:
                fn, args, kwargs = loads(memoryview(message)[HEAD:])
                result = fn(*args, **kwargs)
            else:
                (n,) = FN_LENGTH.unpack_from(message, HEAD)
                start = HEAD + FN_LENGTH.size
                fn_payload = message[start:start + n]
                fn = functions.get(fn_payload)
                if fn is None:
                    fn = functions[fn_payload] = loads(fn_payload)
                    if len(functions) > _FN_CACHE_SIZE:
                        functions.popitem(last=False)
                chunk = loads(memoryview(message)[start + n:])
                result = [fn(*args) for args in chunk]
            del message
            reply = b"".join((RESULT, head[1:], dumps(result)))
        except BaseException as exc:  # noqa: BLE001 - every task failure goes back to its future
            note_skew(exc, memoryview(message)[HEAD:] if kind == CALL else fn_payload)
            reply = b"".join((ERROR, head[1:], _dump_exception(exc)))
        result = None
        if not _send(conn, reply):
            break


def _send(conn: Any, message: bytes) -> bool:
    try:
        conn.send_bytes(message)
        return True
    except (BrokenPipeError, OSError):  # the parent is gone; nobody is waiting for the reply
        return False


def _dump_exception(exc: BaseException) -> bytes:
    remote = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        return dumps((exc, remote))
    except Exception as dump_error:  # noqa: BLE001 - the exception itself cannot travel: describe it
        stand_in = EncodeError(
            f"the task raised {type(exc).__qualname__}: {exc}, and that exception cannot be sent back "
            f"({type(dump_error).__name__}: {str(dump_error).splitlines()[0] if str(dump_error) else ''})")
        return dumps((stand_in, remote))
