#!/usr/bin/env bash
# Fuzz anypickle.safe._opwalk under AddressSanitizer: builds an ASan copy of the extension in a temporary
# directory, then
#  1. feeds memo_check hypothesis streams (and every prefix of each) in exact-size heap buffers, so a
#     read one byte past the input is reported;
#  2. feeds safe_fast (the walks, the planned load and the inert-only load of _planload.c) ordinary
#     streams that name globals (numpy's among them; a few over PLAN_FIRST bytes) and mutants of
#     them: bytes flipped, cut, repeated.
# Usage: scripts/asan_opwalk.sh [examples] [mutants]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
suffix=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
gcc -shared -fPIC -O1 -g -fsanitize=address -fno-omit-frame-pointer -I"$include" \
    src/anypickle/safe/_opwalk.c src/anypickle/safe/_planload.c -o "$tmp/_opwalk$suffix"
cat > "$tmp/run.py" <<PYEOF
import ctypes, sys
sys.path[:0] = ["$tmp", "tests"]
import _opwalk
from hypothesis import HealthCheck, given, settings
from test_safe_opwalk import _STREAMS, reference

def exact(data):
    n = max(len(data), 17)  # ctypes keeps arrays of <= 16 bytes inside the object
    buf = (ctypes.c_char * n).from_buffer_copy(data.ljust(n, b"\0"))
    return memoryview(buf).cast("B")[: len(data)]

@settings(max_examples=int(sys.argv[1]), deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(_STREAMS)
def fuzz(data):
    verdict = _opwalk.memo_check(exact(data))
    assert (None if verdict is None else verdict[0]) == reference(data)
    for cut in range(len(data)):
        _opwalk.memo_check(exact(data[:cut]))

fuzz()
print("memo_check: no AddressSanitizer report")

# 2. the planned load: the ASan copy configured as anypickle.safe._loads configures the built one
import pickle, random, warnings
import anypickle.safe._loads as loads
import anypickle.safe._planned as planned
from test_safe_planned import CORPUS

planned.configure_planned = _opwalk.configure_planned
planned.configure(loads._DEFAULT_ALLOWLIST, loads._SUBSTITUTES)
_opwalk.configure_fast(*loads._DEFAULT_C_ARGS, loads._DEFAULT_ARRAY_CAP)
warnings.simplefilter("ignore")
import datetime
when = [datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=i) for i in range(700)]
larger = [pickle.dumps(when + extra, p) for p in (2, 5) for extra in ([], [range(3)])]  # inert, then planned
assert all(len(d) > _opwalk.PLAN_FIRST for d in larger)
seeds = [d for d in CORPUS.values() if len(d) <= _opwalk.PLAN_FIRST] + larger
taken = sum(_opwalk.safe_fast(d) is not _opwalk.MISS for d in seeds)
assert taken >= len(seeds) * 9 // 10, (taken, len(seeds))
rng = random.Random(16)
for k in range(int(sys.argv[2])):
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(data))
        how = rng.randrange(3)
        if how == 0:
            data[i] = rng.randrange(256)
        elif how == 1:
            del data[i:i + rng.randint(1, 8)]
        else:
            data[i:i] = data[max(0, i - 8):i]
    _opwalk.safe_fast(bytes(data))
print(f"safe_fast: {taken} of {len(seeds)} streams taken, {sys.argv[2]} mutants; no AddressSanitizer report")
PYEOF
PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$(gcc -print-file-name=libasan.so)" \
    "$PY" "$tmp/run.py" "${1:-3000}" "${2:-20000}"
