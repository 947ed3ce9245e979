"""Version skew between sender and receiver: envelopes record the cloudpickle/dill version that wrote them.

A receiver with another version loads as usual; when loading or the first use fails, the error names
both versions. One test runs a real receiver with another cloudpickle release, installed with pip into
the receiver cache that ``anypickle matrix`` uses.
"""

from __future__ import annotations

import pickle
import sys
import textwrap

import cloudpickle
import dill
import pytest

import anypickle
from anypickle import _envelope as env
from anypickle.lab import _interpreters
from anypickle.backends import get as get_backend
from anypickle.lab.runner import run_script


def _with_version(data: bytes, version: str, payload: bytes | None = None) -> bytes:
    """The envelope ``data`` as if written by ``version`` of its library (optionally with another payload)."""
    header = env.parse(memoryview(data))
    body = data[header.payload_offset:] if payload is None else payload
    return env.build_header(header.backend, header.flags & (env.BYTECODE | env.PORTABLE | env.CONTEXT),
                            len(body), None, version, header.source or b"") + body


def _script_function():
    def task(x):
        return x + 1

    task.__module__ = "__main__"
    return task


def test_envelope_records_the_writing_library_version():
    """cloudpickle and dill payloads carry their library's version; pickle and marshal ones carry none."""
    by_cloudpickle = env.parse(memoryview(anypickle.dumps([_script_function()])))
    assert (by_cloudpickle.backend, by_cloudpickle.library_version) == (anypickle.Backend.CLOUDPICKLE, cloudpickle.__version__)
    by_dill = env.parse(memoryview(anypickle.dumps({"a": 1}, backend="dill")))
    assert by_dill.library_version == dill.__version__
    assert env.parse(memoryview(anypickle.dumps(_script_function()))).library_version is None  # marshal
    assert env.parse(memoryview(anypickle.dumps({"a": 1}))).library_version is None  # pickle


def test_same_version_or_another_loads_normally():
    """Skew alone is no error: the payload loads and works."""
    data = _with_version(anypickle.dumps([_script_function()]), "3.0.99")
    assert anypickle.loads(data)[0](1) == 2


def test_a_load_that_fails_under_skew_names_both_versions():
    """The failure real skew causes (a private helper the receiver's cloudpickle lacks) names both versions."""
    data = anypickle.dumps([_script_function()])
    header = env.parse(memoryview(data))
    payload = data[header.payload_offset:]
    assert b"_make_function" in payload
    broken = payload.replace(b"_make_function", b"_make_functiox")  # same length: the stream stays valid
    with pytest.raises(anypickle.DecodeError) as info:
        anypickle.loads(_with_version(data, "3.0.99", broken))
    message = str(info.value)
    assert f"written by cloudpickle 3.0.99, loaded with cloudpickle {cloudpickle.__version__}" in message
    # without skew, the same failure says nothing about versions
    with pytest.raises(anypickle.DecodeError) as info:
        anypickle.loads(_with_version(data, cloudpickle.__version__, broken))
    assert "version skew" not in str(info.value)


def test_a_first_use_that_fails_under_skew_names_both_versions(monkeypatch):
    """A wrapped task that raises on a receiver with another cloudpickle version gets a note naming both."""
    if sys.version_info < (3, 11):
        pytest.skip("exception notes (BaseException.add_note) need Python 3.11")

    class Limit:
        def check(self, x):
            if x > 3:
                raise ValueError(x)
            return x

    Limit.__module__ = Limit.check.__module__ = "__main__"
    wrapped = pickle.loads(pickle.dumps(anypickle.wrap(Limit().check)))
    assert env.parse(memoryview(wrapped._bytes())).backend is anypickle.Backend.CLOUDPICKLE
    monkeypatch.setattr(get_backend(anypickle.Backend.CLOUDPICKLE), "library_version", "3.0.99")  # the receiver's
    assert wrapped(2) == 2
    with pytest.raises(ValueError) as info:
        wrapped(5)
    assert any(f"written by cloudpickle {cloudpickle.__version__}, loaded with cloudpickle 3.0.99" in n
               for n in info.value.__notes__)


OTHER_CLOUDPICKLE = "3.1.2" if cloudpickle.__version__ != "3.1.2" else "3.1.3"

RECEIVER = textwrap.dedent("""
    import json, sys, cloudpickle, anypickle
    data = open(sys.argv[1], "rb").read()
    out = {"cloudpickle": cloudpickle.__version__}
    task = anypickle.loads(data)
    out["value"] = task(2)
    try:
        task(-1)
    except Exception as exc:
        out["notes"] = getattr(exc, "__notes__", [])
        out["type"] = type(exc).__name__
    print(json.dumps(out))
""")

SENDER = textwrap.dedent("""
    import sys, anypickle

    class Scale:  # a __main__ class: the task goes by value through cloudpickle
        def __init__(self, k):
            self.k = k

        def apply(self, x):
            if x < 0:
                raise ValueError("negative")
            return x * self.k

    data = anypickle.dumps(anypickle.wrap(Scale(10).apply))
    assert anypickle.loads(data)._bytes()[5] == anypickle.Backend.CLOUDPICKLE
    open(sys.argv[1], "wb").write(data)
""")


def test_a_real_receiver_with_another_cloudpickle_release(tmp_path):
    """Sender with this cloudpickle, receiver with another release: loads, runs, and a failure names both."""
    try:
        # this interpreter with the other release first on its path (anypickle and dill: this environment's)
        other = _interpreters.prepare_versions({"cloudpickle": OTHER_CLOUDPICKLE})
    except RuntimeError as exc:
        pytest.skip(str(exc))
    data = tmp_path / "task.apk"
    run_script(tmp_path / "sender", SENDER, args=[str(data)])
    out = run_script(tmp_path / "receiver", RECEIVER, args=[str(data)], receiver=other)
    assert out["cloudpickle"] == OTHER_CLOUDPICKLE
    assert out["value"] == 20
    assert out["type"] == "ValueError"
    if sys.version_info >= (3, 11):
        skew = f"written by cloudpickle {cloudpickle.__version__}, loaded with cloudpickle {OTHER_CLOUDPICKLE}"
        assert any(skew in note for note in out["notes"]), out
