"""Run safe loads in a child process with RLIMIT_AS and a timeout, and check what each load left behind.

The child imports every allowlisted module and warms safe loading up first, then for each stream:
loads it (``anypickle.loads(data, safe=True)``), takes the repr of the result and frees it (a
corrupted numpy object crashes there), and compares ``sys.modules`` and a snapshot of numpy's and
uuid's shared objects with what they were before. A crash or hang kills only the child; the parent
then names the stream that was running.
"""

from __future__ import annotations

import json
from pathlib import Path

from anypickle.lab.runner import RunnerError, run_script

ADDRESS_SPACE = 3 << 30  # RLIMIT_AS of the child: numpy and its BLAS threads need ~1 GB of it

CHILD = r"""
import os, resource
resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before numpy loads its BLAS
import gc, json, sys, warnings
warnings.simplefilter("ignore")
cases_path, out_path, progress_path, mode = sys.argv[1:5]
import collections, copyreg, datetime, decimal, fractions, uuid, _codecs
import numpy as np
import numpy._core.multiarray, numpy._core.numeric
import numpy.core.multiarray, numpy.core.numeric
import anypickle, anypickle.safe._loads, anypickle.safe._scanner, anypickle.safe._scanner._rules
import pickle
anypickle.safe._loads.C_FIRST = mode in ("c_first", "planned") and anypickle.safe._loads.C_FIRST
allowlist = anypickle.safe._loads.build_allowlist(())

class Miss(Exception):
    pass
if mode == "no_extension":  # as installed without a C compiler: the pure-Python paths only
    anypickle.safe._loads._memo_check = anypickle.safe._loads._plain_data = None

def snapshot():
    dtypes = {}
    for code in np.typecodes["All"] + "USVO":
        d = np.dtype(code)
        dtypes[code] = (repr(d), d.__reduce__()[2], d.flags, d.itemsize, d.hasobject, d.isbuiltin)
    members = [(m.name, m.value, m._name_, m._value_) for m in uuid.SafeUUID]
    classes = {c.__qualname__: sorted(vars(c)) for c in (uuid.SafeUUID, uuid.UUID, fractions.Fraction,
               collections.Counter, decimal.Decimal, np.dtype, np.ndarray)}
    scalars = (repr(np.True_), repr(np.False_), np.True_.dtype.flags)
    return repr((dtypes, members, classes, scalars, anypickle.safe._loads._SUBSTITUTES))

# warm up: one benign load of every kind, so lazily imported modules are imported before the baseline
for obj in (np.arange(3), np.zeros(2, "U2,O"), np.float64(1), np.dtype("M8[ns]"), fractions.Fraction(1, 3),
            decimal.Decimal("1.5"), uuid.UUID(int=1), datetime.datetime(2020, 1, 1), collections.Counter("a"),
            collections.deque([1]), collections.OrderedDict(a=1), bytearray(b"x"), range(3), slice(1), 1j):
    for proto in range(6):
        anypickle.loads(pickle.dumps(obj, proto), safe=True)
repr(anypickle.UnsafePickleError("x"))
base_modules = set(sys.modules)
base_state = snapshot()
outcomes = {}
for name, hexdata in json.load(open(cases_path)):
    with open(progress_path, "w") as f:
        f.write(name)
    data = bytes.fromhex(hexdata)
    out = {"outcome": None, "error": None, "limit": None, "new_modules": [], "state_changed": False}
    try:
        if mode == "planned":  # the planned load alone: "loads", or "miss" (it hands the stream on)
            plan = anypickle.safe._loads._safe_plan(data)
            result = (anypickle.safe._loads._planned_load(data, allowlist, anypickle.safe._loads.DEFAULT_LIMITS, plan)
                      if type(plan) is tuple and len(plan) == 3 else anypickle.safe._loads._MISS)
            if result is anypickle.safe._loads._MISS:
                raise Miss
        else:
            result = pickle.loads(data) if mode == "plain" else anypickle.loads(data, safe=True)
        out["outcome"] = "loads"
        if mode in ("planned", "static_first"):  # what it loaded, to compare the two paths
            try:
                out["result"] = pickle.dumps(result, 4).hex()
            except Exception as exc:
                out["result"] = f"unpicklable {type(result).__qualname__}: {exc}"
        try:
            repr(result)
        except Exception:
            pass
        del result
    except Miss:
        out["outcome"] = "miss"
    except anypickle.UnsafePickleError as exc:
        out["outcome"], out["error"], out["limit"] = "refused", str(exc)[:300], exc.limit
    except anypickle.AnyPickleError as exc:
        out["outcome"], out["error"] = "error", f"{type(exc).__name__}: {exc}"[:300]
    except BaseException as exc:
        out["outcome"], out["error"] = "foreign", f"{type(exc).__name__}: {exc}"[:300]
    if len(outcomes) % 64 == 0:  # objects in reference cycles are freed here (a full collection costs ms)
        gc.collect()
    out["new_modules"] = sorted(set(sys.modules) - base_modules)
    out["state_changed"] = snapshot() != base_state
    outcomes[name] = out
gc.collect()
json.dump(outcomes, open(out_path, "w"))
print(json.dumps(len(outcomes)))
""".replace("ADDRESS_SPACE", str(ADDRESS_SPACE))


def run_streams(streams: dict[str, bytes], workdir: Path, mode: str = "c_first", timeout: float = 120) -> dict:
    """Load every stream safely in one child; return {name: outcome dict}. Raises AssertionError naming
    the stream that was running when the child crashed or hung."""
    cases_path = workdir / f"cases-{mode}.json"
    out_path = workdir / f"out-{mode}.json"
    progress = workdir / f"progress-{mode}.txt"
    cases_path.write_text(json.dumps([[name, data.hex()] for name, data in streams.items()]))
    try:
        count = run_script(workdir / f"child-{mode}", CHILD, args=[str(cases_path), str(out_path), str(progress), mode],
                           timeout=timeout)
    except RunnerError as exc:  # a crash (exit code or signal) or a hang (killed after timeout)
        running = progress.read_text() if progress.exists() else "<before the first stream>"
        raise AssertionError(f"the child died or hung while loading stream {running!r}: {str(exc)[-3000:]}") from None
    assert count == len(streams)
    return json.loads(out_path.read_text())
