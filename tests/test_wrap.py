"""anypickle.wrap: plain pickle ships a __main__ lambda or a local-module closure through any engine's transport."""

from __future__ import annotations

import pickle
import sys
import threading
import time

import pytest

import anypickle
from anypickle.lab.runner import run_script

import anypickle.shipping.wrap as wrap_module  # noqa: E402  (the module; `anypickle.wrap` is the function)

HELPER = """
class Thing:
    def __init__(self, value):
        self.value = value
    def scaled(self, x):
        return self.value * x
"""

SCRIPT = """
import concurrent.futures, json, multiprocessing, os, pickle, sys
import anypickle

class Tally:
    def __init__(self):
        self.calls = 0
    def __call__(self):
        self.calls += 1
        return [self.calls, os.getpid()]

if __name__ == "__main__":
    # Imported here, not at the top: stdlib spawn/forkserver workers re-run this file as __mp_main__,
    # and they cannot import the local helper module (its folder leaves sys.path right after).
    import helper
    sys.path.remove(os.path.dirname(os.path.abspath(__file__)))
    offset = int(sys.argv[1])
    thing = helper.Thing(3)
    main_lambda = anypickle.wrap(lambda x: x * x + offset)
    closure = anypickle.wrap(lambda x: thing.scaled(x) + offset)
    out = {"plain_pickle_refuses_the_lambda": False}
    try:
        pickle.dumps(lambda x: x)
    except (pickle.PicklingError, AttributeError):
        out["plain_pickle_refuses_the_lambda"] = True
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        out["spawn_pool"] = pool.map(main_lambda, range(6))
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        out["forkserver_pool"] = pool.map(closure, range(6))
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as ex:
        out["futures_closure"] = ex.submit(closure, 10).result()
        tally = anypickle.wrap(Tally())
        # Each submit pickles the wrapper again; the worker loads the payload once and reuses it.
        out["loaded_once"] = [ex.submit(tally).result() for _ in range(3)]
        out["worker_repr"] = ex.submit(repr, main_lambda).result()
    out["parent_pid"] = os.getpid()
    print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """One script run as __main__ ships wrapped objects through multiprocessing and concurrent.futures."""
    return run_script(tmp_path_factory.mktemp("wrap"), SCRIPT, {"helper": HELPER}, ["7"], timeout=180)


def test_main_lambda_through_spawn_pool(outcome):
    """multiprocessing.Pool (spawn) maps a wrapped __main__ lambda that plain pickle refuses."""
    assert outcome["plain_pickle_refuses_the_lambda"] is True
    assert outcome["spawn_pool"] == [x * x + 7 for x in range(6)]


def test_local_module_closure_through_forkserver_pool(outcome):
    """A closure over an object of a local helper module runs in forkserver workers that cannot import it."""
    assert outcome["forkserver_pool"] == [3 * x + 7 for x in range(6)]


def test_closure_through_concurrent_futures(outcome):
    """The stdlib ProcessPoolExecutor (spawn) ships the wrapped closure as an ordinary function."""
    assert outcome["futures_closure"] == 37


def test_loaded_once_per_process(outcome):
    """Three submits of one wrapped __main__ instance reach one loaded object in the worker: its state accumulates."""
    calls = [c for c, _ in outcome["loaded_once"]]
    pids = {pid for _, pid in outcome["loaded_once"]}
    assert calls == [1, 2, 3]
    assert len(pids) == 1 and outcome["parent_pid"] not in pids


def test_repr_names_the_wrapped_object(outcome):
    """The repr names what is wrapped, and says when it was not loaded yet (here: in a worker)."""
    assert outcome["worker_repr"] == "anypickle.wrap(__main__.<lambda>, not loaded yet)"


# --- in-process behaviour ----------------------------------------------------------------------


def test_call_unwrap_and_round_trip():
    """Calling calls the object, unwrap returns it, and a pickled copy calls the same code."""

    def add(a, b=1):
        return a + b

    w = anypickle.wrap(add)
    assert w(1, b=2) == 3 and w.unwrap() is add
    assert repr(w) == f"anypickle.wrap({__name__}.test_call_unwrap_and_round_trip.<locals>.add)"
    assert w.__name__ == "add"
    copy = pickle.loads(pickle.dumps(w))
    assert "not loaded yet" in repr(copy)
    assert copy(40) == 41 and copy.unwrap() is not add
    assert pickle.loads(pickle.dumps(copy))(1, 1) == 2  # a received wrapper ships on, unchanged


def test_wrapping_twice_is_refused():
    """wrap(wrap(f)) is a mistake that would double the work: TypeError."""
    with pytest.raises(TypeError, match="already wrapped"):
        anypickle.wrap(anypickle.wrap(len))


def test_unserializable_object_fails_at_pickling_with_encode_error():
    """A wrapped generator fails when pickled, with anypickle's EncodeError (a TypeError)."""
    w = anypickle.wrap(x for x in range(3))
    with pytest.raises(anypickle.EncodeError):
        pickle.dumps(w)


LOADS: list[int] = []


def _slow_load(token):
    LOADS.append(token)
    time.sleep(0.05)  # widen the window in which a second thread could load the payload again
    return Loaded(token)


class Loaded:
    def __init__(self, token):
        self.token = token

    def __reduce__(self):
        return _slow_load, (self.token,)


def test_concurrent_first_use_loads_once():
    """8 threads calling 8 received copies of one wrapper at once load the payload once, and share the object."""
    token = time.monotonic_ns()
    data = pickle.dumps(anypickle.wrap(Loaded(token), by_reference=[__name__]))
    copies = [pickle.loads(data) for _ in range(8)]
    barrier = threading.Barrier(8)
    got = [None] * 8

    def use(i):
        barrier.wait()
        got[i] = copies[i].unwrap()

    threads = [threading.Thread(target=use, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert LOADS.count(token) == 1
    assert all(g is got[0] for g in got) and got[0].token == token


def test_concurrent_pickling_dumps_once():
    """8 threads pickling one wrapper at once produce identical bytes from a single anypickle.dumps."""
    calls = []
    real_dumps = wrap_module.dumps

    def counting_dumps(obj, **kw):
        calls.append(1)
        time.sleep(0.05)
        return real_dumps(obj, **kw)

    w = anypickle.wrap(lambda: "shared")
    barrier = threading.Barrier(8)
    out = [None] * 8

    def dump(i):
        barrier.wait()
        out[i] = pickle.dumps(w)

    wrap_module.dumps = counting_dumps
    try:
        threads = [threading.Thread(target=dump, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        wrap_module.dumps = real_dumps
    assert len(calls) == 1
    assert len(set(out)) == 1
    assert pickle.loads(out[0])() == "shared"
