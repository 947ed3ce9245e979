"""Bad input of every kind raises DecodeError, never anything else, and nothing is unpickled first."""

from __future__ import annotations

import os
import pickle
import random
import struct
import zlib

import pytest

import anypickle
from anypickle import _envelope as env
from anypickle.errors import DecodeError, InterpreterMismatchError


def _reheader(data: bytes, **changes: int) -> bytes:
    """Rewrite fixed header fields of an unsigned, non-bytecode envelope and fix its CRC."""
    magic, version, backend, flags, reserved, length = struct.unpack_from("<4sBBBBQ", data)
    fields = dict(magic=magic, version=version, backend=backend, flags=flags, reserved=reserved, length=length)
    fields.update(changes)
    head = struct.pack("<4sBBBBQ", *fields.values())
    rest = data[16 + 4:]
    return head + struct.pack("<I", zlib.crc32(head)) + rest


def test_round_trip_of_plain_data_uses_pickle():
    """Plain data goes through stdlib pickle and comes back equal."""
    obj = {"a": [1, 2.5, "x", b"y", None], "b": (1, 2)}
    data = anypickle.dumps(obj)
    assert data[:4] == b"APKL"
    assert anypickle.Backend(data[5]) is anypickle.Backend.PICKLE
    assert anypickle.loads(data) == obj


@pytest.mark.parametrize("seed", range(200))
def test_random_bytes_raise_decode_error(seed):
    """Random bytes of random length raise DecodeError."""
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
    if data[:1] in (b"\x80",) and len(data) > 1 and data[1] <= 5:
        data = b"\x00" + data  # a random valid-looking pickle would run the pickle VM: test that below
    with pytest.raises(DecodeError):
        anypickle.loads(data)


@pytest.mark.parametrize("cut", [0, 1, 3, 4, 10, 16, 19, 20, 25])
def test_truncated_envelope_raises_decode_error(cut):
    """An envelope cut anywhere raises DecodeError."""
    data = anypickle.dumps({"k": list(range(10))})
    with pytest.raises(DecodeError):
        anypickle.loads(data[:cut] if cut < 20 else data[:-cut])


def test_every_flipped_header_byte_raises_decode_error():
    """Flipping any bit of any header byte (including the CRC) raises DecodeError."""
    for obj in ({"k": 1}, lambda x: x):
        data = anypickle.dumps(obj)
        header_length = env.parse(memoryview(data)).header_length
        for i in range(header_length):
            for bit in range(8):
                bad = bytearray(data)
                bad[i] ^= 1 << bit
                with pytest.raises(DecodeError):
                    anypickle.loads(bytes(bad))


def test_unknown_backend_id_raises_decode_error():
    """A well-formed header naming a backend this version does not know is refused by name."""
    data = _reheader(anypickle.dumps([1, 2]), backend=77)
    with pytest.raises(DecodeError, match="unknown backend id 77"):
        anypickle.loads(data)


def test_newer_format_version_raises_decode_error():
    """A future format version is refused with advice to upgrade."""
    with pytest.raises(DecodeError, match="newer anypickle"):
        anypickle.loads(_reheader(anypickle.dumps([1]), version=9))


def test_trailing_bytes_raise_decode_error():
    """Bytes after the payload mean the envelope is not what it claims."""
    with pytest.raises(DecodeError, match="trailing"):
        anypickle.loads(anypickle.dumps([1]) + b"\x00")


def _claim_other_interpreter(data: bytes, major: int, minor: int, magic: bytes) -> bytes:
    header = env.parse(memoryview(data))
    assert header.interpreter is not None
    impl = header.interpreter.implementation.encode()
    start = 16
    rest_start = start + 1 + len(impl) + 2 + 4
    # the sections after the interpreter's (library version, source lines) stay as they are
    head = data[:start] + bytes([len(impl)]) + impl + bytes([major, minor]) + magic + data[rest_start:header.header_length - 4]
    return head + struct.pack("<I", zlib.crc32(head)) + data[header.header_length:]


def test_bytecode_from_another_python_is_refused_before_unpickling(tmp_path):
    """A bytecode payload claiming Python 3.99 is refused, naming both versions, and nothing runs."""
    marker = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    data = anypickle.dumps([lambda: 1, Boom()], backend="cloudpickle")
    forged = _claim_other_interpreter(data, 3, 99, b"\x00\x00\r\n")
    with pytest.raises(InterpreterMismatchError) as info:
        anypickle.loads(forged)
    assert "3.99" in str(info.value) and "3.%d" % __import__("sys").version_info.minor in str(info.value)
    assert "backend='portable'" in str(info.value)
    assert not marker.exists()
    anypickle.loads(data)  # the unforged payload does run the reducer: the marker test is real
    assert marker.exists()


def test_plain_pickle_cloudpickle_and_dill_streams_load_without_envelope():
    """loads accepts streams written directly by pickle, cloudpickle and dill."""
    import cloudpickle
    import dill

    assert anypickle.loads(pickle.dumps({"x": 1}, protocol=0)) == {"x": 1}
    assert anypickle.loads(pickle.dumps([1, 2], protocol=5)) == [1, 2]
    assert anypickle.loads(cloudpickle.dumps(lambda x: x + 1))(1) == 2
    assert anypickle.loads(dill.dumps(lambda x: x + 2))(1) == 3


def test_joblib_file_loads_when_joblib_is_installed(tmp_path):
    """A joblib.dump file with numpy arrays loads through joblib."""
    joblib = pytest.importorskip("joblib", reason="joblib is not installed")
    np = pytest.importorskip("numpy")
    path = tmp_path / "x.joblib"
    joblib.dump({"a": np.arange(5)}, path)
    loaded = anypickle.load(path)
    assert loaded["a"].tolist() == [0, 1, 2, 3, 4]


def test_not_bytes_is_a_usage_error():
    """Passing a str is a clear usage error, not a TypeError from deep inside."""
    with pytest.raises(anypickle.UsageError):
        anypickle.loads("not bytes")  # type: ignore[arg-type]


def test_dump_and_load_accept_paths_and_files(tmp_path):
    """dump/load work with a path and with a binary file object."""
    path = tmp_path / "obj.apk"
    anypickle.dump({"v": 1}, path)
    assert anypickle.load(path) == {"v": 1}
    anypickle.dump([2], str(path))
    with open(path, "rb") as f:
        assert anypickle.load(f) == [2]


def test_envelope_adds_only_a_small_header_to_a_large_payload():
    """A 4 MiB bytes payload round-trips with a header of a few dozen bytes."""
    big = os.urandom(1 << 22)
    data = anypickle.dumps(big)
    assert anypickle.loads(data) == big
    assert len(data) - len(big) < 64
