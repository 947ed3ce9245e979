"""Ordinary data of every kind, at every protocol 0-5, loads type-identically under safe=True and scans
clean: the allowlist has no false positives on what pickle itself writes."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import pickle
import pickletools
import struct
import uuid

import numpy as np
import pytest

import anypickle
from anypickle.safe import safe_loads
from anypickle import scan


def _recursive_list():
    a = [1, 2]
    a.append(a)
    return a


def _recursive_dict():
    d = {"k": 1}
    d["self"] = d
    return d


def _shared():
    inner = [1, 2]
    return {"a": inner, "b": inner, "t": (inner, inner)}


TZ = datetime.timezone(datetime.timedelta(hours=-3, minutes=-30), "NST")

KINDS = {
    "none_bool": [None, True, False],
    "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -(2**31), 2**64, -(2**100), 10**80],
    "floats": [0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e308],
    "str": ["", "ascii", "ünï©ødé", "\U0001F600", "x" * 1000, "line\nbreak 'quote' \"dq\" \\"],
    "bytes": [b"", b"\x00\xff", b"abc" * 100, bytes(range(256))],
    "bytearray": [bytearray(), bytearray(b"\x00\xff hello")],
    "complex": [1 + 2j, complex(0, -1.5)],
    "range_slice": [range(10), range(1, 100, 7), slice(1, 10, 2), slice(None)],
    "containers": [(), (1,), (1, 2), (1, 2, 3), tuple(range(10)), [], [[]], {}, {"a": {"b": [1, (2,)]}}],
    "set_frozenset": [set(), {1, "a"}, frozenset(), frozenset({(1, 2)})],
    "datetime": [datetime.datetime(2024, 2, 29, 23, 59, 59, 999999), datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
                 datetime.datetime(2020, 1, 1, 12, tzinfo=TZ), datetime.datetime(2021, 11, 7, 1, 30, fold=1)],
    "date_time": [datetime.date(1, 1, 1), datetime.time(1, 2, 3, 4), datetime.time(23, tzinfo=TZ)],
    "timedelta_timezone": [datetime.timedelta(days=-3, seconds=5, microseconds=7), datetime.timezone.utc, TZ],
    "decimal": [decimal.Decimal("1.10"), decimal.Decimal("-0"), decimal.Decimal("NaN"), decimal.Decimal("-Infinity"), decimal.Decimal("1E+999")],
    "fraction": [fractions.Fraction(1, 3), fractions.Fraction(-7, 2)],
    "uuid": [uuid.UUID(int=0), uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.UUID(int=5, is_safe=uuid.SafeUUID.safe)],
    "ordereddict": [collections.OrderedDict(), collections.OrderedDict([("b", 1), ("a", [2])])],
    "deque": [collections.deque(), collections.deque([1, 2, 3], maxlen=5)],
    "counter": [collections.Counter(), collections.Counter("abracadabra")],
    "defaultdict": [collections.defaultdict(list, {"a": [1]}), collections.defaultdict(int), collections.defaultdict(None, {1: 2}),
                    collections.defaultdict(collections.OrderedDict)],
    "constants": [Ellipsis, NotImplemented, int, float, list],
    "shared_recursive": [_shared(), _recursive_list(), _recursive_dict()],
    "numpy_arrays": [np.arange(12).reshape(3, 4), np.asfortranarray(np.ones((2, 3))), np.zeros(0), np.array(3.5),
                     np.array([1 + 2j]), np.array([True, False]), np.array(["ab", "cdé"]), np.array([b"x", b"yz"]),
                     np.array(["2020-01-01", "NaT"], dtype="M8[D]"), np.array([1, 2], dtype=">i2"),
                     np.arange(6)[::2], np.array([1, "x", None], dtype=object), np.arange(200000, dtype=np.float64)],
    "numpy_structured": [np.zeros(3, dtype=[("a", "i4"), ("b", "f8", (2,)), ("c", "U3")]),
                         np.zeros(2, dtype=np.dtype([("x", "<i2"), ("y", [("z", "u1")])], align=True))],
    "numpy_scalars_dtypes": [np.float64(1.5), np.int8(-3), np.bool_(True), np.str_("s"), np.dtype("f8"), np.dtype([("a", "i4")]),
                             np.zeros(1, dtype=[("a", "i4")])[0], np.datetime64("2020-01-01")],
}


def _same(a, b, seen=None) -> bool:
    """Type-identical and equal, recursively, tolerating cycles and numpy's elementwise ==."""
    seen = set() if seen is None else seen
    if type(a) is not type(b):
        return False
    if id(a) in seen:
        return True
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes() and a.flags.f_contiguous == b.flags.f_contiguous
    if isinstance(a, (list, tuple, collections.deque)):
        seen.add(id(a))
        return len(a) == len(b) and all(_same(x, y, seen) for x, y in zip(a, b)) and getattr(a, "maxlen", None) == getattr(b, "maxlen", None)
    if isinstance(a, dict):
        seen.add(id(a))
        if isinstance(a, collections.defaultdict) and a.default_factory is not b.default_factory:
            return False
        return list(a) == list(b) and all(_same(a[k], b[k], seen) for k in a)
    if isinstance(a, float) and a != a:
        return b != b
    if isinstance(a, decimal.Decimal) and a.is_nan():
        return b.is_nan()
    if isinstance(a, np.generic):
        return a.tobytes() == b.tobytes()
    return a == b or a is b


CASES = [(kind, i, proto) for kind, values in KINDS.items() for i in range(len(values)) for proto in range(6)]


