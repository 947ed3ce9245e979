"""A process pool whose tasks travel through anypickle and that survives the death of a worker.

:class:`ProcessPoolExecutor` is a ``concurrent.futures.Executor``. Unlike the stdlib's:

* functions, arguments and results go through :func:`anypickle.dumps` (auto), so ``__main__``
  lambdas, closures and local-module code run in spawn / forkserver workers, which never see the
  parent's ``__main__`` nor its local modules;
* a worker that dies (``os._exit``, SIGKILL, a segfault) fails only the future of the task it was
  running, with :class:`~anypickle.errors.WorkerCrashedError`; the tasks queued behind it go to
  other workers, a replacement worker starts, and the executor stays usable. (The stdlib marks the
  whole pool broken and fails every pending future.)

Workers do not re-run the parent's main script. The stdlib's spawn and forkserver start methods
re-import it in every worker as ``__mp_main__`` so that functions pickled by reference resolve;
anypickle ships them by value instead, and re-running a script in each worker is slow, repeats its
side effects, and fails outright when the script imports a local module the worker cannot see.

Design: one duplex pipe per worker; the parent sends each worker at most ``_DEPTH`` tasks ahead and
tracks them in order. One manager thread waits (``multiprocessing.connection.wait``) on every pipe,
every ``Process.sentinel`` and a wake-up pipe, so a death is seen as soon as the process exits.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import multiprocessing.connection
import multiprocessing.spawn
import multiprocessing.util  # registers its atexit hook before ours: ours runs first (LIFO)
import os
import signal as _signal
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

from . import _worker
from .._api import dumps, loads
from ..errors import AnyPickleError, UsageError, WorkerCrashedError

__all__ = ["ProcessPoolExecutor", "RemoteTraceback"]

_DEPTH = 2  # tasks in flight per worker: one running, one waiting in its pipe (hides the round trip)
# Messages up to this size are written by the manager thread itself: with at most _DEPTH unread
# messages in a worker's pipe they fit even in small socket buffers (8 KiB on some systems), so the write
# cannot block. Larger ones go through the worker's _Outbox thread.
_INLINE_BYTES = 4096
_STARTUP_FAILURES = 3  # consecutive workers that die before they are ready: the pool is broken


_WORKER_NAME = "anypickle-worker"


def _install_preparation_filter() -> None:
    """Keep multiprocessing from re-running ``__main__`` in our workers (only in processes we name).

    spawn and forkserver children call ``multiprocessing.spawn.prepare`` with the data returned by
    ``get_preparation_data(process name)`` in the parent; dropping its ``init_main_from_*`` keys is
    the one switch multiprocessing offers for "do not import the main module" (it is how it skips
    interactive sessions). Other processes are untouched.
    """
    original = multiprocessing.spawn.get_preparation_data
    if getattr(original, "_anypickle", False):
        return

    def get_preparation_data(name: str) -> dict[str, Any]:
        data = original(name)
        if isinstance(name, str) and name.startswith(_WORKER_NAME):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    get_preparation_data._anypickle = True  # type: ignore[attr-defined]
    multiprocessing.spawn.get_preparation_data = get_preparation_data


_install_preparation_filter()


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as that exception's ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class _Task:
    __slots__ = ("id", "future", "message", "name", "started")

    def __init__(self, task_id: int, future: Future, message: bytes, name: str) -> None:
        self.id = task_id
        self.future = future
        self.message = message
        self.name = name
        self.started = False


class _Outbox:
    """Writes one worker's messages so that the manager thread never blocks on a full pipe.

    Small messages are written inline when nothing is queued; others are queued for a sender thread,
    started on first need, which keeps the order. A worker reads its pipe only between tasks.
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cond = threading.Condition()
        self.queue: deque[bytes] = deque()
        self.busy = 0  # messages queued or being written by the thread
        self.closed = False
        self.thread: threading.Thread | None = None

    def send(self, message: bytes) -> None:
        """Send ``message`` (OSError when the pipe is broken and nothing was queued)."""
        with self.cond:
            if self.busy or len(message) > _INLINE_BYTES:
                if self.closed:
                    raise BrokenPipeError("the worker's pipe is closed")
                self.queue.append(message)
                self.busy += 1
                if self.thread is None:
                    self.thread = threading.Thread(target=self._run, name="anypickle-executor-sender", daemon=True)
                    self.thread.start()
                self.cond.notify()
                return
        self.conn.send_bytes(message)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closed:
                    self.cond.wait()
                if self.closed:
                    return
                message = self.queue.popleft()
            try:
                self.conn.send_bytes(message)
            except OSError:  # the worker died; the manager sees its sentinel and re-queues its tasks
                with self.cond:
                    self.closed = True
                    self.queue.clear()
                return
            with self.cond:
                self.busy -= 1

    def close(self) -> None:
        """Stop the sender thread (the worker has exited, so a blocked write fails at once)."""
        with self.cond:
            self.closed = True
            self.queue.clear()
            self.cond.notify()
        if self.thread is not None:
            self.thread.join(10)


