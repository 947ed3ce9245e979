"""Measure what the adversarial corpus does to plain ``pickle.loads`` and to ``loads(safe=True)``.

    python scripts/measure_security.py            # writes docs/results/security.json.gz
    python scripts/generate_docs.py                # then renders docs/security.md's tables from it

Every stream comes from ``tests/adversarial.py`` (the corpus the test suite loads in children) and is
loaded twice, each time in a child process with a 2 GiB address-space limit and a timeout: once by
plain ``pickle.loads`` (what an application without anypickle meets: a segfault, an allocation, minutes
of CPU) and once by ``anypickle.loads(data, safe=True)`` (refused, naming the limit, and how fast).
The int-hash flood is timed at a few sizes on plain data through the default safe path, and once over
``Limits(max_hashed_keys=10_000)``.
"""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import adversarial  # noqa: E402  (tests/adversarial.py: the corpus)
from generate_docs import save_raw  # noqa: E402  (the results' one writer, beside this script)

RESULT = ROOT / "docs" / "results" / "security.json.gz"
TIMEOUT = 20.0
MEMORY = 2 << 30

CHILD = r"""
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
data = open(sys.argv[1], "rb").read()
how = sys.argv[2]
import pickle
import anypickle
scan = anypickle.scan
limits = anypickle.Limits(max_hashed_keys=int(sys.argv[3])) if len(sys.argv) > 3 else None
start = time.perf_counter()  # imports done: the time is the load's own
try:
    if how == "pickle":
        obj = pickle.loads(data)
    elif how == "scan":
        obj = scan(data)
    else:
        obj = anypickle.loads(data, safe=True, limits=limits) if limits else anypickle.loads(data, safe=True)
    seconds = time.perf_counter() - start
    del obj  # some streams crash only when what they built is freed
    import gc; gc.collect()
    print("ok", seconds, "")
except BaseException as exc:
    print("error", time.perf_counter() - start, type(exc).__name__, getattr(exc, "limit", "") or "")
"""


def _load(data: bytes, how: str, *extra: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as f:
        f.write(data)
    try:
        done = subprocess.run([sys.executable, "-c", CHILD.format(memory=MEMORY), f.name, how, *extra],
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"outcome": "timeout", "seconds": TIMEOUT}
    finally:
        os.unlink(f.name)
    if done.returncode > 0:
        raise RuntimeError(f"the measuring child failed: {done.stderr[-500:]}")
    if done.returncode < 0:
        return {"outcome": "crash", "signal": signal.Signals(-done.returncode).name}
    fields = (done.stdout.split() + ["", "", "", ""])[:4]
    return {"outcome": fields[0] or f"exit {done.returncode}", "seconds": float(fields[1] or 0),
            "error": fields[2], "limit": fields[3]}


def main() -> int:
    cases = {**adversarial.build_cases(), **adversarial._more_cases()}
    cases["scanner_reuse_180k_reduces"] = adversarial.Case(5, adversarial.scanner_reuse_stream(100_000, 180_000))
    rows = []
    for name, case in cases.items():
        print(name, file=sys.stderr)
        row = {"name": name, "class": case.klass, "size": len(case.data), "expect": case.expect,
               "pickle": _load(case.data, "pickle"), "safe": _load(case.data, "safe")}
        if case.klass == 5:
            row["scan"] = _load(case.data, "scan")
        rows.append(row)
    flood = []
    for keys in (1_000, 3_000, 10_000):
        data = adversarial.int_hash_flood(keys)
        flood.append({"keys": keys, "size": len(data), "safe": _load(data, "safe")})
    capped = adversarial.int_hash_flood(20_000)
    doc = {"python": platform.python_version(), "rows": rows, "flood": flood,
           "flood_capped": {"keys": 20_000, "max_hashed_keys": 10_000, "safe": _load(capped, "safe", "10000")},
           "timeout": TIMEOUT, "memory": MEMORY}
    save_raw(doc, RESULT)
    print(f"wrote {RESULT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
