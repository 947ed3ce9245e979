"""Fuzzing: random and mutated streams and envelopes. scan never raises; safe loading and keyed loading
raise only anypickle errors: no crash, no hang, no other exception type."""

from __future__ import annotations

import collections
import datetime
import decimal
import pickle
import uuid

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anypickle
from anypickle.safe import safe_loads
from anypickle.scan import scan

SAMPLES = [
    {"a": [1, 2.5, "x", b"y", None, True], "t": (1, (2,)), "s": {1, 2}, "f": frozenset({3})},
    [datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc), datetime.timedelta(3), decimal.Decimal("1.5")],
    [uuid.UUID(int=7), collections.OrderedDict(a=1), collections.deque([1], 3), collections.Counter("ab")],
    [collections.defaultdict(list, {"k": [1]}), range(5), slice(1, 2), 1 + 2j, bytearray(b"ab")],
    np.arange(6, dtype=np.int16).reshape(2, 3),
    np.zeros(2, dtype=[("a", "i4"), ("b", "U2")]),
]
STREAMS = [pickle.dumps(obj, proto) for obj in SAMPLES for proto in range(6)]
ENVELOPES = [anypickle.dumps(obj, backend="pickle") for obj in SAMPLES[:4]]
KEY = b"k" * 32
SIGNED = [anypickle.dumps(obj, backend="pickle", key=KEY, key_id="a") for obj in SAMPLES[:3]]

FUZZ = settings(max_examples=120, deadline=1000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@st.composite
def mutated(draw, corpus):
    """A valid stream with a few byte flips, insertions, deletions or a truncation."""
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[i:i + draw(st.integers(1, 8))]
        else:
            del data[i:]
    return bytes(data)


def assert_only_anypickle_errors(load, data):
    try:
        load(data)
    except anypickle.AnyPickleError:
        pass


ANY_STREAM = st.one_of(st.binary(max_size=300), mutated(STREAMS))


@FUZZ
@given(ANY_STREAM)
def test_scan_never_raises(data):
    """scan returns a report for any bytes; a stream it calls safe also loads without surprises."""
    report = scan(data)
    assert isinstance(report.safe, bool)
    for finding in report.findings:
        assert finding.severity in ("info", "warning", "unsafe")


@FUZZ
@given(ANY_STREAM)
def test_safe_loads_raisesassert_only_anypickle_errors(data):
    """safe_loads on garbage or mutated streams raises AnyPickleError or returns data."""
    assert_only_anypickle_errors(safe_loads, data)


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(ENVELOPES + STREAMS)))
def test_loads_safe_raisesassert_only_anypickle_errors(data):
    """loads(safe=True) on garbage, mutated streams and mutated envelopes raises only AnyPickleError."""
    assert_only_anypickle_errors(lambda d: anypickle.loads(d, safe=True), data)


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated(SIGNED)))
def test_loads_with_key_raises_only_signature_errors_on_tampering(data):
    """loads(key=...) on anything but an intact signed envelope raises SignatureError (an AnyPickleError)."""
    try:
        anypickle.loads(data, key=KEY)
    except anypickle.SignatureError:
        pass
    else:
        assert data in SIGNED


def test_scan_verdict_gates_safe_loads_on_mutants():
    """Every mutant the scanner calls unsafe is refused by safe_loads with UnsafePickleError."""
    import random

    rng = random.Random(4)
    refused = 0
    for _ in range(300):
        data = bytearray(rng.choice(STREAMS))
        data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
        if not scan(data).safe:
            refused += 1
            try:
                safe_loads(data)
            except anypickle.UnsafePickleError:
                continue
            raise AssertionError(f"scan says unsafe but safe_loads loaded {data!r}")
    assert refused > 50


def test_huge_memo_index_is_refused_fast():
    """LONG_BINPUT 600000000 would make the C unpickler zero a 9 GB memo (gh-115952): refused first."""
    import time

    data = b"\x80\x04N" + b"r" + (600_000_000).to_bytes(4, "little") + b"."
    start = time.perf_counter()
    try:
        safe_loads(data)
    except anypickle.UnsafePickleError as exc:
        assert exc.position == 3
    else:
        raise AssertionError("loaded")
    assert time.perf_counter() - start < 0.5
