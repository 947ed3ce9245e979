"""anypickle.ProcessPoolExecutor: script-defined code runs in spawn/forkserver workers, and worker deaths stay local."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
from concurrent.futures.process import BrokenProcessPool

import pytest

import anypickle
from anypickle import EncodeError, UsageError, WorkerCrashedError
from anypickle.lab.runner import run_script

HELPER = """
def greet(who):
    return f"hello {who} from {__name__}"

def fail(key):
    raise KeyError(key)
"""

SCRIPT = """
import ctypes, json, os, signal, sys, threading
from concurrent.futures import ThreadPoolExecutor
import anypickle
import helper  # a local module: the workers cannot import it (its folder leaves sys.path below)

class Refused(Exception):
    def __init__(self, what, code):
        super().__init__(what, code)
        self.code = code

def task(i):
    if i == 7:
        os._exit(3)
    if i == 23:
        os.kill(os.getpid(), signal.SIGKILL)
    return i * FACTOR

def refuse():
    raise Refused("no entry", 451)

def describe(exc):
    return {"type": type(exc).__name__, "module": type(exc).__module__, "args": list(map(str, exc.args)),
            "cause": type(exc.__cause__).__name__, "traceback": str(exc.__cause__)}

if __name__ == "__main__":
    # Set only when run as a script: a worker that re-imports this file as __mp_main__ lacks FACTOR.
    FACTOR = int(sys.argv[2])
    sys.path.remove(os.path.dirname(os.path.abspath(__file__)))
    out = {}
    with anypickle.ProcessPoolExecutor(2, mp_context=sys.argv[1]) as ex:
        futures = [ex.submit(lambda i: task(i), i) for i in range(40)]
        values, crashes = {}, {}
        for i, f in enumerate(futures):
            try:
                values[i] = f.result(timeout=60)
            except anypickle.WorkerCrashedError as exc:
                crashes[i] = {"message": str(exc), "exitcode": exc.exitcode, "signal": exc.signal}
        out["values"], out["crashes"] = values, crashes
        out["after_crash"] = ex.submit(lambda: helper.greet("again")).result(timeout=60)
        segv = ex.submit(lambda: ctypes.string_at(0)).exception(timeout=60)
        out["segfault"] = [type(segv).__name__, getattr(segv, "signal", None)]

        out["main_exception"] = describe(ex.submit(refuse).exception(timeout=60))
        out["main_exception_code"] = ex.submit(refuse).exception(timeout=60).code
        out["helper_exception"] = describe(ex.submit(helper.fail, "missing").exception(timeout=60))

        out["map"] = list(ex.map(lambda a, b: a * b + FACTOR, range(50), range(50), chunksize=7))

        barrier = threading.Barrier(8)
        def submit_many(t):
            barrier.wait()
            return [ex.submit(lambda k: (t, k, os.getpid()), k) for k in range(25)]
        with ThreadPoolExecutor(8) as threads:
            batches = list(threads.map(submit_many, range(8)))
        got = [f.result(timeout=60) for batch in batches for f in batch]
        out["threads"] = sorted([t, k] for t, k, _ in got)
        out["worker_pids"] = sorted({pid for _, _, pid in got})
        out["parent_pid"] = os.getpid()

    with anypickle.ProcessPoolExecutor(1, mp_context=sys.argv[1], initializer=lambda v: os.environ.__setitem__("AP_INIT", v),
                                       initargs=("set by a __main__ lambda",)) as ex:
        out["initializer"] = ex.submit(lambda: os.environ.get("AP_INIT")).result(timeout=60)
    print(json.dumps(out))
"""


@pytest.fixture(scope="module", params=["spawn", "forkserver"])
def outcome(request, tmp_path_factory):
    """One child script per start method runs every scenario; the tests below check its outcomes."""
    if request.param not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {request.param} is not available on this platform")
    folder = tmp_path_factory.mktemp(f"executor-{request.param}")
    return run_script(folder, SCRIPT, {"helper": HELPER}, [request.param, "5"], timeout=180)


def test_tasks_survive_two_worker_deaths(outcome):
    """Of 40 tasks, the one calling os._exit(3) and the SIGKILLed one fail; the other 38 return their values."""
    assert outcome["values"] == {str(i): i * 5 for i in range(40) if i not in (7, 23)}
    assert set(outcome["crashes"]) == {"7", "23"}
    exited, killed = outcome["crashes"]["7"], outcome["crashes"]["23"]
    assert exited["exitcode"] == 3 and exited["signal"] is None
    assert "exited with code 3" in exited["message"]
    assert killed["exitcode"] == -signal.SIGKILL and killed["signal"] == "SIGKILL"
    assert "killed by SIGKILL" in killed["message"]


def test_executor_stays_usable_after_crashes(outcome):
    """A replacement worker runs new tasks, here one calling a local helper module the workers cannot import."""
    assert outcome["after_crash"] == "hello again from helper"
    assert outcome["segfault"] == ["WorkerCrashedError", "SIGSEGV"]


def test_exception_types_preserved_with_remote_traceback(outcome):
    """A __main__ exception class and a KeyError from a helper module reach the caller with the remote traceback as cause."""
    main_exc = outcome["main_exception"]
    assert (main_exc["type"], main_exc["module"], main_exc["args"]) == ("Refused", "__main__", ["no entry", "451"])
    assert outcome["main_exception_code"] == 451
    assert main_exc["cause"] == "RemoteTraceback"
    assert "in refuse" in main_exc["traceback"] and 'raise Refused("no entry", 451)' in main_exc["traceback"]
    helper_exc = outcome["helper_exception"]
    assert (helper_exc["type"], helper_exc["args"]) == ("KeyError", ["missing"])
    assert "in fail" in helper_exc["traceback"]


def test_map_with_chunks_runs_main_lambda(outcome):
    """map(chunksize=7) over a __main__ lambda using a global set only in the script's main block."""
    assert outcome["map"] == [a * a + 5 for a in range(50)]


