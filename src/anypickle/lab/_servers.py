"""The parent side of the matrix's child processes: fork servers, one JSON line per job each way.

A :class:`Server` is one ``python -c "from anypickle.lab._child import serve; serve()"`` child (see
:mod:`anypickle.lab._child`) started in its own empty folder; a :class:`Pool` keeps idle servers per
receiver interpreter and starts them on demand, so each worker thread reuses a warm one. Without
``fork()`` a server cannot run a job in a pristine copy of itself, so every job gets a new server.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading

from . import _interpreters, _isolation

__all__ = ["Pool", "Server"]

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
        return _isolation.Isolated([], status, code, guard).describe_death()

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
        if not _isolation.HAS_FORK:
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
