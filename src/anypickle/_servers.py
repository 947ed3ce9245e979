"""The parent side of the matrix's child processes: fork servers, one JSON line per job each way.

A :class:`Server` is one ``python -c "from anypickle._child import serve; serve()"`` child (see
:mod:`anypickle._child`) started in its own empty folder; a :class:`Pool` keeps idle servers per
receiver interpreter and starts them on demand, so each worker thread reuses a warm one.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading

from . import _interpreters

__all__ = ["Pool", "Server"]

_BOOT = "from anypickle._child import serve; serve()"


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
        """Send one job; None if the server died or overran ``guard`` seconds (it is then killed)."""
        timer = threading.Timer(guard, self.proc.kill)
        timer.start()
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
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

    def close(self) -> None:
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

    def call(self, receiver: _interpreters.Receiver, job: dict, guard: float) -> "dict | None":
        with self._lock:
            idle = self._idle.setdefault(receiver.label + receiver.python, [])
            server = idle.pop() if idle else None
            if server is None:
                self._count += 1
                cwd = os.path.join(self._workdir, "cwd", str(self._count))
                server = Server(receiver, cwd, os.path.join(self._workdir, "logs"))
                self._all.append(server)
        answer = server.call(job, guard)
        if server.alive:
            with self._lock:
                self._idle[receiver.label + receiver.python].append(server)
        return answer

    def close(self) -> None:
        for server in self._all:
            if server.alive:
                server.close()
