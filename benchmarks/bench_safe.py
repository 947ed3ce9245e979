"""Safe loading against plain pickle.loads on ordinary data (run: pytest benchmarks/bench_safe.py).

Groups are cases; within a group the "backend" parameter is "pickle.loads" (the baseline),
"anypickle safe" (the default: C-first when the anypickle.safe._opwalk extension is built) and
"anypickle safe static-first" (anypickle.safe._loads.C_FIRST = False: the static pass runs first, as
without the extension). Quote ratios between backends of the same run.
"""

from __future__ import annotations

import datetime
import decimal
import pickle
import uuid

import numpy as np
import pytest

import anypickle.safe._loads
from anypickle.safe import safe_loads


def _cases() -> dict[str, object]:
    base = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    return {
        "ints_100k": list(range(100_000)),
        "dict_10k_str": {f"key{i:05d}": f"value-{i}" for i in range(10_000)},
        "datetimes_1k": [base + datetime.timedelta(seconds=17 * i) for i in range(1_000)],
        "numpy_8mb": np.arange(1 << 20, dtype=np.float64),
        "records_1k": [{"id": uuid.UUID(int=i), "price": decimal.Decimal(i) / 7, "tags": ["a", "b"]} for i in range(1_000)],
    }


CASES = _cases()
BACKENDS = ["pickle.loads", "anypickle safe", "anypickle safe static-first"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_safe_loading(benchmark, case, backend, monkeypatch):
    """Time one load of the case's protocol-5 pickle; results must equal pickle.loads'."""
    data = pickle.dumps(CASES[case], 5)
    benchmark.group = case
    benchmark.extra_info.update(bytes=len(data), protocol=5)
    if backend == "pickle.loads":
        load = pickle.loads
    else:
        if backend.endswith("static-first"):
            monkeypatch.setattr(anypickle.safe._loads, "C_FIRST", False)
        load = safe_loads
        benchmark.extra_info["c_first"] = anypickle.safe._loads.C_FIRST
    out = benchmark(load, data)
    assert type(out) is type(CASES[case])
