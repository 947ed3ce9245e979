"""The lab's one fresh-interpreter runner: the matrix, ``check()`` and the test suite all start children here.

Two shapes of child, one environment (:class:`anypickle.lab._interpreters.Receiver`: an interpreter and
the ``PYTHONPATH`` that gives it anypickle and its backends, nothing else of the caller's):

- **Fork servers**, for many small jobs: a :class:`Server` is one long-lived
  ``python -c "from anypickle.lab._child import serve; serve()"`` (the child side, :mod:`._child`) in its
  own empty folder, answering one JSON line per job; a :class:`Pool` keeps idle servers per receiver.
  Inside the server every job runs in a fresh ``fork()`` (:func:`run_isolated`): the child starts from the
  server's pristine state, reports on a pipe and exits, so a crash (signal 11) or a hang (killed after
  ``timeout``) is reported as a status (:class:`Isolated`) instead of taking the server down. Where
  ``os.fork`` does not exist (Windows), or with ``ANYPICKLE_NO_FORK=1``, the work runs inline and the
  pool gives every job a new server instead. :func:`send_case` and :func:`receive_case` run one
  catalogue case on a pool: dump it in one interpreter, load and check it in another.
- **Scripts**, for what must be a real program: :func:`run_script` writes ``main.py`` (and helper modules
  beside it) into a folder, runs it there as ``__main__`` in a new interpreter, and returns the JSON its
  last output line holds. :func:`send` and :func:`receive` are the two halves of a trip built on it: a
  script that binds ``obj`` dumps it in one folder; another folder, without the sender's ``__main__``
  or helper modules, loads it and evaluates an expression on it.

The child side imports this module too (for :func:`run_isolated`), so it uses the standard library only.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from . import LOADS_FAILS, _interpreters

__all__ = ["HAS_FORK", "Isolated", "Pool", "RunnerError", "Sent", "Server", "receive", "receive_case", "receive_job",
           "run_isolated", "run_script", "send", "send_case", "slug", "write_case_files"]

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


_BOOT = "from anypickle.lab._child import serve; serve()"


class Server:
    """One fork server: a child interpreter answering JSON jobs, one line each way."""

    def __init__(self, receiver: _interpreters.Receiver, cwd: str, log_dir: str) -> None:
        self.receiver = receiver
        os.makedirs(cwd, exist_ok=True)
        self._log = tempfile.NamedTemporaryFile("w", dir=log_dir, suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [receiver.python, "-c", _BOOT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            cwd=cwd, env=receiver.env(), text=True, bufsize=1,
        )

    def call(self, job: dict, guard: float) -> "dict | None":
        """Send one job; None if the server died or overran ``guard`` seconds (it is then killed).

        After a None, :meth:`death` says how the server ended.
        """
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None and stdout is not None  # both are PIPEs (see __init__)
        timer = threading.Timer(guard, self._kill_overrun)
        timer.start()
        try:
            stdin.write(json.dumps(job) + "\n")
            stdin.flush()
            line = stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        finally:
            timer.cancel()
        if not line:
            self.close()
            return None
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    overran = False
    """Whether the server was killed for overrunning its job's ``guard``."""

    def _kill_overrun(self) -> None:
        self.overran = True
        self.proc.kill()

    def death(self, guard: float) -> str:
        """How a server that stopped answering ended: ``"crashed with signal 11 (SIGSEGV)"``, a hang..."""
        code = self.proc.wait()
        if self.overran:
            status = "timeout"
        elif code < 0:
            status, code = "signal", -code
        else:
            status = "exited"
        return Isolated([], status, code, guard).describe_death()

    def close(self) -> None:
        assert self.proc.stdin is not None  # a PIPE (see __init__)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Pool:
    """Idle servers per receiver, started on demand and reused."""

    def __init__(self, workdir: str) -> None:
        self._idle: dict = {}
        self._all: list = []
        self._lock = threading.Lock()
        self._workdir = workdir
        self._count = 0
        os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)  # each server's stderr

    def call(self, receiver: _interpreters.Receiver, job: dict, guard: float) -> dict:
        """The server's answer to ``job``, or ``{"error": ...}`` saying how it died or that it hung."""
        if not HAS_FORK:
            return self._call_once(receiver, job, guard)
        key = receiver.key
        with self._lock:
            idle = self._idle.setdefault(key, [])
            server = idle.pop() if idle else None
        if server is None:
            server = self._start(receiver)
        answer = server.call(job, guard)
        if server.alive:
            with self._lock:
                self._idle[key].append(server)
        return answer if answer is not None else self._died(server, guard)

    def _start(self, receiver: _interpreters.Receiver) -> Server:
        with self._lock:
            self._count += 1
            cwd = os.path.join(self._workdir, "cwd", str(self._count))
            server = Server(receiver, cwd, os.path.join(self._workdir, "logs"))
            self._all.append(server)
        return server

    def _call_once(self, receiver: _interpreters.Receiver, job: dict, guard: float) -> dict:
        # No fork(): the job runs inline in a new interpreter that ends with it, which is slower
        # (an interpreter start and the backends' imports per job) but as isolated as a fork.
        server = self._start(receiver)
        try:
            answer = server.call(job, guard)
        finally:
            if server.alive:
                server.close()
        return answer if answer is not None else self._died(server, guard)

    @staticmethod
    def _died(server: Server, guard: float) -> dict:
        who = server.receiver.name or f"Python {server.receiver.label}"
        return {"error": f"the {who} server died during the job ({server.death(guard)})"}

    def close(self) -> None:
        for server in self._all:
            if server.alive:
                server.close()


