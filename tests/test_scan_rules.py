"""The scanner's rules on hand-built streams: each states one way a stream is unsafe (or fine), and
safe_loads refuses the same streams without side effects."""

from __future__ import annotations

import copyreg
import fractions
import pickle

import numpy as np
import pytest

from anypickle import DecodeError, UnsafePickleError
from anypickle.safe import safe_loads
from anypickle import scan
from malicious import BINGET, BINPUT, BUILD, C, EMPTY_DICT, EMPTY_TUPLE, MARK, NONE, POP, PROTO2, PROTO4, REDUCE, SG, STOP, TUPLE2, U, call


def _unsafe_messages(data: bytes) -> list[str]:
    report = scan(data)
    assert not report.safe, str(report)
    return [f"{f.opcode}@{f.position}: {f.message}" for f in report.unsafe_findings]


def _refused(data: bytes) -> UnsafePickleError:
    with pytest.raises(UnsafePickleError) as info:
        safe_loads(data)
    return info.value


def test_build_on_an_allowed_class_is_refused():
    """BUILD on fractions.Fraction itself would setattr on the shared class: refused, class untouched."""
    # Fraction; BUILD (None, {"__repr__": "pwned"}) -> setattr(Fraction, "__repr__", "pwned")
    data = PROTO4 + SG("fractions", "Fraction") + NONE + EMPTY_DICT + U("__repr__") + U("pwned") + b"s" + TUPLE2 + BUILD + STOP
    assert any("BUILD on global fractions.Fraction" in m for m in _unsafe_messages(data))
    _refused(data)
    assert callable(fractions.Fraction.__repr__)


def test_build_on_shared_enum_member_is_refused():
    """uuid.SafeUUID(0) returns a process-wide enum member: BUILD on it is refused."""
    data = PROTO4 + call(SG("uuid", "SafeUUID"), b"K\x00") + EMPTY_DICT + U("x") + U("y") + b"s" + BUILD + STOP
    assert any("shared object" in m for m in _unsafe_messages(data))
    _refused(data)


def test_build_on_numpy_scalar_is_refused():
    """numpy's scalar() may return the shared np.True_: BUILD on what it returns is refused."""
    dtype = call(SG("numpy", "dtype"), U("?"), b"\x89", b"\x88")
    data = PROTO4 + call(SG("numpy._core.multiarray", "scalar"), dtype, b"C\x01\x01") + NONE + BUILD + STOP
    assert any("shared object" in m for m in _unsafe_messages(data))
    _refused(data)


def test_codecs_encode_only_latin1():
    """_codecs.encode with any codec but latin1 is a codec lookup by name: refused."""
    data = PROTO2 + call(C("_codecs", "encode"), U("x"), U("rot13")) + STOP
    assert any("latin1" in m for m in _unsafe_messages(data))
    _refused(data)


def test_numpy_dtype_without_copy_is_refused():
    """numpy.dtype("f8", False, False) is the process-wide float64 singleton; BUILD would mutate it."""
    data = PROTO4 + call(SG("numpy", "dtype"), U("f8"), b"\x89", b"\x89") + STOP
    assert any("numpy.dtype" in m for m in _unsafe_messages(data))
    _refused(data)
    assert np.dtype("f8").byteorder == "="


def test_allocation_by_count_is_refused():
    """bytes(10**12) would allocate a terabyte from a few input bytes."""
    data = PROTO2 + call(C("builtins", "bytes"), b"\x8a\x06\x00\x10\xa5\xd4\xe8\x00") + STOP
    assert _unsafe_messages(data)
    _refused(data)


def test_range_amplification_is_refused():
    """list(range(10**10)) turns a few bytes into gigabytes: a range result may not feed a call."""
    data = PROTO2 + call(C("builtins", "set"), call(C("builtins", "range"), b"J\x00\xe4\x0bT")) + STOP
    assert any("range" in m for m in _unsafe_messages(data))
    _refused(data)


@pytest.mark.parametrize("arg", [U("1e999999999"), call(SG("decimal", "Decimal"), U("1e999999999"))])
def test_fraction_exponent_amplification_is_refused(arg):
    """Fraction("1e999999999") or Fraction(Decimal(...)) would compute 10**999999999: refused."""
    data = PROTO4 + call(SG("fractions", "Fraction"), arg) + STOP
    assert any("Fraction" in m for m in _unsafe_messages(data))
    _refused(data)


def test_value_only_global_cannot_be_called():
    """builtins.int may be a value (defaultdict(int)) but int(...) is refused."""
    data = PROTO2 + call(C("builtins", "int"), U("5")) + STOP
    assert any("not be called" in m for m in _unsafe_messages(data))
    assert safe_loads(PROTO2 + C("builtins", "int") + STOP) is int


def test_computed_callable_is_refused():
    """REDUCE whose callable is itself the result of a call is refused."""
    data = PROTO2 + call(call(C("collections", "OrderedDict")), EMPTY_TUPLE) + STOP
    assert any("not a named global" in m for m in _unsafe_messages(data))


def test_persistent_ids_are_refused():
    """PERSID and BINPERSID would hand control to persistent_load."""
    assert any("persistent" in m for m in _unsafe_messages(b"Pfoo\n."))
    assert any("persistent" in m for m in _unsafe_messages(PROTO2 + U("id") + b"Q" + STOP))
    _refused(b"Pfoo\n.")