class _Worker:
    __slots__ = ("process", "conn", "outbox", "sentinel", "inflight", "ready", "open", "running")

    def __init__(self, process: Any, conn: Any, running: Any) -> None:
        self.process = process
        self.conn = conn
        self.outbox = _Outbox(conn)
        self.sentinel = process.sentinel
        self.inflight: deque[_Task] = deque()
        self.ready = False
        self.running = running  # shared RawValue: the id of the task the worker last started
        self.open = True  # False once the pipe reported EOF; the sentinel then finishes the job


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


def _death(exitcode: int | None) -> tuple[str, str | None]:
    """How a process ended, in words, and the signal's name when a signal killed it."""
    if exitcode is not None and exitcode < 0:
        try:
            name = _signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}", name
    return f"exited with code {exitcode}", None


class _Pool:
    """The state shared by the executor (callers' threads) and its manager thread.

    Holds no reference to the executor, so an executor dropped without ``shutdown`` is collected and
    its finalizer stops the pool.
    """

    def __init__(self, max_workers: int, ctx: Any, initializer: bytes | None) -> None:
        self.max_workers = max_workers
        self.ctx = ctx
        self.initializer = initializer
        self.lock = threading.Lock()
        self.pending: deque[_Task] = deque()
        self.workers: list[_Worker] = []
        self.shutting_down = False
        self.broken: str | None = None
        self.startup_failures = 0
        self.ids = itertools.count()
        # A one-way pipe (portable, unlike os.pipe fds on Windows) whose message wakes the manager.
        # The manager sets wake_w to None when it closes it: a later wake-up is then dropped.
        self.wake_w: multiprocessing.connection.Connection | None
        self.wake_r, self.wake_w = multiprocessing.Pipe(duplex=False)
        self.wake_pending = False
        self.thread = threading.Thread(target=self.run, name="anypickle-executor-manager", daemon=True)

    # --- called from callers' threads -----------------------------------------------------------

    def put(self, tasks: list[_Task]) -> None:
        with self.lock:
            if self.broken is not None:
                raise BrokenProcessPool(self.broken)
            if self.shutting_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self.pending.extend(tasks)
            self._wake()

    def request_shutdown(self, cancel_futures: bool = False) -> None:
        cancelled = []
        with self.lock:
            self.shutting_down = True
            if cancel_futures:
                cancelled = list(self.pending)
                self.pending.clear()
            self._wake()
        for task in cancelled:
            task.future.cancel()

    def _wake(self) -> None:  # lock held
        if not self.wake_pending and self.wake_w is not None:
            self.wake_pending = True
            self.wake_w.send_bytes(b"!")

    # --- the manager thread -----------------------------------------------------------------------

    def run(self) -> None:
        try:
            for _ in range(self.max_workers):
                self._start_worker()
            while True:
                self._dispatch()
                with self.lock:
                    idle = not self.pending and not any(w.inflight for w in self.workers)
                    if self.broken is not None or (self.shutting_down and idle):
                        break
                self._wait_once()
        except BaseException as exc:  # noqa: BLE001 - never leave futures hanging
            self._break(f"the executor's manager thread failed: {type(exc).__name__}: {exc}")
            raise
        finally:
            self._stop_workers()
            self.wake_r.close()
            with self.lock:
                assert self.wake_w is not None  # cleared only here, and run() runs once
                self.wake_w.close()
                self.wake_w = None

    def _start_worker(self) -> None:
        parent_end, child_end = multiprocessing.Pipe(duplex=True)
        running = self.ctx.RawValue("q", -1)
        process = self.ctx.Process(
            target=_worker.main, args=(child_end, running, self.initializer), name=_WORKER_NAME, daemon=False)
        process.start()
        child_end.close()
        self.workers.append(_Worker(process, parent_end, running))

    def _dispatch(self) -> None:
        """Send pending tasks to workers with room, emptiest workers first."""
        for depth in range(_DEPTH):
            for worker in self.workers:
                while worker.open and len(worker.inflight) <= depth:
                    with self.lock:
                        if not self.pending:
                            return
                        task = self.pending.popleft()
                    if not task.started:
                        if not task.future.set_running_or_notify_cancel():
                            continue  # cancelled while pending
                        task.started = True
                    try:
                        worker.outbox.send(task.message)
                    except OSError:  # the worker is dead; its sentinel will say so
                        worker.open = False
                        with self.lock:
                            self.pending.appendleft(task)
                        break
                    worker.inflight.append(task)

    def _wait_once(self) -> None:
        by_conn = {w.conn: w for w in self.workers if w.open}
        by_sentinel = {w.sentinel: w for w in self.workers}
        ready = multiprocessing.connection.wait([self.wake_r, *by_conn, *by_sentinel])
        for obj in ready:
            if obj is self.wake_r:
                with self.lock:
                    self.wake_pending = False
                    while self.wake_r.poll():
                        self.wake_r.recv_bytes()
            elif obj in by_conn:
                self._receive(by_conn[obj])
        for obj in ready:
            worker = by_sentinel.get(obj) if isinstance(obj, int) else None
            if worker is not None:
                self._on_death(worker)

    def _receive(self, worker: _Worker) -> None:
        """Handle every message already waiting in ``worker``'s pipe."""
        conn = worker.conn
        try:
            while True:
                self._handle(worker, conn.recv_bytes())
                if not conn.poll():
                    return
        except (EOFError, OSError):
            worker.open = False

    def _handle(self, worker: _Worker, message: bytes) -> None:
        kind = message[:1]
        if kind == _worker.READY:
            worker.ready = True
            self.startup_failures = 0
            return
        if kind == _worker.INIT_FAILED:
            self._break("the initializer raised in a worker process:\n" + message[1:].decode("utf-8", "replace"))
            return
        task = worker.inflight.popleft()
        task_id = _worker.task_id_of(message)
        assert task.id == task_id, (task.id, task_id)
        future = task.future
        try:
            value = loads(memoryview(message)[_worker.HEAD:])
        except AnyPickleError as exc:
            future.set_exception(exc)
            return
        if kind == _worker.RESULT:
            future.set_result(value)
        else:
            error, remote = value
            error.__cause__ = RemoteTraceback(f'\n"""\n{remote}"""')
            future.set_exception(error)

    def _on_death(self, worker: _Worker) -> None:
        if worker.open:
            try:
                while worker.conn.poll():
                    self._receive(worker)
                    if not worker.open:
                        break
            except (EOFError, OSError):
                pass
        worker.process.join()
        worker.outbox.close()
        worker.conn.close()
        self.workers.remove(worker)
        exitcode = worker.process.exitcode
        how, signal_name = _death(exitcode)
        retry = list(worker.inflight)
        if retry and retry[0].id == worker.running.value:
            # The task it said it started and did not answer; the tasks behind it were never read.
            victim = retry.pop(0)
            victim.future.set_exception(WorkerCrashedError(
                f"the worker process (pid {worker.process.pid}) running task {victim.name} {how}; "
                "the other tasks were not affected and a replacement worker was started",
                exitcode=exitcode, signal=signal_name, pid=worker.process.pid))
        elif not worker.ready:
            self.startup_failures += 1
            if self.startup_failures >= _STARTUP_FAILURES:
                self._break(f"{self.startup_failures} worker processes in a row died before they were ready "
                            f"(the last {how})", requeue=retry)
                return
        with self.lock:
            self.pending.extendleft(reversed(retry))
            needed = bool(self.pending) or not self.shutting_down
        if needed and self.broken is None:
            self._start_worker()

    def _break(self, reason: str, requeue: Iterable[_Task] = ()) -> None:
        """Mark the pool broken and fail every task not finished yet."""
        with self.lock:
            if self.broken is None:
                self.broken = reason
            tasks = [*requeue, *self.pending]
            self.pending.clear()
        for worker in self.workers:
            tasks.extend(worker.inflight)
            worker.inflight.clear()
        for task in tasks:
            if not task.started and not task.future.set_running_or_notify_cancel():
                continue  # cancelled while pending
            if not task.future.done():
                task.future.set_exception(BrokenProcessPool(reason))

    def _stop_workers(self) -> None:
        for worker in self.workers:
            if self.broken is not None:
                worker.process.terminate()
            else:
                try:
                    worker.outbox.send(_worker.STOP)
                except OSError:
                    pass
        for worker in self.workers:
            worker.process.join(10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.outbox.close()
            worker.conn.close()
        self.workers.clear()


_live_pools: "weakref.WeakSet[_Pool]" = weakref.WeakSet()


@atexit.register
def _python_exit() -> None:
    # Let queued work finish and stop the workers before multiprocessing joins its children.
    for pool in list(_live_pools):
        pool.request_shutdown()
    for pool in list(_live_pools):
        if pool.thread.is_alive():
            pool.thread.join()


def _resolve_context(mp_context: Any) -> Any:
    if mp_context is None:
        return multiprocessing.get_context("spawn")
    if isinstance(mp_context, str):
        try:
            mp_context = multiprocessing.get_context(mp_context)
        except ValueError as exc:
            raise UsageError(f"unknown start method {mp_context!r}: {exc}") from None
    if not hasattr(mp_context, "Process"):
        raise UsageError(f"mp_context must be a multiprocessing context or a start method name, not {mp_context!r}")
    if mp_context.get_start_method() == "fork":
        # Replacement workers are started by the manager thread; a fork while other threads hold
        # locks (the import lock, a logging handler...) leaves the child deadlocked on them.
        raise UsageError("the fork start method is not supported (forking a threaded process can deadlock the "
                         "child); use 'spawn' (the default) or 'forkserver'")
    return mp_context


class ProcessPoolExecutor(Executor):
    """A process pool whose functions, arguments and results travel through anypickle.

    ``mp_context`` is a multiprocessing context or a start method name (default: ``"spawn"``).
    ``initializer(*initargs)`` runs in each worker when it starts; if it raises, the pool is
    broken (:class:`concurrent.futures.process.BrokenProcessPool`), as with the stdlib.

    A task whose worker dies fails with :class:`~anypickle.errors.WorkerCrashedError` naming the
    exit code or signal; every other task completes and a replacement worker starts. A task that
    raises fails with the original exception, whose ``__cause__`` is the remote traceback.
    Objects that cannot be serialized raise :class:`~anypickle.errors.EncodeError` from ``submit``.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        if max_workers is None:
            count = getattr(os, "process_cpu_count", os.cpu_count)()
            max_workers = count or 1
        elif not isinstance(max_workers, int) or max_workers <= 0:
            raise UsageError(f"max_workers must be a positive int, not {max_workers!r}")
        if initializer is not None and not callable(initializer):
            raise UsageError(f"initializer must be callable, not {type(initializer).__qualname__}")
        ctx = _resolve_context(mp_context)
        init_payload = None if initializer is None else dumps((initializer, tuple(initargs)))
        self._pool = _Pool(max_workers, ctx, init_payload)
        _live_pools.add(self._pool)
        self._finalizer = weakref.finalize(self, self._pool.request_shutdown)
        self._pool.thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)``; return a future of its result."""
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, not {type(fn).__qualname__}")
        pool = self._pool
        self._check_open()
        task_id = next(pool.ids)
        message = _worker.call_message(task_id, dumps((fn, args, kwargs)))
        future: Future = Future()
        pool.put([_Task(task_id, future, message, _name(fn))])
        return future

    def map(
        self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None, chunksize: int = 1
    ) -> Iterator[Any]:
        """Like :func:`map`, run in the pool; ``fn`` is serialized once and sent once per chunk."""
        if not isinstance(chunksize, int) or chunksize < 1:
            raise UsageError(f"chunksize must be a positive int, not {chunksize!r}")
        end_time = None if timeout is None else timeout + time.monotonic()
        pool = self._pool
        self._check_open()
        fn_payload = dumps(fn)
        name = _name(fn)
        tasks = []
        items = zip(*iterables)
        for start in itertools.count(0, chunksize):
            chunk = list(itertools.islice(items, chunksize))
            if not chunk:
                break
            task_id = next(pool.ids)
            message = _worker.chunk_message(task_id, fn_payload, dumps(chunk))
            tasks.append(_Task(task_id, Future(), message, f"map({name}) items {start}-{start + len(chunk) - 1}"))
        pool.put(tasks)
        futures = [t.future for t in tasks]
        del tasks

        def results() -> Iterator[Any]:
            try:
                futures.reverse()
                while futures:
                    future = futures.pop()
                    if end_time is None:
                        yield from future.result()
                    else:
                        yield from future.result(end_time - time.monotonic())
            finally:
                for future in futures:
                    future.cancel()

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; with ``wait``, return once every running task is done and workers exited."""
        self._pool.request_shutdown(cancel_futures)
        if wait and self._pool.thread.is_alive():
            self._pool.thread.join()

    def _check_open(self) -> None:
        pool = self._pool
        if pool.broken is not None:
            raise BrokenProcessPool(pool.broken)
        if pool.shutting_down:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def __repr__(self) -> str:
        pool = self._pool
        state = "broken" if pool.broken else "shut down" if pool.shutting_down else "running"
        return f"<anypickle.ProcessPoolExecutor {state}, {pool.max_workers} workers ({pool.ctx.get_start_method()})>"

