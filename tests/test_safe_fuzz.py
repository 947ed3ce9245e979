"""Fuzzing: random and mutated streams and envelopes. scan never raises; safe loading and keyed loading
raise only anypickle errors: no crash, no hang, no other exception type."""

from __future__ import annotations

import collections
import datetime
import os
import decimal
import pickle
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anypickle
from anypickle.safe import safe_loads
from anypickle import scan

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


# -- generation from the allowlist's own globals (issue 12) ---------------------------------------
# Byte mutation rarely reaches numpy's reconstructors or the copyreg helpers with arguments that
# type-check; generation does: every callable global of the default allowlist, called through
# REDUCE, NEWOBJ, NEWOBJ_EX and the copyreg helpers with random arguments (including the shapes
# numpy writes, slightly off) and followed by random BUILD states. Each batch loads in a child with
# RLIMIT_AS and a timeout (tests/_safe_child.py), so a crash is caught and named.

import random as _random  # noqa: E402

from adversarial import Asm  # noqa: E402

from anypickle.safe._allowlist import _DEFAULT, CALL  # noqa: E402
from _safe_child import run_streams  # noqa: E402

_CALLABLES = sorted(pair for pair, role in _DEFAULT.items() if role & CALL)
_GLOBALS = sorted(_DEFAULT)
_TEXT = ["", "x", "idna", "bz2_codec", "latin1", "utf-8", "U", "U3", "O", "O8", "f8", "<f8", "V8", "V16", "i4",
         "M8", "S5", "b1", "c16", "1/3", "1e999999999", "nan", "C", "F", "2020-01-01", "0" * 40]
_BYTES = [b"", b"b", b"x", b"AAAAAAAA", b"\x00" * 8, b"\x07\xe4\x01\x01\x00\x00\x00\x00\x00\x00", b"\xff" * 16]
_INTS = [0, 1, -1, 2, 3, 4, 8, 16, 63, 255, 2**31 - 1, 2**40, -(2**63), 2**64 + 5, 10**30, (1 << 61) - 1]


