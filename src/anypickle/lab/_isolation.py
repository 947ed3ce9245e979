"""Run one piece of work in a forked child so that a segfault or a hang costs that piece, not the run.

A *fork server* is a long-lived interpreter that has imported the backends once; every job it receives
runs in a fresh ``fork()`` of it. The child starts from the server's pristine state (it never saw an
earlier job's payloads or ``__main__``), reports on a pipe, and exits; the server reads the pipe with a
deadline and reads the child's exit status, so a crash (signal 11) or a hang (killed after ``timeout``)
is reported as a status instead of taking the server down.

Where ``os.fork`` does not exist (Windows) the work runs inline, and the parent gives every job a new
server instead (:class:`anypickle.lab._servers.Pool`): no job then sees another job's ``__main__``, modules
or state, and the parent's per-job timer is the protection against crashes and hangs. Setting
``ANYPICKLE_NO_FORK=1`` takes that path where ``fork`` exists too (the test suite does, to check it).

This module is imported by the child bootstrap of every receiver interpreter (3.10 and newer), so it
uses the standard library only.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from typing import Any, Callable

__all__ = ["HAS_FORK", "Isolated", "run_isolated"]

HAS_FORK = hasattr(os, "fork") and os.environ.get("ANYPICKLE_NO_FORK") != "1"

Emit = Callable[[dict], None]


class Isolated:
    """What happened to one isolated piece of work.

    ``messages`` are the JSON objects the work emitted, in order; ``status`` is ``"exited"``,
    ``"signal"`` or ``"timeout"``; ``code`` is the exit code or the signal number.
    """

    __slots__ = ("messages", "status", "code", "seconds")

    def __init__(self, messages: list, status: str, code: int, seconds: float) -> None:
        self.messages = messages
        self.status = status
        self.code = code
        self.seconds = seconds

    @property
    def final(self) -> "dict | None":
        """The last message, if the work finished by emitting one with a ``"result"`` key."""
        if self.messages and "result" in self.messages[-1]:
            return self.messages[-1]["result"]
        return None

    def describe_death(self) -> str:
        """A short phrase for a child that did not finish: ``"crashed with signal 11 (SIGSEGV)"``."""
        if self.status == "timeout":
            return f"hang: killed after {self.seconds:.0f} s"
        if self.status == "signal":
            try:
                name = signal.Signals(self.code).name
            except ValueError:
                name = "?"
            return f"crashed with signal {self.code} ({name})"
        return f"child exited with code {self.code} without reporting"


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def run_isolated(work: Callable[[Emit], Any], timeout: float) -> Isolated:
    """Run ``work(emit)`` in a forked child; ``emit`` sends a JSON-able dict back to the parent.

    The work's return value, if any, is emitted as ``{"result": value}``.
    """
    start = time.monotonic()
    if not HAS_FORK:
        return _run_inline(work, start)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        code = 0
        try:
            out = os.fdopen(write_fd, "w", buffering=1)

            def emit(message: dict) -> None:
                out.write(json.dumps(message) + "\n")
                out.flush()

            value = work(emit)
            emit({"result": value})
        except BaseException as exc:  # the child must never fall back into the server loop
            code = 70
            try:
                emit({"internal_error": f"{type(exc).__name__}: {exc}"})
            except BaseException:
                pass
        finally:
            _flush_std()
            os._exit(code)
    os.close(write_fd)
    buffer = b""
    deadline = start + timeout
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        buffer += chunk
    os.close(read_fd)
    if timed_out:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - start
    messages = _parse_lines(buffer)
    if timed_out:
        return Isolated(messages, "timeout", -1, seconds)
    if os.WIFSIGNALED(status):
        return Isolated(messages, "signal", os.WTERMSIG(status), seconds)
    return Isolated(messages, "exited", os.WEXITSTATUS(status), seconds)


def _parse_lines(buffer: bytes) -> list:
    messages = []
    for line in buffer.decode("utf-8", "replace").splitlines():
        try:
            messages.append(json.loads(line))
        except ValueError:  # a line cut short by a crash
            break
    return messages


def _run_inline(work: Callable[[Emit], Any], start: float) -> Isolated:
    messages: list = []
    try:
        value = work(messages.append)
        messages.append({"result": json.loads(json.dumps(value))})
        return Isolated(messages, "exited", 0, time.monotonic() - start)
    except BaseException as exc:
        messages.append({"internal_error": f"{type(exc).__name__}: {exc}"})
        return Isolated(messages, "exited", 70, time.monotonic() - start)
