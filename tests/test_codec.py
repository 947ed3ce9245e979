"""anypickle.Encoder / anypickle.Decoder: reusable dumps/loads with options fixed once; the
module-level functions are the default ones (the C fast path is the default Decoder's decode)."""

from __future__ import annotations

import pickle
import threading

import pytest

import anypickle
from anypickle import _api


def test_default_encoder_and_decoder_are_the_module_functions():
    assert anypickle.loads is _api._DEFAULT_DECODER.decode
    assert anypickle.Decoder().decode is anypickle.loads  # one fast path, shared
    data = {"a": [1, 2.5, "x"], "b": (None, True)}
    encoder = anypickle.Encoder()
    assert encoder.encode(data) == anypickle.dumps(data)
    assert anypickle.loads(encoder.encode(data)) == data
    f = anypickle.loads(encoder.encode(lambda x: x * 3))  # the fallbacks, as dumps(obj)
    assert f(14) == 42


def test_an_encoder_keeps_its_own_pool():
    encoder = anypickle.Encoder()
    for i in range(3):
        assert anypickle.loads(encoder.encode({"i": i})) == {"i": i}
    assert len(encoder._free) == 1 and encoder._free is not _api._DEFAULT_ENCODER._free


def test_options_are_fixed_once():
    key = b"k" * 32
    encoder = anypickle.Encoder(backend="cloudpickle", key=key, key_id="one")
    decoder = anypickle.Decoder(key={"one": key})
    data = encoder.encode({"x": 1})
    assert decoder.decode(data) == {"x": 1}
    assert data == anypickle.dumps({"x": 1}, backend="cloudpickle", key=key, key_id="one")
    with pytest.raises(anypickle.SignatureError):
        decoder.decode(anypickle.dumps({"x": 1}))
    assert "backend='cloudpickle'" in repr(encoder) and "key=" in repr(decoder)


def test_a_safe_decoder_refuses_code():
    decoder = anypickle.Decoder(safe=True, limits=anypickle.Limits(max_depth=5))
    assert decoder.decode(pickle.dumps([[1]])) == [[1]]
    with pytest.raises(anypickle.UnsafePickleError):
        decoder.decode(pickle.dumps(print))
    with pytest.raises(anypickle.UnsafePickleError):
        decoder.decode(pickle.dumps([[[[[[[1]]]]]]]))


def test_bad_options_fail_at_construction():
    with pytest.raises(anypickle.UsageError):
        anypickle.Encoder(backend="nope")
    with pytest.raises(anypickle.UsageError):
        anypickle.Decoder(limits=anypickle.Limits())  # limits without safe=True


def test_threads_share_an_encoder():
    encoder = anypickle.Encoder()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                assert anypickle.loads(encoder.encode((n, i))) == (n, i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_the_encoder_fast_path_is_a_dump_entry_point():
    """is_refusal reads tracebacks: an error raised right under the pooled probe's dump is the
    pickler's refusal, not anypickle's own bug (auto then tries the next backend)."""
    assert _api.Encoder._encode_plain.__code__.co_name in _api._ENTRY_POINTS

    class Refuses:
        def __getstate__(self):
            raise TypeError("cannot pickle 'Refuses' object")

    with pytest.raises(anypickle.EncodeError):
        anypickle.Encoder().encode(Refuses())
