"""Out-of-band buffers: ``dumps(obj, buffers=True)`` and ``loads(header, buffers=...)``."""

from __future__ import annotations

import numpy as np
import pytest

import anypickle
from anypickle import DecodeError, SignatureError, UsageError
from anypickle.lab.runner import run_script


def _writable(buffers):
    return [bytearray(b) for b in buffers]


def test_array_round_trip_shares_the_callers_buffer():
    """The loaded array is a view of the buffer passed to loads: no copy."""
    arr = np.arange(100_000, dtype=np.float64)
    header, buffers = anypickle.dumps(arr, buffers=True)
    received = _writable(buffers)
    out = anypickle.loads(header, buffers=received)
    assert np.array_equal(out, arr)
    assert np.shares_memory(out, np.frombuffer(received[0], dtype=np.uint8))


def test_dumps_hands_out_the_arrays_own_memory():
    """The buffers dumps returns are views of the original arrays, and the header stays small."""
    arr = np.arange(1_000_000, dtype=np.float64)
    header, buffers = anypickle.dumps(arr, buffers=True)
    assert len(header) < 1000
    assert [b.nbytes for b in buffers] == [arr.nbytes]
    assert np.shares_memory(np.frombuffer(buffers[0], dtype=np.uint8), arr)


def test_arrays_are_writable_when_the_buffers_are():
    """bytearray buffers give writable arrays; bytes give read-only ones, with the same values."""
    header, buffers = anypickle.dumps(np.arange(10), buffers=True)
    writable = anypickle.loads(header, buffers=_writable(buffers))
    writable[0] = 42
    assert writable[0] == 42
    readonly = anypickle.loads(header, buffers=[bytes(b) for b in buffers])
    assert readonly.tolist() == list(range(10))
    assert not readonly.flags.writeable


def test_mixed_objects_with_code_round_trip():
    """Arrays, plain data and a lambda in one object: the lambda goes by value, the arrays apart."""
    a, b = np.arange(5.0), np.ones((3, 4), dtype=np.int32)
    obj = {"a": a, "nested": [b, "text", 7], "f": lambda x: x * 2}
    header, buffers = anypickle.dumps(obj, buffers=True)
    assert len(buffers) == 2
    out = anypickle.loads(header, buffers=_writable(buffers))
    assert np.array_equal(out["a"], a) and np.array_equal(out["nested"][0], b)
    assert out["nested"][1:] == ["text", 7]
    assert out["f"](21) == 42


def test_non_contiguous_array_travels_in_band():
    """A strided view has no flat buffer: pickle copies it into the stream, and it round-trips."""
    arr = np.arange(20.0)[::2]
    header, buffers = anypickle.dumps(arr, buffers=True)
    assert buffers == []
    assert np.array_equal(anypickle.loads(header, buffers=[]), arr)


@pytest.mark.parametrize("backend", ["pickle", "cloudpickle", "dill"])
def test_forced_backends_support_buffers(backend):
    """Forced backends pass the buffer callback through (dill keeps arrays in-band by design)."""
    arr = np.arange(1000, dtype=np.int64)
    header, buffers = anypickle.dumps({"x": arr}, buffers=True, backend=backend)
    assert np.array_equal(anypickle.loads(header, buffers=_writable(buffers))["x"], arr)


def test_wrong_buffer_count_is_a_decode_error():
    """Too few, too many, or none at all: a DecodeError that says how many are needed."""
    header, buffers = anypickle.dumps([np.arange(4), np.arange(3)], buffers=True)
    assert len(buffers) == 2
    with pytest.raises(DecodeError, match="needs 2 out-of-band buffers, 1 were passed"):
        anypickle.loads(header, buffers=buffers[:1])
    with pytest.raises(DecodeError, match="needs 2 out-of-band buffers, 3 were passed"):
        anypickle.loads(header, buffers=[*buffers, b"x"])
    with pytest.raises(DecodeError, match="pass them to loads"):
        anypickle.loads(header)


def test_wrong_buffer_size_or_order_is_a_decode_error():
    """Buffers swapped or cut short are caught by the size table before unpickling."""
    header, buffers = anypickle.dumps([np.arange(4), np.arange(3)], buffers=True)
    with pytest.raises(DecodeError, match=r"buffers\[0\] has 24 bytes; this payload needs 32"):
        anypickle.loads(header, buffers=buffers[::-1])


