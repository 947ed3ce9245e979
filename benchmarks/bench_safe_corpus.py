"""``safe_loads`` on a corpus of small, varied, benign pickles against ``pickle.loads`` (issue 16).

Services that receive many small untrusted messages pay the per-message cost. The corpus is built
here, deterministically: ordinary values (datetime with and without a timezone, Decimal, range,
complex, bytes, bytearray, sets, nested containers, numpy arrays and scalars, a structured array)
pickled with every protocol 0-5, and the numpy ones also with numpy 1.x's global names
(``numpy.core.multiarray`` where numpy 2 writes ``numpy._core.multiarray``: what a numpy 1.x sender
sends). Each file is 60 bytes to a few KB.

Every file must load under ``safe_loads`` to what ``pickle.loads`` gives. Each file is timed with
both loaders in turn (minimum over rounds of a loop of calls); the ratios go to
``extra_info["targets"]``: median over the corpus at most 2x, no file over 5x.
"""

from __future__ import annotations

import datetime
import decimal
import os
import pickle
import pickletools
import re
import statistics
import uuid
import warnings

import numpy as np
import pytest

from anypickle.safe import safe_loads
from _targets import calls_for, interleaved_min, record, row

ROUNDS = int(os.environ.get("ANYPICKLE_BENCH_CORPUS_ROUNDS", "3"))
SECONDS = float(os.environ.get("ANYPICKLE_BENCH_CORPUS_TIME", "0.002"))  # per round, per loader


def _objects() -> dict:
    utc = datetime.timezone.utc
    when = datetime.datetime(2024, 5, 17, 9, 30, 12, 345678)
    structured = np.array([(i, i / 3, f"n{i}") for i in range(6)], dtype=[("id", "<i4"), ("x", "<f8"), ("name", "U4")])
    return {
        "datetime naive": [when + datetime.timedelta(hours=i) for i in range(4)],
        "datetime utc": {"created": when.replace(tzinfo=utc), "expires": when.replace(tzinfo=utc) + datetime.timedelta(days=30)},
        "date/time/timedelta": (datetime.date(2024, 1, 2), datetime.time(12, 30, 1), datetime.timedelta(days=3, seconds=7)),
        "Decimal prices": {"sku-1": decimal.Decimal("19.99"), "sku-2": decimal.Decimal("0.05"), "total": decimal.Decimal("20.04")},
        "range": {"rows": range(0, 1000, 7), "cols": range(12)},
        "complex": [complex(i, -i / 2) for i in range(8)],
        "bytes": {"id": b"\x00\x01payload-bytes\xff" * 4, "n": 3},
        "bytearray": bytearray(b"abcdefgh" * 16),
        "set/frozenset": {"tags": {"red", "green", "blue"}, "frozen": frozenset({1, 2, 3, 5, 8})},
        "nested task args": {"id": 42, "name": "task", "ok": True, "tags": ["a", "b"], "args": (1, 2.5, None, "x" * 20)},
        "unicode text": {"greeting": "héllo wörld ✓", "lines": ["ligne une", "zwei", "три"]},
        "uuid record": {"id": uuid.UUID(int=0x1234567890ABCDEF), "n": 1},
        "large ints": [2**70 + i for i in range(6)] + [-(2**40)],
        "numpy float64[16]": np.arange(16, dtype=np.float64),
        "numpy int32 2x3": np.arange(6, dtype=np.int32).reshape(2, 3),
        "numpy bool[20]": np.arange(20) % 3 == 0,
        "numpy float32 fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        "numpy structured": structured,
        "numpy scalars": [np.float64(1.5), np.int64(7), np.bool_(True)],
        "numpy datetime64": np.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]"),
        "numpy in a dict": {"weights": np.linspace(0, 1, 8), "bias": np.float32(0.25), "step": 3},
        "numpy float64[128]": np.arange(128, dtype=np.float64),
    }


_SHORT = re.compile(rb"\x8c(?P<n>[\x00-\xff])numpy\._core\.")


