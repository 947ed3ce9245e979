#!/usr/bin/env bash
# Fuzz anypickle.safe._opwalk.memo_check under AddressSanitizer: builds an ASan copy of the extension in a
# temporary directory and feeds it hypothesis streams (and every prefix of each) in exact-size heap
# buffers, so a read one byte past the input is reported. Usage: scripts/asan_opwalk.sh [examples]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
suffix=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
gcc -shared -fPIC -O1 -g -fsanitize=address -fno-omit-frame-pointer -I"$include" \
    src/anypickle/safe/_opwalk.c -o "$tmp/_opwalk$suffix"
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
PYEOF
PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$(gcc -print-file-name=libasan.so)" \
    "$PY" "$tmp/run.py" "${1:-3000}"