# --- scripts --------------------------------------------------------------------------------------


class RunnerError(AssertionError):
    """A script run by :func:`run_script` failed, did not end with a JSON line, or overran its timeout.

    An ``AssertionError``, so that a test that runs a script reads as failed (not errored) with the
    child's output in the message.
    """


def _receiver(receiver: "_interpreters.Receiver | None") -> "_interpreters.Receiver":
    return receiver if receiver is not None else _interpreters.same_interpreter()


def _write(folder: str, name: str, source: str) -> None:
    with open(os.path.join(folder, name), "w", encoding="utf-8") as handle:
        handle.write(textwrap.dedent(source))


def run_script(
    folder: "str | os.PathLike[str]",
    script: str,
    helpers: "Mapping[str, str] | None" = None,
    args: Sequence[str] = (),
    *,
    receiver: "_interpreters.Receiver | None" = None,
    timeout: float = 120,
    name: str = "main.py",
) -> Any:
    """Write ``script`` as ``name`` (and ``helpers``, ``{module name: source}``) into ``folder``, run it there
    as ``__main__`` with ``args``, and return the JSON of the last line it printed (None if it printed nothing).

    ``receiver`` is the interpreter and its environment (default: this interpreter, see
    :func:`anypickle.lab._interpreters.same_interpreter`). Raises :class:`RunnerError` with the child's
    output when it exits non-zero, ends with a line that is not JSON, or runs longer than ``timeout`` seconds.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    for name, source in (helpers or {}).items():
        _write(folder, f"{name}.py", source)
    _write(folder, name, script)
    child = _receiver(receiver)
    try:
        proc = subprocess.run([child.python, name, *args], cwd=folder, capture_output=True, text=True,
                              timeout=timeout, env=child.env())
    except subprocess.TimeoutExpired as exc:
        raise RunnerError(f"script in {folder} overran {timeout:.0f} s: stdout {exc.stdout!r}, stderr {exc.stderr!r}") from None
    if proc.returncode != 0:
        raise RunnerError(f"script in {folder} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise RunnerError(f"script in {folder} did not end with a JSON line:\n{proc.stdout}\n{proc.stderr}") from None


_SEND_FOOTER = """
import json as _json, sys as _sys
import anypickle as _anypickle
_data = _anypickle.dumps(obj, **_json.loads(_sys.argv[2]))
open(_sys.argv[1], "wb").write(_data)
print(_json.dumps({"backend": _anypickle.Backend(_data[5]).label}))
"""

_RECEIVE = """
import json, sys
import anypickle
data = open(sys.argv[1], "rb").read()
try:
    obj = anypickle.loads(data, **json.loads(sys.argv[2]))
