"""The exception tree: every error anypickle raises on purpose derives from :class:`AnyPickleError`.

Each error is also the builtin that users already catch (``TypeError`` for objects that cannot be
serialized, ``ValueError`` for bytes that cannot be loaded), so code written against ``pickle`` keeps
working.
"""

from __future__ import annotations

from typing import Sequence

__all__ = [
    "AnyPickleError",
    "DecodeError",
    "EncodeError",
    "InterpreterMismatchError",
    "SignatureError",
    "UnsafePickleError",
    "UsageError",
    "WorkerCrashedError",
]


class AnyPickleError(Exception):
    """Base class for every error anypickle raises on purpose."""


class UsageError(AnyPickleError, ValueError):
    """An argument to an anypickle function is invalid (unknown backend name, bad option...)."""


class EncodeError(AnyPickleError, TypeError):
    """No backend can serialize this object (or, with a forced backend, that one cannot).

    Not raised for an exception the object's own ``__reduce__``/``__getstate__`` raises (other than the
    ``TypeError``/``PicklingError`` objects use to refuse pickling): that one reaches the caller
    unchanged, as with pickle, cloudpickle and dill.

    ``path`` says where in the object graph the culprit sits (``"obj.jobs[2].gen"``), ``type_name``
    its type, and ``attempts`` what each backend said, as ``(backend name, message)`` pairs.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        type_name: str | None = None,
        attempts: Sequence[tuple[str, str]] = (),
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.type_name = type_name
        self.attempts = tuple(attempts)
        self.hint = hint
        lines = [message]
        if path is not None:
            lines.append(f"  at: {path}" + (f" ({type_name})" if type_name else ""))
        for backend, said in self.attempts:
            lines.append(f"  {backend}: {said}")
        if hint:
            lines.append(f"  what to do: {hint}")
        super().__init__("\n".join(lines))


class DecodeError(AnyPickleError, ValueError):
    """These bytes are not a payload this anypickle can load (truncated, corrupted, foreign)."""


class InterpreterMismatchError(DecodeError):
    """The payload carries bytecode for another interpreter; it was refused before unpickling.

    ``written_by`` and ``running`` describe both interpreters, e.g. ``"CPython 3.12"``.
    """

    def __init__(self, message: str, *, written_by: str, running: str) -> None:
        self.written_by = written_by
        self.running = running
        super().__init__(message)


class SignatureError(DecodeError):
    """The HMAC tag is missing, stripped, or does not match: nothing was unpickled."""


class UnsafePickleError(DecodeError):
    """A safe load refused the stream before executing anything.

    ``global_name`` names the refused global (``"os.system"``) when there is one and ``position`` the
    byte offset of the opcode that would have imported or executed it. ``limit`` names the
    :class:`~anypickle.Limits` field a refused stream exceeds (``"max_depth"``), when that is why.
    """

    def __init__(
        self, message: str, *, global_name: str | None = None, position: int | None = None,
        limit: str | None = None,
    ) -> None:
        self.global_name = global_name
        self.position = position
        self.limit = limit
        super().__init__(message)


class WorkerCrashedError(AnyPickleError, RuntimeError):
    """A worker process died while running this task (``os._exit``, a signal, a segfault).

    Only the task that was running fails; the executor starts a replacement worker and stays usable.
    ``exitcode`` is the process exit code (negative: killed by a signal), ``signal`` the signal's
    name (``"SIGKILL"``) or None, ``pid`` the dead worker's process id.
    """

    def __init__(
        self, message: str, *, exitcode: int | None = None, signal: str | None = None, pid: int | None = None
    ) -> None:
        self.exitcode = exitcode
        self.signal = signal
        self.pid = pid
        super().__init__(message)
