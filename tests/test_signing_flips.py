"""Signed envelopes: every single-byte change anywhere raises SignatureError, and nothing is unpickled."""

from __future__ import annotations

import pytest

import anypickle
from anypickle import SignatureError

KEY = b"\x01" * 32
OBJ = {"weights": [0.5, 1.5], "name": "model", "blob": b"\x00\xff" * 8}


@pytest.fixture(scope="module")
def signed() -> bytes:
    return anypickle.dumps(OBJ, key=KEY, key_id="2024-q1")


def test_intact_signed_envelope_loads(signed):
    """The unmodified envelope loads with the key, safe or not."""
    assert anypickle.loads(signed, key=KEY) == OBJ
    assert anypickle.loads(signed, key={"2024-q1": KEY}, safe=True) == OBJ


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_flipped_byte_raises_signature_error(signed, mask):
    """Flipping any bit pattern in any byte (header, key id, tag or payload) raises SignatureError."""
    for i in range(len(signed)):
        tampered = bytearray(signed)
        tampered[i] ^= mask
        with pytest.raises(SignatureError):
            anypickle.loads(bytes(tampered), key=KEY)


def test_truncation_and_extension_raise_signature_error(signed):
    """Cutting bytes off or appending bytes raises SignatureError, never a silent partial load."""
    for cut in range(len(signed)):
        with pytest.raises(SignatureError):
            anypickle.loads(signed[:cut], key=KEY)
    with pytest.raises(SignatureError):
        anypickle.loads(signed + b"\x00", key=KEY)


def test_stripped_or_missing_signature_raises(signed):
    """An unsigned envelope or a bare pickle is refused when a key is required."""
    with pytest.raises(SignatureError):
        anypickle.loads(anypickle.dumps(OBJ), key=KEY)
    import pickle

    with pytest.raises(SignatureError):
        anypickle.loads(pickle.dumps(OBJ), key=KEY)


def test_wrong_key_and_unknown_key_id_raise(signed):
    """Another key, or a key id absent from the mapping, raises SignatureError."""
    with pytest.raises(SignatureError):
        anypickle.loads(signed, key=b"\x02" * 32)
    with pytest.raises(SignatureError):
        anypickle.loads(signed, key={"2023-q4": KEY})


def test_signed_malicious_payload_is_still_refused_by_safe_loading(tmp_path):
    """A valid signature proves who wrote a payload, not that it is harmless: safe=True still refuses."""
    from malicious import build_corpus

    evil = build_corpus(tmp_path)["stack_global_exec"].data
    # Sign a malicious plain pickle as a compromised sender would: wrap it with the pickle backend.
    from anypickle import _envelope as env
    from anypickle.backends._id import Backend

    header = env.build_header(Backend.PICKLE, env.SIGNED, len(evil), "k")
    tagged = header + env.sign(KEY, header, evil) + evil
    with pytest.raises(anypickle.UnsafePickleError):
        anypickle.loads(tagged, key=KEY, safe=True)
    assert not (tmp_path / "stack_global_exec").exists()
