"""Public API usage as a caller writes it: type-checked with ``mypy --strict`` by tests/test_typing.py.

Not a test module (pytest collects ``test_*.py`` only) and never run: each function is only read by
mypy, which must accept every call here under a caller's strict settings (no implicit Any from the
API, no untyped calls). ``assert_type`` pins the types the API promises.
"""

from __future__ import annotations

import io
import pickle
import sys
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import anypickle
from anypickle import (
    AnyPickleError,
    Backend,
    CheckResult,
    DecodeError,
    EncodeError,
    Explanation,
    InterpreterMismatchError,
    ProcessPoolExecutor,
    SignatureError,
    UnsafePickleError,
    UsageError,
    WorkerCrashedError,
    Wrapped,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # mypy checks as Python 3.10 (pyproject); mypy itself depends on typing_extensions
    from typing_extensions import assert_type


def add_one(x: int) -> int:
    return x + 1


def round_trips() -> None:
    data = anypickle.dumps(lambda x: x + 1)
    assert_type(data, bytes)
    assert_type(anypickle.dumps({"a": 1}, backend="cloudpickle", by_value=["helpers", sys], portable=False), bytes)
    assert_type(anypickle.dumps(add_one, backend=Backend.DILL, key=b"secret-key-of-32-bytes-0123456", key_id="k1"), bytes)
    header, buffers = anypickle.dumps(bytearray(1 << 20), buffers=True)
    assert_type(header, bytes)
    assert_type(buffers, list[memoryview])
    obj = anypickle.loads(header, buffers=buffers)
    assert_type(obj, Any)
    anypickle.loads(data, safe=True, allow=["collections.OrderedDict"])
    anypickle.loads(memoryview(data), key={"k1": b"secret"}, context={"db": object()})

    buffer = io.BytesIO()
    anypickle.dump(add_one, buffer, backend="auto")
    buffer.seek(0)
    assert_type(anypickle.load(buffer), Any)
    anypickle.dump([1, 2], "payload.bin")
    anypickle.load("payload.bin", safe=True)


def buffers_or_not(obj: object, keep_buffers: bool) -> None:
    assert_type(anypickle.dumps(obj, buffers=keep_buffers), bytes | tuple[bytes, list[memoryview]])


def reports() -> None:
    explanation = anypickle.explain(add_one, by_value=["helpers"], by_reference=[io])
    assert_type(explanation, Explanation)
    if explanation.backend is not None:
        assert_type(explanation.backend.label, str)
    print(str(explanation), explanation.to_dict()["needs"])

    result = anypickle.check(add_one, backend="marshal", exercise=lambda f: f(41), timeout=30.0)
    assert_type(result, CheckResult)
    assert_type(result.ok, bool)
    if not result:
        print(result.outcome, result.backend, result.detail)


def wrapping() -> None:
    wrapped: Wrapped[Callable[[int], int]] = anypickle.wrap(add_one)
    assert_type(wrapped.unwrap()(41), int)
    wrapped(41)
    pickle.loads(pickle.dumps(wrapped))


def pool() -> None:
    with ProcessPoolExecutor(max_workers=2, mp_context="spawn", initializer=print, initargs=("ready",)) as executor:
        future = executor.submit(add_one, 41)
        assert_type(future, Future[Any])
        print(future.result(timeout=10))
        for value in executor.map(add_one, range(10), chunksize=4):
            print(value)
    with anypickle.ProcessPoolExecutor() as other:
        other.shutdown(wait=True, cancel_futures=True)


def errors(data: bytes) -> None:
    try:
        anypickle.loads(data, key=b"secret-key-of-32-bytes-0123456", safe=True)
    except InterpreterMismatchError as exc:
        assert_type(exc.written_by, str)
        assert_type(exc.running, str)
    except SignatureError:
        pass
    except UnsafePickleError as exc:
        assert_type(exc.global_name, str | None)
        assert_type(exc.position, int | None)
    except DecodeError as exc:
        assert isinstance(exc, ValueError)
    try:
        anypickle.dumps(open)
    except EncodeError as exc:
        assert isinstance(exc, TypeError)
        assert_type(exc.path, str | None)
        assert_type(exc.attempts, tuple[tuple[str, str], ...])
        print(exc.type_name, exc.hint)
    except UsageError as exc:
        assert isinstance(exc, ValueError)
    except AnyPickleError:
        pass


def crashed(future: Future[int]) -> None:
    try:
        future.result()
    except WorkerCrashedError as exc:
        assert_type(exc.exitcode, int | None)
        print(exc.signal, exc.pid)
