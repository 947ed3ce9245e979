"""The arrays, scalars and dtypes numpy really writes load under safe=True, type-exact and equal to
plain pickle.loads, at every protocol: the numpy guard accepts exactly numpy's own shapes (issue 12)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import anypickle

STRUCTURED = np.dtype([("a", "<i4"), ("b", "U2"), ("c", "f8", (2,))])
TITLED = np.dtype({"names": ["a", "b"], "formats": ["u1", "<u8"], "offsets": [0, 8], "titles": ["A", None]})
OBJECTS = {
    "bool": np.array([True, False]),
    "int8": np.arange(-3, 3, dtype=np.int8),
    "uint64": np.arange(5, dtype=np.uint64),
    "big-endian": np.array([[1, 2]], dtype=">u2"),
    "float16": np.linspace(0, 1, 5, dtype=np.float16),
    "longdouble": np.array([1.5], dtype=np.longdouble),
    "complex": np.array([1 + 2j], dtype=np.complex64),
    "clongdouble": np.array([1j], dtype=np.clongdouble),
    "bytes": np.array([b"ab", b"c"]),
    "unicode": np.array(["ab", "c"]),
    "void": np.array([b"abc"], dtype="V3"),
    "datetime": np.arange(3).astype("M8[ns]"),
    "datetime-days": np.array(["2020-01-01"], dtype="M8[D]"),
    "timedelta": np.array([5], dtype="m8[s]"),
    "object": np.array([1, None, "x", (2,)], dtype=object),
    "structured": np.zeros(2, dtype=STRUCTURED),
    "structured-object": np.array([(1, "x")], dtype=[("a", "i4"), ("b", "O")]),
    "aligned": np.zeros(2, dtype=np.dtype([("x", "i1"), ("y", "f8")], align=True)),
    "titles": np.zeros(3, dtype=TITLED),
    "subarray": np.zeros(2, dtype=np.dtype(("<f4", (2, 3)))),
    "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "non-contiguous": np.arange(4).reshape(2, 2)[:, ::-1],
    "0-d": np.array(5),
    "empty": np.zeros((2, 0)),
    "3-d": np.arange(24, dtype=np.int32).reshape(2, 3, 4),
    "scalar-float64": np.float64(1.5),
    "scalar-int8": np.int8(-3),
    "scalar-complex": np.complex64(1j),
    "scalar-str": np.str_("x"),
    "scalar-bool": np.bool_(True),
    "scalar-datetime": np.datetime64("2020-01-01"),
    "scalar-timedelta": np.timedelta64(5, "s"),
    "scalar-void": np.void(b"abc"),
    "dtype-f8": np.dtype("f8"),
    "dtype-structured": STRUCTURED,
    "dtype-datetime": np.dtype("M8[ns]"),
    "dtype-object": np.dtype("O"),
}


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape or a.flags.f_contiguous != b.flags.f_contiguous:
            return False
        if a.dtype.hasobject:
            return [repr(x) for x in a.ravel()] == [repr(x) for x in b.ravel()]
        return a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    return a == b


@pytest.mark.parametrize("proto", range(6))
@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_numpy_written_pickles_load_type_exact(name, proto):
    data = pickle.dumps(OBJECTS[name], proto)
    assert _same(anypickle.loads(data, safe=True), pickle.loads(data))


def test_numpy_1x_names_load():
    """numpy 1.x wrote numpy.core.multiarray / numpy.core.numeric: the same streams with those names
    load (protocols 0-3 name globals as text lines, so the rewrite keeps the stream well-formed)."""
    tested = 0
    for obj in (np.arange(6).reshape(2, 3), np.array([1, None], dtype=object), np.float64(2.5), np.zeros(2, STRUCTURED)):
        for proto in range(4):
            data = pickle.dumps(obj, proto).replace(b"numpy._core", b"numpy.core")
            assert b"numpy.core" in data
            assert _same(anypickle.loads(data, safe=True), pickle.loads(data))
            tested += 1
    assert tested == 16