def test_buffers_for_a_payload_without_them_is_a_decode_error():
    """Passing buffers to an ordinary envelope is refused rather than ignored."""
    with pytest.raises(DecodeError, match="no out-of-band buffers, but 1 were passed"):
        anypickle.loads(anypickle.dumps([1, 2]), buffers=[b"abc"])


def test_a_buffer_that_is_not_bytes_like_is_a_usage_error():
    """A str (or any non-buffer) among the buffers names its position."""
    header, _ = anypickle.dumps(np.arange(3), buffers=True)
    with pytest.raises(UsageError, match=r"buffers\[0\] is a str"):
        anypickle.loads(header, buffers=["not bytes"])


def test_signature_covers_the_buffers():
    """With a key, a flipped byte in a buffer fails the HMAC; intact buffers load."""
    header, buffers = anypickle.dumps({"x": np.arange(100)}, buffers=True, key=b"secret-key-of-32-bytes-0123456")
    assert anypickle.loads(header, buffers=buffers, key=b"secret-key-of-32-bytes-0123456")["x"].sum() == 4950
    tampered = _writable(buffers)
    tampered[0][8] ^= 1
    with pytest.raises(SignatureError):
        anypickle.loads(header, buffers=tampered, key=b"secret-key-of-32-bytes-0123456")


def test_dump_to_a_file_refuses_buffers(tmp_path):
    """dump() writes one stream, so buffers=True there is a usage error, not a corrupt file."""
    with pytest.raises(UsageError, match="dumps\\(obj, buffers=True\\)"):
        anypickle.dump(np.arange(3), tmp_path / "x.bin", buffers=True)


def test_plain_protocol5_stream_with_buffers_loads():
    """A stream written by pickle itself with a buffer_callback loads through anypickle.loads."""
    import pickle

    arr = np.arange(6)
    views = []
    data = pickle.dumps(arr, protocol=5, buffer_callback=lambda b: views.append(b.raw()) or False)
    assert np.array_equal(anypickle.loads(data, buffers=views), arr)


SENDER = """
import json, sys
import numpy as np
import anypickle

SCALE = 3

def scale(a):
    return a * SCALE

obj = {"data": np.arange(1000, dtype=np.float64), "fn": scale}
header, buffers = anypickle.dumps(obj, buffers=True)
open("header.bin", "wb").write(header)
for i, b in enumerate(buffers):
    open(f"buffer{i}.bin", "wb").write(b)
print(len(buffers))
"""

RECEIVER = """
import json, sys
import numpy as np
import anypickle
header = open(sys.argv[1] + "/header.bin", "rb").read()
buffers = [bytearray(open(sys.argv[1] + f"/buffer{i}.bin", "rb").read()) for i in range(int(sys.argv[2]))]
obj = anypickle.loads(header, buffers=buffers)
obj["data"][0] = 5.0
print(json.dumps({
    "shares": bool(np.shares_memory(obj["data"], np.frombuffer(buffers[0], dtype=np.uint8))),
    "writable": bool(obj["data"].flags.writeable),
    "write_reached_buffer": bool(np.frombuffer(buffers[0], dtype=np.float64)[0] == 5.0),
    "result": float(obj["fn"](obj["data"])[1]),
}))
"""


def test_frames_load_in_a_fresh_interpreter(tmp_path):
    """A __main__ function and an array sent as frames load in a process that never ran the script."""
    sender = tmp_path / "sender"
    count = run_script(sender, SENDER)
    report = run_script(tmp_path / "receiver", RECEIVER, args=[str(sender), str(count)])
    assert report == {"shares": True, "writable": True, "write_reached_buffer": True, "result": 3.0}


def test_buffers_with_portable_or_context_is_a_usage_error():
    """Combinations the frames format does not carry are refused up front."""
    with pytest.raises(UsageError, match="buffers=True cannot be combined"):
        anypickle.dumps(np.arange(3), buffers=True, backend="portable")
    with pytest.raises(UsageError, match="buffers=True cannot be combined"):
        anypickle.dumps(np.arange(3), buffers=True, context={"x": object()})
