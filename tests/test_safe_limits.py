"""Issue 12, classes 4-6 beyond the adversarial corpus: the Limits object, the hash flood's way out,
the scanner's bounds (linear in the stream, zip members in bounded chunks, every member failure a
finding) and HMAC key checks."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import zipfile

import pytest

import anypickle
from adversarial import Asm, int_hash_flood, scanner_reuse_stream
from anypickle import Limits, UnsafePickleError, UsageError
from anypickle import scan


def _deep_lists(depth: int) -> bytes:
    a = Asm()
    a.op(b"]" * depth).op(b"a" * (depth - 1))
    return a.stop()


# -- limits ------------------------------------------------------------------------------------

def test_depth_limit_is_caller_changeable():
    data = _deep_lists(1500)
    with pytest.raises(UnsafePickleError) as info:
        anypickle.loads(data, safe=True)
    assert info.value.limit == "max_depth"
    value = anypickle.loads(data, safe=True, limits=Limits(max_depth=2000))
    depth = 0
    while value:
        value, depth = value[0], depth + 1
    assert depth == 1499


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_array_bytes_limit_is_caller_changeable(proto):
    """An array whose shape asks for more than limits.max_array_bytes is refused before numpy makes
    it, on every path: the planned load (small stream), the inert-first one (large) and the static."""
    np = pytest.importorskip("numpy")
    import pickle

    from anypickle.safe import _loads

    for array in (np.arange(1000, dtype=np.float64), np.arange(3000, dtype=np.float64)):
        data = pickle.dumps([array, range(2)], proto)
        got = anypickle.loads(data, safe=True, limits=Limits(max_array_bytes=array.nbytes))
        assert np.array_equal(got[0], array)
        with pytest.raises(UnsafePickleError) as info:
            anypickle.loads(data, safe=True, limits=Limits(max_array_bytes=array.nbytes - 1))
        assert info.value.limit == "max_array_bytes"
        plan = _loads._safe_plan(data)
        assert _loads._planned_load(data, _loads._DEFAULT_ALLOWLIST, Limits(max_array_bytes=array.nbytes - 1),
                                    plan) is _loads._MISS
        assert np.array_equal(_loads._planned_load(data, _loads._DEFAULT_ALLOWLIST, Limits(), plan)[0], array)


def test_copy_limit_is_caller_changeable():
    a = Asm()
    a.op(b"]")
    lst = a.put()
    a.mark().op(b"K\x01" * 1000).op(b"e0")
    a.g("builtins", "list")
    fn = a.put()
    a.mark()
    for _ in range(20):
        a.get(fn).get(lst).op(b"\x85R")
    data = a.list().stop()
    with pytest.raises(UnsafePickleError) as info:
        anypickle.loads(data, safe=True, limits=Limits(max_copy=5_000))
    assert info.value.limit == "max_copy"
    assert len(anypickle.loads(data, safe=True)) == 20


def test_digits_limit_is_caller_changeable():
    import decimal

    a = Asm()
    a.g("decimal", "Decimal").mark().i(10**5000).tuple().reduce()
    data = a.stop()
    with pytest.raises(UnsafePickleError) as info:
        anypickle.loads(data, safe=True)
    assert info.value.limit == "max_digits"
    assert anypickle.loads(data, safe=True, limits=Limits(max_digits=6000)) == decimal.Decimal(10**5000)


def test_hash_flood_way_out():
    """Off by default (ordinary data has many int keys); with max_hashed_keys the flood is refused
    before the dict is built, and string keys never count."""
    data = int_hash_flood(3_000)
    assert len(anypickle.loads(data, safe=True)) == 3_000
    with pytest.raises(UnsafePickleError) as info:
        anypickle.loads(data, safe=True, limits=Limits(max_hashed_keys=1_000))
    assert info.value.limit == "max_hashed_keys"
    strings = {f"k{i}": i for i in range(5_000)}
    import pickle

    for proto in range(6):
        assert anypickle.loads(pickle.dumps(strings, proto), safe=True, limits=Limits(max_hashed_keys=10)) == strings


@pytest.mark.parametrize("bad", [Limits, {"max_depth": 3}, 5])
def test_limits_must_be_a_limits_object(bad):
    with pytest.raises(UsageError):
        anypickle.loads(b"\x80\x04N.", safe=True, limits=bad)


def test_limits_values_are_checked():
    with pytest.raises(UsageError):
        Limits(max_depth=-5)
    with pytest.raises(UsageError):
        Limits(max_copy="many")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        anypickle.loads(b"\x80\x04N.", limits=Limits())  # limits without safe=True


# -- the scanner's own bounds (class 5) ------------------------------------------------------------

def _run(code: str, *args: str, timeout: float = 60, memory: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit)


def test_scanner_is_linear_in_reused_memoized_arguments(tmp_path):
    """1M-byte-class stream: 100k-item argument tuple reused by 180k REDUCEs. Rules once re-walked the
    tuple per call (many minutes); now each (callable, arguments) pair is judged once. scan(), the
    CLI and loads(safe=True) all finish well inside the child's timeout."""
    path = tmp_path / "reuse.pkl"
    path.write_bytes(scanner_reuse_stream(100_000, 180_000))
    code = (
        "import sys, anypickle\nfrom anypickle import scan\n"
        "report = scan(sys.argv[1])\n"
        "try:\n    anypickle.loads(open(sys.argv[1], 'rb').read(), safe=True)\n"
        "except anypickle.AnyPickleError as exc:\n    print(type(exc).__name__)\n"
    )
    done = _run(code, str(path), timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    cli = subprocess.run([sys.executable, "-m", "anypickle", "scan", str(path)], capture_output=True,
                         text=True, timeout=60)
    assert cli.returncode in (0, 1) and "Traceback" not in cli.stderr, cli.stderr[-2000:]


def _bomb(path, members: int = 3, size: int = 640 << 20) -> None:
    """A zip of members deflating to ``size`` zero bytes each, written without holding them in memory."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for k in range(members):
            with archive.open(f"archive/data/{k}", "w", force_zip64=True) as member:
                chunk = bytes(1 << 24)
                for _ in range(size >> 24):
                    member.write(chunk)
        archive.writestr("archive/data.pkl", b"\x80\x02]q\x00.")


@pytest.fixture(scope="module")
def bomb_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.pt"
    _bomb(path, members=1, size=768 << 20)
    return path


def test_zip_members_are_read_in_bounded_chunks(bomb_path):
    """A member of 768 MiB of zeros (deflated to ~0.75 MB): scanned in a child limited to 512 MiB
    of address space (the old scanner inflated each member whole to test it: MemoryError)."""
    code = ("import sys\nfrom anypickle import scan\nr = scan(sys.argv[1])\n"
            "print(r.safe, r.members)\n")
    done = _run(code, str(bomb_path), memory=512 << 20, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "True" and "archive/data.pkl" in done.stdout


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _corrupt(data: bytes, needle: bytes) -> bytes:
    at = data.index(needle)
    return data[:at] + bytes(b ^ 0xFF for b in needle) + data[at + len(needle):]


PICKLE = b"\x80\x02]q\x00(K\x01K\x02e." + b"\x00" * 0


def test_every_member_failure_is_a_finding():
    encrypted = bytearray(_zip({"archive/data.pkl": PICKLE}))
    encrypted[6] |= 1  # the local header's "encrypted" flag
    central = encrypted.index(b"PK\x01\x02")
    encrypted[central + 8] |= 1  # and the central directory's
    deflated = _zip({"archive/data.pkl": PICKLE * 50}, zipfile.ZIP_DEFLATED)
    bad_deflate = _corrupt(deflated, deflated[40:48])
    xz = _zip({"archive/data.pkl": PICKLE * 50}, zipfile.ZIP_LZMA)
    bad_lzma = _corrupt(xz, xz[50:58])
    nested = _zip({"inner.zip": _zip({"archive/data.pkl": PICKLE}), "archive/data.pkl": PICKLE})
    bad_crc = bytearray(_zip({"archive/data.pkl": PICKLE}))
    bad_crc[14] ^= 0xFF  # local header CRC
    bad_crc[bad_crc.index(b"PK\x01\x02") + 16] ^= 0xFF  # central directory CRC
    for name, data in [("encrypted", bytes(encrypted)), ("deflate", bad_deflate), ("lzma", bad_lzma),
                       ("nested", nested), ("crc", bytes(bad_crc)), ("truncated", deflated[: len(deflated) // 2])]:
        report = scan(data)
        assert not report.safe, name
        assert any(f.opcode == "ZIP" for f in report.findings), (name, report.findings)


def test_scan_cli_prints_no_traceback_on_broken_members(tmp_path):
    path = tmp_path / "broken.pt"
    deflated = _zip({"archive/data.pkl": PICKLE * 50}, zipfile.ZIP_DEFLATED)
    path.write_bytes(_corrupt(deflated, deflated[40:48]))
    done = subprocess.run([sys.executable, "-m", "anypickle", "scan", "--json", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["safe"] is False


# -- keys (class 6) ------------------------------------------------------------------------------

GOOD = os.urandom(16)


@pytest.mark.parametrize("key", [b"", b"x" * 15, "a text key of 32 characters.....", bytearray(3), 12345])
def test_short_or_non_bytes_keys_are_refused_on_both_sides(key):
    with pytest.raises(UsageError):
        anypickle.dumps([1], key=key)
    signed = anypickle.dumps([1], key=GOOD)
    with pytest.raises(UsageError):
        anypickle.loads(signed, key=key)


@pytest.mark.parametrize("keys", [{"id": "text"}, {"id": b""}, {"id": b"short"}, {}, {1: GOOD}, {"id": None}])
def test_bad_key_mappings_are_refused(keys):
    signed = anypickle.dumps([1], key=GOOD, key_id="id")
    with pytest.raises(UsageError):
        anypickle.loads(signed, key=keys)


def test_rotation_form_still_works():
    signed = anypickle.dumps([1], key=GOOD, key_id="new")
    assert anypickle.loads(signed, key={"old": os.urandom(32), "new": GOOD}) == [1]
    assert anypickle.loads(signed, key=bytearray(GOOD)) == [1]