except anypickle.AnyPickleError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    raise SystemExit(0)
print(json.dumps({"result": eval(sys.argv[3])}))
"""


@dataclass
class Sent:
    """What :func:`send` produced: the payload and the label of the backend that wrote it."""

    payload: bytes
    backend: str


def send(
    root: "str | os.PathLike[str]",
    script: str,
    helpers: "Mapping[str, str] | None" = None,
    *,
    receiver: "_interpreters.Receiver | None" = None,
    **options: Any,
) -> Sent:
    """Run ``script`` (which must bind ``obj``) as ``__main__`` in ``root/sender``, beside ``helpers``,
    and return ``anypickle.dumps(obj, **options)`` made there (``options`` must be JSON-able)."""
    folder = os.path.join(os.fspath(root), "sender")
    out = os.path.join(folder, "payload.bin")
    answer = run_script(folder, textwrap.dedent(script) + _SEND_FOOTER, helpers, [out, json.dumps(options)],
                        receiver=receiver)
    with open(out, "rb") as handle:
        return Sent(handle.read(), answer["backend"])


def receive(
    root: "str | os.PathLike[str]",
    payload: bytes,
    expression: str,
    *,
    helpers: "Mapping[str, str] | None" = None,
    receiver: "_interpreters.Receiver | None" = None,
    **options: Any,
) -> dict:
    """Load ``payload`` with ``anypickle.loads(data, **options)`` in a new interpreter in ``root/receiver``
    (a folder without the sender's script or helper modules; ``helpers`` go there when given) and
    evaluate ``expression`` on ``obj``.

    Returns ``{"result": <JSON of the value>}``, or ``{"error": <class name>, "message": ...}`` when
    anypickle refused with one of its errors.
    """
    folder = os.path.join(os.fspath(root), "receiver")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "payload.bin")
    with open(path, "wb") as handle:
        handle.write(payload)
    return run_script(folder, _RECEIVE, helpers, [path, json.dumps(options), expression], receiver=receiver)


# --- catalogue cases on fork servers --------------------------------------------------------------


def slug(name: str) -> str:
    """A folder name for a case or mode name: ``"function: lambda"`` -> ``"function-lambda"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_case_files(case: Any, workdir: str) -> dict:
    """Write ``case``'s script (and helper module) into ``workdir/cases/<slug>``; the paths, as a dict.

    ``script``: the sender's ``main.py``; ``payload_dir``: where payloads go; ``extra_path``: folders a
    receiver puts on ``sys.path`` (a copy of the helper module, for ``receiver_has_helper`` cases, in a
    folder without the sender's script).
    """
    name = slug(case.name)
    folder = os.path.join(workdir, "cases", name)
    os.makedirs(folder)
    script = os.path.join(folder, "main.py")
    _write(folder, "main.py", case.script)
    extra_path: list = []
    if case.helper is not None:
        _write(folder, "example_helper.py", case.helper)
        if case.receiver_has_helper:
            other = os.path.join(workdir, "receiver-modules", name)
            os.makedirs(other)
            shutil.copy(os.path.join(folder, "example_helper.py"), other)
            extra_path.append(other)
    payload_dir = os.path.join(workdir, "payloads", name)
    os.makedirs(payload_dir)
    return {"script": script, "payload_dir": payload_dir, "extra_path": extra_path}


def _case_timeout(case: Any, default: float) -> float:
    return default if case.timeout is None else min(case.timeout, default)


def send_case(pool: Pool, sender: "_interpreters.Receiver", files: dict, case: Any, backends: Sequence[str], *,
              timeout: float, raw: bool = False, same: bool = True) -> dict:
    """Run ``case``'s script as ``__main__`` on a server of ``sender`` and dump its object with each of
    ``backends`` into ``files["payload_dir"]``.

    ``files`` holds the case's ``script`` path (written beside its helper module) and ``payload_dir``.
    Returns the sender's answer: ``expected`` (the check on the original), ``dumps`` (columns whose
    dumps failed, as cells), ``dumped`` (payload paths), ``same`` (same-process cells: each payload loaded
    back in a fork of the sender; none when ``same`` is false) and ``needs``; or ``{"error": ...}``.
    """
    job = {"kind": "send", "script": files["script"], "build": case.build, "check": case.check,
           "backends": list(backends), "timeout": _case_timeout(case, timeout), "raw": raw, "payload_dir": files["payload_dir"],
           "same": same}
    answer = pool.call(sender, job, timeout * (4 + 2 * len(backends)))
    return answer.get("result") or {"error": answer.get("error", "no answer")}


def receive_job(case: Any, sent: dict, backend: str, extra_path: Sequence[str], *, timeout: float,
                raw: bool = False) -> dict:
    """The job that loads ``backend``'s payload of ``sent`` (see :func:`send_case`) and checks it."""
    return {"kind": "receive", "backend": backend, "check": case.check, "raw": raw, "expected": sent["expected"],
            "timeout": _case_timeout(case, timeout),
            "payload": sent["dumped"][backend]["path"], "extra_path": list(extra_path)}


def receive_case(pool: Pool, receiver: "_interpreters.Receiver", job: dict, *, timeout: float) -> dict:
    """Run a :func:`receive_job` on a server of ``receiver``: the cell ``{"outcome", "detail"}``."""
    answer = pool.call(receiver, job, timeout * 3)
    if "result" not in answer:
        return {"outcome": LOADS_FAILS, "detail": answer.get("error", "")}
    return answer["result"]