def test_concurrent_submits_from_eight_threads(outcome):
    """200 submits racing from 8 threads each get their own result, computed in worker processes."""
    assert outcome["threads"] == sorted([t, k] for t in range(8) for k in range(25))
    assert outcome["parent_pid"] not in outcome["worker_pids"]
    assert 1 <= len(outcome["worker_pids"]) <= 2


def test_initializer_runs_in_each_worker(outcome):
    """A __main__ lambda initializer with initargs runs in the worker before its tasks."""
    assert outcome["initializer"] == "set by a __main__ lambda"


# --- in-process behaviour (the workers are spawned from the pytest process) ------------------------


@pytest.fixture(scope="module")
def executor():
    with anypickle.ProcessPoolExecutor(2, mp_context="spawn") as ex:
        yield ex


def test_unserializable_argument_raises_encode_error_at_submit(executor):
    """A generator cannot travel: submit itself raises EncodeError, and the pool keeps working."""
    with pytest.raises(EncodeError, match="generator"):
        executor.submit(len, (x for x in range(3)))
    assert executor.submit(len, [1, 2, 3]).result(timeout=30) == 3


def test_large_arguments_and_results_do_not_deadlock(executor):
    """Megabyte arguments and results, several in flight per worker, all come back intact."""
    blobs = [bytes([i]) * (1 << 20) for i in range(6)]
    futures = [executor.submit(bytes.upper, blob) for blob in blobs]
    assert [f.result(timeout=60) for f in futures] == blobs
    assert list(executor.map(len, blobs, chunksize=2)) == [1 << 20] * 6


def test_map_timeout_and_empty_input(executor):
    """map() of nothing is empty; a task slower than the timeout raises TimeoutError."""
    import time

    assert list(executor.map(abs, [])) == []
    results = executor.map(time.sleep, [0.6], timeout=0.1)
    with pytest.raises(concurrent.futures.TimeoutError):  # the builtin TimeoutError since Python 3.11
        next(results)


def test_external_kill_of_an_idle_worker_is_replaced(executor):
    """A worker killed while idle fails nothing; the pool replaces it and keeps running tasks."""
    pids = {executor.submit(os.getpid).result(timeout=30) for _ in range(6)}
    victim = next(iter(pids))
    os.kill(victim, signal.SIGKILL)
    results = [executor.submit(os.getpid).result(timeout=30) for _ in range(6)]
    assert victim not in results
    assert all(r > 0 for r in results)


def test_bad_arguments_are_usage_errors():
    """Bad constructor and map arguments raise UsageError, before any process starts."""
    with pytest.raises(UsageError, match="max_workers"):
        anypickle.ProcessPoolExecutor(0)
    with pytest.raises(UsageError, match="start method"):
        anypickle.ProcessPoolExecutor(1, mp_context="teleport")
    with pytest.raises(UsageError, match="fork start method is not supported"):
        anypickle.ProcessPoolExecutor(1, mp_context="fork")
    with anypickle.ProcessPoolExecutor(1) as ex:
        with pytest.raises(UsageError, match="chunksize"):
            ex.map(abs, [1], chunksize=0)


def test_submit_after_shutdown_raises():
    """After shutdown, submit raises RuntimeError like the stdlib executor; cancel_futures cancels queued tasks."""
    import time

    ex = anypickle.ProcessPoolExecutor(1)
    slow = ex.submit(time.sleep, 0.5)
    deadline = time.monotonic() + 30
    while not slow.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    queued = [ex.submit(abs, -i) for i in range(5)]
    ex.shutdown(wait=True, cancel_futures=True)
    assert slow.result() is None
    cancelled = [f for f in queued if f.cancelled()]
    assert len(cancelled) >= 3  # at most one more task was already sent to the worker
    assert all(f.result() == i for i, f in enumerate(queued) if not f.cancelled())
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(abs, 1)


def test_failing_initializer_breaks_the_pool():
    """An initializer that raises marks the pool broken: pending futures fail with BrokenProcessPool naming the error."""
    with anypickle.ProcessPoolExecutor(1, initializer=divmod, initargs=(1, 0)) as ex:
        exc = ex.submit(abs, 1).exception(timeout=60)
    assert isinstance(exc, BrokenProcessPool)
    assert "ZeroDivisionError" in str(exc)


def test_worker_crash_error_is_an_anypickle_runtime_error():
    """WorkerCrashedError is caught as AnyPickleError and as RuntimeError, and survives pickling."""
    import pickle

    err = WorkerCrashedError("died", exitcode=-9, signal="SIGKILL", pid=1)
    assert isinstance(err, anypickle.AnyPickleError) and isinstance(err, RuntimeError)
    back = pickle.loads(pickle.dumps(err))
    assert (back.exitcode, back.signal, back.pid, str(back)) == (-9, "SIGKILL", 1, "died")