def test_ext_opcodes_are_refused_even_when_registered_with_allowed_target():
    """EXT codes are refused even when the registry maps them to an allowed global."""
    copyreg.add_extension("collections", "OrderedDict", 0xF1)
    try:
        data = PROTO2 + b"\x82\xf1" + EMPTY_TUPLE + REDUCE + STOP
        assert pickle.loads(data) == {}
        assert any("extension" in m for m in _unsafe_messages(data))
        _refused(data)
    finally:
        copyreg.remove_extension("collections", "OrderedDict", 0xF1)


@pytest.mark.parametrize("data,expect", [
    (pickle.dumps([1, 2], 2)[:-3], "truncated"),
    (b"\x80\x09N.", "protocol"),
    (b"\xff", "not a pickle opcode"),
    (PROTO2 + b"a" + STOP, "underflow"),
    (PROTO2 + BINGET(7) + STOP, "memo index 7"),
    (PROTO2 + U("x") + b"t" + STOP, "MARK"),
    (PROTO2 + STOP, "underflow"),
    (b"S'abc\n.", "quoted"),
    (b"\x8c\x05ab", "truncated"),
    (b"", "before STOP"),
    (PROTO4 + b"\x95\xff\xff\x00\x00\x00\x00\x00\x00N.", "FRAME"),
])
def test_malformed_streams_are_unsafe_findings_not_exceptions(data, expect):
    """Malformed input is a finding with a position, never an exception out of scan."""
    messages = _unsafe_messages(data)
    assert any(expect in m for m in messages), messages
    with pytest.raises((UnsafePickleError, DecodeError)):
        safe_loads(data)


def test_leftover_stack_at_stop_is_a_warning():
    """pickle ignores extra values under the result; the scanner warns, safe_loads loads like pickle."""
    data = PROTO2 + NONE + MARK + b"K\x05" + STOP
    report = scan(data)
    assert report.safe
    assert [f.severity for f in report.findings] == ["warning"]
    assert safe_loads(data) == pickle.loads(data) == 5


def test_bytes_after_stop_are_unsafe():
    """Trailing bytes after the first STOP are reported with their position and refused."""
    data = pickle.dumps({"a": 1}, 2) + b"cos\nsystem\n"
    messages = _unsafe_messages(data)
    assert any("after the first STOP" in m for m in messages)
    err = _refused(data)
    assert err.position == len(pickle.dumps({"a": 1}, 2)) - 1


def test_memo_overwrite_is_unsafe_even_when_harmless():
    """Picklers never overwrite a memo index; a stream that does is refused (fail closed)."""
    data = PROTO2 + U("a") + BINPUT(0) + POP + U("b") + BINPUT(0) + STOP
    assert any("overwritten" in m for m in _unsafe_messages(data))


def test_python2_names_are_reported_raw_and_mapped():
    """__builtin__.set is listed as written and as _compat_pickle maps it."""
    report = scan(pickle.dumps({1, 2}, 0))
    assert report.safe
    assert ("__builtin__.set", "builtins.set") in report.globals


def test_python2_mapping_applies_only_below_protocol_3():
    """At protocol 4, __builtin__.set is not mapped (pickle would not either) and is refused."""
    data = PROTO4 + SG("__builtin__", "set") + STOP
    assert any("__builtin__.set" in m for m in _unsafe_messages(data))
    _refused(data)


def test_nested_qualname_allow_entry():
    """'module:Outer.Inner' allows a dotted qualname; 'module.Outer' does not allow its attributes."""
    data = PROTO4 + SG("collections", "OrderedDict.fromkeys") + STOP
    assert not scan(data, allow=["collections.OrderedDict"]).safe
    assert scan(data, allow=["collections:OrderedDict.fromkeys"]).safe
    assert safe_loads(data, allow=["collections:OrderedDict.fromkeys"]) == collections_fromkeys()


def collections_fromkeys():
    import collections

    return collections.OrderedDict.fromkeys


def test_scanner_follows_exactly_the_opcodes_the_unpickler_accepts():
    """Every pickletools opcode is walked; every other byte is refused by both scanner and pickle."""
    import pickletools

    known = {op.code.encode("latin-1")[0] for op in pickletools.opcodes}
    for byte in range(256):
        messages = [f.message for f in scan(bytes([byte])).findings]
        if byte in known:
            assert not any("not a pickle opcode" in m for m in messages), (byte, messages)
        else:
            assert any("not a pickle opcode" in m for m in messages), (byte, messages)
            with pytest.raises(pickle.UnpicklingError):
                pickle.loads(bytes([byte]) + b".")


def test_the_scanner_has_one_handler_per_pickletools_opcode():
    """The walk's table comes from pickletools: each opcode byte it defines has its own handler,
    and every other byte is refused as "not a pickle opcode"."""
    import pickletools

    from anypickle.safe._scanner import _machine, _opcodes

    known = {ord(op.code): op.name for op in pickletools.opcodes}
    assert _opcodes.TABLE == known
    for code in range(256):
        handler = _machine._HANDLERS[code]
        assert (handler is _machine._not_an_opcode) == (code not in known), hex(code)
    trace = _machine.simulate(b"\x99.")
    assert trace.broken is not None and "0x99 is not a pickle opcode" in trace.broken.message