class _Gen:
    def __init__(self, rng: _random.Random) -> None:
        self.rng = rng
        self.a = Asm()
        self.memo: list[int] = []

    def value(self, depth: int) -> None:
        r, a = self.rng.random(), self.a
        if self.memo and r < 0.08:
            a.get(self.rng.choice(self.memo))
        elif depth <= 0 or r < 0.35:
            self.scalar()
        elif r < 0.45:
            a.mark()
            for _ in range(self.rng.randrange(4)):
                self.value(depth - 1)
            a.tuple()
        elif r < 0.52:
            a.mark()
            for _ in range(self.rng.randrange(4)):
                self.value(depth - 1)
            a.list()
        elif r < 0.57:
            a.mark()
            for _ in range(self.rng.randrange(3)):
                self.scalar()
                self.value(depth - 1)
            a.dict()
        elif r < 0.62:
            a.g(*self.rng.choice(_GLOBALS))
        elif r < 0.72:
            self.numpy(depth - 1)
        else:
            self.call(depth - 1)
        if self.rng.random() < 0.15:
            self.memo.append(a.put())

    def scalar(self) -> None:
        r, a = self.rng.random(), self.a
        if r < 0.35:
            a.i(self.rng.choice(_INTS))
        elif r < 0.6:
            a.s(self.rng.choice(_TEXT))
        elif r < 0.8:
            a.b(self.rng.choice(_BYTES))
        elif r < 0.9:
            a.none()
        else:
            a.true() if self.rng.random() < 0.5 else a.false()

    def args(self, depth: int, n: int | None = None) -> None:
        self.a.mark()
        for _ in range(self.rng.randrange(4) if n is None else n):
            self.value(depth)
        self.a.tuple()

    def call(self, depth: int) -> None:
        a, rng = self.a, self.rng
        cls = rng.choice(_CALLABLES)
        form = rng.choice(["reduce", "reduce", "newobj", "newobj_ex", "__newobj__", "__newobj_ex__", "_reconstructor"])
        if form == "reduce":
            a.g(*cls)
            self.args(depth)
            a.reduce()
        elif form == "newobj":
            a.g(*cls)
            self.args(depth)
            a.op(b"\x81")
        elif form == "newobj_ex":
            a.g(*cls)
            self.args(depth)
            self.kwargs(depth)
            a.op(b"\x92")
        elif form == "__newobj__":
            a.g("copyreg", "__newobj__").mark().g(*cls)
            for _ in range(rng.randrange(3)):
                self.value(depth)
            a.tuple().reduce()
        elif form == "__newobj_ex__":
            a.g("copyreg", "__newobj_ex__").mark().g(*cls)
            self.args(depth)
            self.kwargs(depth)
            a.tuple().reduce()
        else:
            a.g("copyreg", "_reconstructor").mark().g(*cls).g(*rng.choice(_GLOBALS))
            self.value(depth)
            a.tuple().reduce()
        if rng.random() < 0.3:
            self.value(depth)
            a.build()

    def kwargs(self, depth: int) -> None:
        self.a.mark()
        if self.rng.random() < 0.6:
            self.a.s(self.rng.choice(["encoding", "errors", "x", "copy", "align"]))
            self.value(depth)
        self.a.dict()

    def dtype(self, depth: int) -> None:
        a, rng = self.a, self.rng
        a.g("numpy", "dtype").mark().s(rng.choice(_TEXT)).false().true().tuple().reduce()
        if rng.random() < 0.85:
            a.mark().i(rng.choice([3, 3, 4])).s(rng.choice(["<", ">", "|", "="]))
            if rng.random() < 0.8:
                a.none()
            else:
                a.mark()
                self.dtype(depth - 1)
                a.mark().i(rng.choice([1, 2, 3])).tuple().tuple()
            if rng.random() < 0.7:
                a.none().none()
            else:
                a.mark().s("a").s("b").tuple().mark()
                for name in ("a", "b"):
                    a.s(name).mark()
                    self.dtype(depth - 1) if depth > 0 else a.none()
                    a.i(rng.choice([0, 0, 4, 8])).tuple()
                a.dict()
            for choice in ([-1, 0, 1, 4, 8, 12, 16, 4000], [-1, 1, 4, 8], [0, 8, 16, 27, 63, 1, 255]):
                a.i(rng.choice(choice))
            if rng.random() < 0.2:
                self.value(0)
            a.tuple().build()

    def numpy(self, depth: int) -> None:
        a, rng = self.a, self.rng
        core = rng.choice(["numpy._core.multiarray", "numpy.core.multiarray"])
        r = rng.random()
        if r < 0.5:
            a.g(core, "_reconstruct").mark().g("numpy", "ndarray").mark().i(rng.choice([0, 0, 0, 1, 5])).tuple()
            a.b(rng.choice([b"b", b"b", b"x"])).tuple().reduce()
            if rng.random() < 0.9:
                a.mark().i(1).mark()
                for _ in range(rng.randrange(3)):
                    a.i(rng.choice([0, 1, 2, 3, 8, 1 << 20]))
                a.tuple()
                self.dtype(depth)
                a.true() if rng.random() < 0.3 else a.false()
                if rng.random() < 0.5:
                    a.b(bytes(rng.choice([0, 1, 2, 4, 8, 16, 24, 48])))
                else:
                    a.mark()
                    for _ in range(rng.randrange(4)):
                        self.value(0)
                    a.list()
                a.tuple().build()
        elif r < 0.8:
            a.g(core, "scalar").mark()
            self.dtype(depth)
            a.b(bytes(rng.choice([0, 1, 2, 4, 8, 16]))).tuple().reduce()
        else:
            a.g(core.replace("multiarray", "numeric"), "_frombuffer").mark().b(bytes(rng.choice([0, 8, 16])))
            self.dtype(depth)
            a.mark().i(rng.choice([0, 1, 2])).tuple().s(rng.choice(["C", "F", "K"])).tuple().reduce()


def generated_streams(seed: int, count: int) -> dict[str, bytes]:
    rng = _random.Random(seed)
    streams = {}
    for k in range(count):
        gen = _Gen(rng)
        gen.a.mark()
        for _ in range(rng.randrange(1, 4)):
            gen.value(3)
        streams[f"gen-{seed}-{k}"] = gen.a.list().stop()
    return streams


GENERATED_SEEDS = [int(os.environ.get("ANYPICKLE_FUZZ_SEED", "12")), 1212]


@pytest.mark.parametrize("seed", GENERATED_SEEDS)
def test_generated_from_the_allowlist(tmp_path, seed):
    """800 generated streams per seed in one child: no crash, hang, foreign exception, import or
    shared-state change; and the generator is no mere noise (a share of its streams load)."""
    streams = generated_streams(seed, 800)
    outcomes = run_streams(streams, tmp_path, timeout=180)
    bad = {n: o for n, o in outcomes.items()
           if o["outcome"] == "foreign" or o["new_modules"] or o["state_changed"]}
    assert not bad, {n: (o, streams[n].hex()) for n, o in list(bad.items())[:3]}
    counts = collections.Counter(o["outcome"] for o in outcomes.values())
    assert counts["loads"] >= 50 and counts["refused"] >= 250, counts