def numpy1_names(data: bytes) -> bytes:
    """The stream a numpy 1.x sender writes: ``numpy.core.*`` globals instead of ``numpy._core.*``.

    Protocols 0-3 name globals with text (``GLOBAL``): a plain replacement. Protocols 4-5 push the
    module name as a length-prefixed string: fix the length, then let ``pickletools.optimize``
    rebuild the frames (their lengths changed).
    """
    if data[:2] in (b"\x80\x04", b"\x80\x05"):
        fixed = _SHORT.sub(lambda m: b"\x8c" + bytes([m.group("n")[0] - 1]) + b"numpy.core.", data)
        return pickletools.optimize(fixed)
    return data.replace(b"cnumpy._core.", b"cnumpy.core.")


def corpus() -> dict[str, bytes]:
    files = {}
    for name, obj in _objects().items():
        for protocol in range(6):
            data = pickle.dumps(obj, protocol)
            files[f"{name} p{protocol}"] = data
            if b"numpy._core" in data:
                old = numpy1_names(data)
                assert old != data and b"numpy._core" not in old
                files[f"{name} p{protocol} numpy1-names"] = old
    return files


CORPUS = corpus()


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_corpus_shape():
    """The corpus covers every protocol, both numpy name generations, and stays small."""
    sizes = [len(d) for d in CORPUS.values()]
    assert {n.split(" p")[-1][0] for n in CORPUS} == set("012345")
    assert sum("numpy1-names" in n for n in CORPUS) >= 30
    assert min(sizes) >= 40 and max(sizes) <= 8192, (min(sizes), max(sizes))


def test_safe_corpus(benchmark):
    """Per file: safe_loads / pickle.loads (minimum over interleaved rounds); median and worst in extra_info."""
    benchmark.group = "safe loads, small corpus"
    rounds, seconds = (ROUNDS, SECONDS) if not benchmark.disabled else (1, 0.0002)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 warns on numpy.core names
        for name, data in CORPUS.items():
            assert _same(safe_loads(data), pickle.loads(data)), name

        def measure():
            ratios = {}
            for name, data in CORPUS.items():
                calls = calls_for(lambda: pickle.loads(data), seconds)
                best = interleaved_min({"pickle": lambda: pickle.loads(data), "safe": lambda: safe_loads(data)},
                                       calls, rounds)
                ratios[name] = best["safe"] / best["pickle"]
            return ratios

        ratios = benchmark.pedantic(measure, rounds=1, iterations=1)
    worst = sorted(ratios.items(), key=lambda kv: kv[1], reverse=True)
    benchmark.extra_info.update(case="safe corpus", files=len(ratios), ratios=ratios,
                                sizes={n: len(d) for n, d in CORPUS.items()})
    print(f"\n  {len(ratios)} files, {min(map(len, CORPUS.values()))}-{max(map(len, CORPUS.values()))} bytes; "
          "worst: " + ", ".join(f"{n} {r:.1f}x" for n, r in worst[:8]), end="")
    numpy1 = [r for n, r in ratios.items() if "numpy1-names" in n]
    record(benchmark, [
        row("safe=True on small varied pickles: median at most 2x pickle.loads", f"{len(ratios)} files, protocols 0-5",
            "median safe/pickle", statistics.median(ratios.values()), 2.0),
        row("safe=True on small varied pickles: no file over 5x pickle.loads", f"{len(ratios)} files, protocols 0-5",
            "max safe/pickle", worst[0][1], 5.0, note=f"worst: {worst[0][0]}"),
        row("(info) safe=True on small varied pickles", "numpy 1.x names", "median safe/pickle",
            statistics.median(numpy1) if numpy1 else None, None),
        row("(info) safe=True on small varied pickles", f"{len(ratios)} files, protocols 0-5",
            "90th percentile safe/pickle", statistics.quantiles(ratios.values(), n=10)[-1], None,
            note=f"{sum(r > 2 for r in ratios.values())} files over 2x"),
    ])
