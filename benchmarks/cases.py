"""The benchmark cases and the serializers they are measured with, built deterministically.

``ANYPICKLE_BENCH_SCALE`` (default 1) multiplies the size of the large cases, so the notebook and CI
can run the whole suite in seconds (``ANYPICKLE_BENCH_SCALE=0.05``).
"""

from __future__ import annotations

import datetime
import fractions
import os
from typing import Any, Callable

import numpy as np

import anypickle
from anypickle.bench import CODECS

import _mainlike

SCALE = float(os.environ.get("ANYPICKLE_BENCH_SCALE", "1"))
MB = 2**20


def _n(count: int) -> int:
    return max(1, int(count * SCALE))


def _small_dict() -> dict:
    """The issue's "60-byte dict": 62 bytes of pickle, a small task's arguments."""
    return {"id": 42, "name": "task", "ok": True, "tags": ["a", "b"]}


def _strings() -> dict:
    return {f"key-{i:05d}": f"value number {i}" for i in range(10_000)}


def _datetimes() -> list:
    start = datetime.datetime(2024, 1, 1, 12, 0, 0)
    return [start + datetime.timedelta(minutes=i) for i in range(1000)]


def _array(nbytes: int) -> np.ndarray:
    return np.arange(nbytes // 8, dtype=np.float64)


# name -> (kind, factory). kind decides the targets: "data", "small", "installed", "code".
CASES: dict[str, tuple[str, Callable[[], Any]]] = {
    "small_dict": ("small", _small_dict),
    "ints_100k": ("data", lambda: list(range(100_000))),
    "strings_10k": ("data", _strings),
    "datetime_1k": ("installed", _datetimes),
    "fraction_1k": ("installed", lambda: [fractions.Fraction(i, 7) for i in range(1000)]),
    "main_instances_1k": ("code", lambda: [_mainlike.Point(i, i + 1.5) for i in range(1000)]),
    "module_function": ("code", lambda: _mainlike.module_function),
    "lambda": ("code", _mainlike.lambda_),
    "closure": ("code", _mainlike.closure),
    "lambdas_1k": ("code", lambda: _mainlike.lambdas(1000)),
    "bytes_16mb": ("data", lambda: bytes(range(256)) * _n(16 * MB // 256)),
    "array_8mb": ("data", lambda: _array(_n(8 * MB))),
    "array_80mb": ("data", lambda: _array(_n(80 * MB))),
}
BIG = frozenset({"bytes_16mb", "array_8mb", "array_80mb"})

# backend -> (dumps, loads); each the library's own entry point at its best protocol (the same
# codecs as `anypickle bench`), and anypickle's facade with its envelope.
BACKENDS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    **{name: CODECS[name] for name in ("pickle", "marshal", "cloudpickle", "dill")},
    "anypickle": (anypickle.dumps, anypickle.loads),
}

# Which backend can carry which case (pickle "works" on __main__ code only in the sender's own
# process, so it is not measured there; marshal carries plain data and single plain functions).
_APPLICABLE = {
    "pickle": {name for name, (kind, _) in CASES.items() if kind != "code"},
    "marshal": {"small_dict", "ints_100k", "strings_10k", "bytes_16mb", "module_function", "lambda", "closure"},
    "cloudpickle": set(CASES),
    "dill": set(CASES),
    "anypickle": set(CASES),
}


def applicable(case: str, backend: str) -> bool:
    return case in _APPLICABLE[backend]


def kind(case: str) -> str:
    return CASES[case][0]


_built: dict[str, Any] = {}


def build(case: str) -> Any:
    """The input of ``case``; built once per session (the big ones are tens of MB)."""
    if case not in _built:
        _built.clear()  # keep one big input alive at a time
        _built[case] = CASES[case][1]()
    return _built[case]


def nbytes(payload: Any) -> int:
    if isinstance(payload, tuple):  # (header, buffers) of the frames API
        return len(payload[0]) + sum(memoryview(b).nbytes for b in payload[1])
    return len(payload)