@pytest.mark.parametrize("kind,index,proto", CASES, ids=[f"{k}{i}-p{p}" for k, i, p in CASES])
def test_ordinary_data_loads_type_identically_and_scans_clean(kind, index, proto):
    """safe_loads equals pickle.loads, type for type, and the scanner reports no unsafe finding."""
    obj = KINDS[kind][index]
    data = pickle.dumps(obj, proto)
    expected = pickle.loads(data)
    report = scan(data)
    assert report.safe, str(report)
    assert _same(safe_loads(data), expected)
    assert _same(anypickle.loads(data, safe=True), expected)


def test_shared_references_stay_shared():
    """Objects referenced twice come back as one object, as with pickle.loads."""
    for proto in range(6):
        out = safe_loads(pickle.dumps(_shared(), proto))
        assert out["a"] is out["b"] is out["t"][0]
        rec = safe_loads(pickle.dumps(_recursive_list(), proto))
        assert rec[2] is rec


def _numpy1_style(data: bytes) -> bytes:
    """Rewrite numpy 2's numpy._core names to numpy 1's numpy.core names, dropping FRAMEs."""
    out = bytearray()
    ops = list(pickletools.genops(data))
    for (op, arg, pos), nxt in zip(ops, ops[1:] + [(None, None, len(data))]):
        raw = data[pos:nxt[2]]
        if op.name == "FRAME":
            continue
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "GLOBAL") and "numpy._core" in str(arg):
            if op.name == "GLOBAL":
                raw = raw.replace(b"numpy._core", b"numpy.core")
            else:
                text = arg.replace("numpy._core", "numpy.core").encode()
                raw = (b"\x8c" + bytes([len(text)]) + text) if len(text) < 256 else b"X" + struct.pack("<I", len(text)) + text
        out += raw
    return bytes(out)


@pytest.mark.filterwarnings("ignore:numpy.core.numeric is deprecated:DeprecationWarning")
@pytest.mark.parametrize("proto", range(6))
def test_numpy1_style_pickles_load(proto):
    """Pickles naming numpy.core.multiarray (written by numpy 1.x) load and scan clean."""
    objs = [np.arange(5), np.zeros(2, dtype=[("a", "i4")]), np.float64(2.5), np.arange(100000.0)]
    for obj in objs:
        data = _numpy1_style(pickle.dumps(obj, proto))
        assert b"numpy._core" not in data
        assert scan(data).safe
        assert _same(safe_loads(data), pickle.loads(data))


def test_envelope_pickle_backend_loads_safely():
    """An anypickle envelope from the pickle backend loads with safe=True."""
    obj = {"when": datetime.datetime(2020, 1, 1), "n": np.arange(3), "u": uuid.UUID(int=9)}
    out = anypickle.loads(anypickle.dumps(obj, backend="pickle"), safe=True)
    assert _same(out, obj)


def test_allow_adds_exact_global():
    """allow=["module.qualname"] lets exactly that global through; nothing else from its module."""
    # An ipaddress, not an exception: tblib (pulled in by distributed) re-registers how every
    # exception pickles, process-wide, once any test has imported it.
    import ipaddress

    data = pickle.dumps(ipaddress.IPv4Address("10.1.2.3"), 4)
    with pytest.raises(anypickle.UnsafePickleError) as info:
        safe_loads(data)
    assert info.value.global_name == "ipaddress.IPv4Address"
    out = safe_loads(data, allow=["ipaddress.IPv4Address"])
    assert type(out) is ipaddress.IPv4Address and str(out) == "10.1.2.3"
    assert scan(data, allow=["ipaddress.IPv4Address"]).safe
    with pytest.raises(anypickle.UnsafePickleError):
        safe_loads(data, allow=["ipaddress.IPv6Address"])


@pytest.mark.parametrize("bad", ["nodot", ".x", "mod.", "mod:", 3])
def test_bad_allow_entries_are_usage_errors(bad):
    """Malformed allow entries raise UsageError at once."""
    with pytest.raises(anypickle.UsageError):
        safe_loads(pickle.dumps(1), allow=[bad])


@pytest.mark.parametrize("c_first", [True, False], ids=["c-first", "static-first"])
@pytest.mark.parametrize("proto", range(6))
def test_both_paths_load_the_same(monkeypatch, proto, c_first):
    """Every kind loads type-identically through the C-first path (the default when the
    anypickle.safe._opwalk extension is built) and through the static-first path (without it)."""
    import anypickle.safe._loads

    if c_first and anypickle.safe._loads._memo_check is None:
        pytest.skip("the optional C extension anypickle.safe._opwalk was not built")
    monkeypatch.setattr(anypickle.safe._loads, "C_FIRST", c_first)
    for values in KINDS.values():
        for obj in values:
            data = pickle.dumps(obj, proto)
            assert _same(safe_loads(data), pickle.loads(data))


def test_load_file_with_safe_true(tmp_path):
    """load(path_or_file, safe=True) goes through the same safe loader as loads."""
    from malicious import build_corpus

    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"d": datetime.date(2020, 1, 1)}, 2))
    assert anypickle.load(good, safe=True) == {"d": datetime.date(2020, 1, 1)}
    with open(good, "rb") as file:
        assert anypickle.load(file, safe=True) == {"d": datetime.date(2020, 1, 1)}
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(build_corpus(tmp_path)["os_system"].data)
    with pytest.raises(anypickle.UnsafePickleError):
        anypickle.load(bad, safe=True)
    assert not (tmp_path / "os_system").exists()
