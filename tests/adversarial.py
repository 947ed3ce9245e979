"""An adversarial corpus against ``loads(..., safe=True)`` under the *default* allowlist, built by the
test suite itself: streams that name no forbidden global yet corrupt memory through numpy, write to
process-wide objects, import modules, or ask for unbounded time or memory (issue 12, classes 1-4).

Each case is a hand-assembled stream (:class:`Asm`) and the outcome safe loading must give:
``"refused"`` (an UnsafePickleError, with ``limit`` naming the Limits field when set) or
``"loads"`` (a stream that is fine and must load). tests/test_safe_adversarial.py loads every case
in a child process with RLIMIT_AS and a timeout, and checks that nothing crashed, hung, imported a
module, or changed numpy's or uuid's shared objects.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass


class Asm:
    """A tiny pickle assembler (protocol 4 opcodes, no frames): each method appends one value."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x04")
        self.memo = 0

    def op(self, raw: bytes) -> "Asm":
        self.out += raw
        return self

    def g(self, module: str, name: str) -> "Asm":
        return self.op(f"c{module}\n{name}\n".encode())

    def i(self, n: int) -> "Asm":
        if -(2**31) <= n < 2**31:
            return self.op(b"J" + struct.pack("<i", n))
        enc = pickle.encode_long(n)  # type: ignore[attr-defined]
        if len(enc) < 256:
            return self.op(b"\x8a" + bytes([len(enc)]) + enc)
        return self.op(b"\x8b" + struct.pack("<i", len(enc)) + enc)

    def s(self, text: str) -> "Asm":
        raw = text.encode("utf-8", "surrogatepass")
        return self.op(b"X" + struct.pack("<I", len(raw)) + raw)

    def b(self, data: bytes) -> "Asm":
        return self.op(b"B" + struct.pack("<I", len(data)) + data)

    def none(self) -> "Asm":
        return self.op(b"N")

    def true(self) -> "Asm":
        return self.op(b"\x88")

    def false(self) -> "Asm":
        return self.op(b"\x89")

    def mark(self) -> "Asm":
        return self.op(b"(")

    def tuple(self) -> "Asm":
        return self.op(b"t")

    def list(self) -> "Asm":
        return self.op(b"l")

    def dict(self) -> "Asm":
        return self.op(b"d")

    def reduce(self) -> "Asm":
        return self.op(b"R")

    def build(self) -> "Asm":
        return self.op(b"b")

    def put(self) -> int:
        self.op(b"\x94")
        self.memo += 1
        return self.memo - 1

    def get(self, idx: int) -> "Asm":
        return self.op(b"j" + struct.pack("<I", idx))

    def stop(self) -> bytes:
        return bytes(self.out + b".")


NP = "numpy._core.multiarray"


def _dtype(a: Asm, typestr: str, state: tuple | None) -> Asm:
    """numpy.dtype(typestr, False, True), then BUILD state (written with _value) when given."""
    a.g("numpy", "dtype").mark().s(typestr).false().true().tuple().reduce()
    if state is not None:
        _value(a, state)
        a.build()
    return a


def _array(a: Asm, shape: tuple, dtype_writer, data) -> Asm:
    a.g(NP, "_reconstruct").mark().g("numpy", "ndarray").mark().i(0).tuple().b(b"b").tuple().reduce()
    a.mark().i(1)
    _value(a, shape)
    dtype_writer(a)
    a.false()
    _value(a, data)
    a.tuple().build()
    return a


def _value(a: Asm, value) -> None:
    if value is None:
        a.none()
    elif value is True:
        a.true()
    elif value is False:
        a.false()
    elif type(value) is int:
        a.i(value)
    elif type(value) is str:
        a.s(value)
    elif type(value) is bytes:
        a.b(value)
    elif type(value) is tuple:
        a.mark()
        for item in value:
            _value(a, item)
        a.tuple()
    elif type(value) is list:
        a.mark()
        for item in value:
            _value(a, item)
        a.list()
    elif type(value) is dict:
        a.mark()
        for k, v in value.items():
            _value(a, k)
            _value(a, v)
        a.dict()
    elif callable(value):
        value(a)
    else:
        raise TypeError(value)


@dataclass
class Case:
    klass: int  # the class (1-5)
    data: bytes
    expect: str = "refused"  # or "loads"
    limit: str | None = None  # the Limits field a refusal must name
    # Plain pickle.loads is shown to do harm in the child only when cheap and harmless to the test
    # process (never for crashes): None, or what plain loading does.


U_STATE = (3, "<", None, None, None, 4, 4, 8)
O_STATE = (3, "|", None, None, None, -1, -1, 63)


def build_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}

    # -- 1. memory corruption through numpy's reconstructors --------------------------------------
    a = Asm()
    _array(a, (1_000_000,), lambda a: _dtype(a, "O8", O_STATE), [1, 2])
    cases["numpy_object_array_shape_beyond_items"] = Case(1, a.stop())

    a = Asm()
    a.g(NP, "scalar").mark()
    _dtype(a, "f8", (3, "<", None, None, None, -1, -1, 63))
    a.b(b"AAAAAAAA").tuple().reduce()
    cases["numpy_scalar_with_object_flags_state"] = Case(1, a.stop())

    a = Asm()
    a.g(NP, "scalar").mark()
    _dtype(a, "O8", O_STATE)
    a.b(b"AAAAAAAA").tuple().reduce()
    cases["numpy_scalar_of_object_dtype"] = Case(1, a.stop())

    a = Asm()
    a.g("numpy._core.numeric", "_frombuffer").mark().b(b"AAAAAAAA")
    _dtype(a, "O8", O_STATE)
    a.mark().i(1).tuple().s("C").tuple().reduce()
    cases["numpy_frombuffer_object_dtype"] = Case(1, a.stop())

    def overlapping(a: Asm) -> None:
        fields = {"a": (lambda a: _dtype(a, "O8", O_STATE), 0), "b": (lambda a: _dtype(a, "u8", (3, "<", None, None, None, -1, -1, 0)), 0)}
        _dtype(a, "V8", (3, "|", None, ("a", "b"), fields, 8, 8, 63))

    a = Asm()
    _array(a, (1,), overlapping, b"AAAAAAAA")
    cases["numpy_structured_object_field_overlapping_u8"] = Case(1, a.stop())

    # a dtype re-BUILT after an array uses it: the array would read past its buffer
    a = Asm()
    a.mark()
    _dtype(a, "U1", U_STATE)
    d = a.put()
    _array(a, (1,), lambda a: a.get(d), b"x\x00\x00\x00")
    a.get(d)
    _value(a, (3, "<", None, None, None, 4000, 4, 8))
    a.build().list()
    cases["numpy_dtype_rebuilt_after_use"] = Case(1, a.stop())

    # elsize that disagrees with the type string
    a = Asm()
    _array(a, (1,), lambda a: _dtype(a, "U1", (3, "<", None, None, None, 4000, 4, 8)), b"x\x00\x00\x00")
    cases["numpy_dtype_state_elsize_mismatch"] = Case(1, a.stop())

    # numpy 1.x names, object array written correctly: must load
    a = Asm()
    a.g("numpy.core.multiarray", "_reconstruct").mark().g("numpy", "ndarray").mark().i(0).tuple().b(b"b").tuple().reduce()
    a.mark().i(1).mark().i(2).tuple()
    _dtype(a, "O8", O_STATE)
    a.false().mark().i(1).s("x").list().tuple().build()
    cases["numpy_1x_names_object_array_ok"] = Case(1, a.stop(), expect="loads")

    # -- 2. writes to process-wide objects ----------------------------------------------------------
    a = Asm()
    # numpy 2.4 ignores most states on its builtin dtypes, but not the flags of the object dtype:
    # clearing them makes every object array in the process skip its reference counting
    a.g("copyreg", "__newobj__").mark().g("numpy", "dtype").s("O").tuple().reduce()
    _value(a, (3, "|", None, None, None, -1, -1, 0))
    a.build()
    cases["newobj_helper_shared_dtype_build"] = Case(2, a.stop())

    a = Asm()
    a.g("numpy", "dtype").mark().s("O").tuple().op(b"\x81")  # NEWOBJ
    _value(a, (3, "|", None, None, None, -1, -1, 0))
    a.build()
    cases["newobj_opcode_shared_dtype_build"] = Case(2, a.stop())

    a = Asm()
    a.g("numpy", "dtype").mark().s("O8").false().false().tuple().reduce()
    _value(a, (3, "|", None, None, None, -1, -1, 0))
    a.build()
    cases["dtype_copy_false_build"] = Case(2, a.stop())

    a = Asm()
    a.g("copyreg", "__newobj__").mark().g("uuid", "SafeUUID").i(0).tuple().reduce()
    _value(a, (None, {"_name_": "hacked", "_value_": 99}))
    a.build()
    cases["newobj_helper_enum_member_build"] = Case(2, a.stop())

    a = Asm()
    a.g("copyreg", "__newobj_ex__").mark().g("uuid", "SafeUUID").mark().i(0).tuple().op(b"}").tuple().reduce()
    _value(a, {"_name_": "hacked"})
    a.build()
    cases["newobj_ex_helper_enum_member_build"] = Case(2, a.stop())

    a = Asm()
    a.g("uuid", "SafeUUID").mark().i(0).tuple().op(b"\x81")
    _value(a, {"_name_": "hacked"})
    a.build()
    cases["newobj_opcode_enum_member_build"] = Case(2, a.stop())

    a = Asm()
    a.g("copyreg", "_reconstructor").mark().g("uuid", "SafeUUID").g("builtins", "object").none().tuple().reduce()
    _value(a, {"_name_": "hacked"})
    a.build()
    cases["reconstructor_enum_build"] = Case(2, a.stop())

    a = Asm()
    a.g(NP, "scalar").mark()
    _dtype(a, "?", (3, "|", None, None, None, -1, -1, 0))
    a.b(b"\x01").tuple().reduce()
    _value(a, {"x": 1})
    a.build()
    cases["numpy_shared_bool_scalar_build"] = Case(2, a.stop())

    a = Asm()
    a.g("_codecs", "encode").op(b"}").build()
    cases["build_on_codecs_substitute"] = Case(2, a.stop())

    # -- 3. imports outside the allowlist -----------------------------------------------------------
    a = Asm()
    a.g("copyreg", "__newobj__").mark().g("builtins", "bytes").s("x").s("idna").tuple().reduce()
    cases["newobj_helper_bytes_idna"] = Case(3, a.stop())

    a = Asm()
    a.g("builtins", "bytes").mark().s("x").tuple().mark().s("encoding").s("idna").dict().op(b"\x92")
    cases["newobj_ex_bytes_encoding_kwarg"] = Case(3, a.stop())

    a = Asm()
    a.g("copyreg", "__newobj_ex__").mark().g("builtins", "bytearray").mark().s("x").tuple().mark().s("encoding").s("bz2_codec").dict().tuple().reduce()
    cases["newobj_ex_helper_bytearray_bz2"] = Case(3, a.stop())

    a = Asm()
    a.g("builtins", "bytes").mark().s("x").s("idna").tuple().reduce()
    cases["bytes_idna"] = Case(3, a.stop())

    a = Asm()
    a.g("_codecs", "encode").mark().s("x").s("idna").tuple().reduce()
    cases["codecs_encode_idna"] = Case(3, a.stop())

    a = Asm()
    a.g("copyreg", "_reconstructor").mark().g("builtins", "bytes").g("builtins", "bytes").s("x").tuple().reduce()
    cases["reconstructor_bytes_str"] = Case(3, a.stop())

    # -- 4. resource bombs ------------------------------------------------------------------------
    a = Asm()
    a.g("copyreg", "__newobj__").mark().g("builtins", "bytes").i(3 << 30).tuple().reduce()
    cases["newobj_helper_bytes_3gib"] = Case(4, a.stop())

    a = Asm()
    a.g("copyreg", "_reconstructor").mark().g("builtins", "bytearray").g("builtins", "bytearray").i(3 << 30).tuple().reduce()
    cases["reconstructor_bytearray_3gib"] = Case(4, a.stop())

    a = Asm()
    a.g("builtins", "list").mark().g("copyreg", "__newobj__").mark().g("builtins", "range").i(10**10).tuple().reduce().tuple().reduce()
    cases["list_of_newobj_range"] = Case(4, a.stop())

    a = Asm()
    a.g(NP, "_reconstruct").mark().g("numpy", "ndarray").mark().i(1 << 29).tuple().b(b"b").tuple().reduce()
    cases["numpy_reconstruct_huge_shape"] = Case(4, a.stop())

    a = Asm()
    _array(a, (1 << 29,), lambda a: _dtype(a, "O8", O_STATE), [])
    cases["numpy_object_array_2_29_items"] = Case(4, a.stop())

    a = Asm()
    _array(a, (1 << 40,), lambda a: _dtype(a, "u1", (3, "|", None, None, None, -1, -1, 0)), b"")
    cases["numpy_array_shape_terabyte"] = Case(4, a.stop())

    a = Asm()
    a.g("copyreg", "__newobj__").mark().g("fractions", "Fraction").s("1e999999999").tuple().reduce()
    cases["newobj_helper_fraction_exponent"] = Case(4, a.stop())

    big = 10**20000 - 1
    a = Asm()
    a.g("decimal", "Decimal").mark().i(big).tuple().reduce()
    cases["decimal_of_20k_digit_int"] = Case(4, a.stop(), limit="max_digits")

    a = Asm()
    a.g("copyreg", "__newobj__").mark().g("decimal", "Decimal").i(big).tuple().reduce()
    cases["newobj_helper_decimal_big_int"] = Case(4, a.stop(), limit="max_digits")

    a = Asm()
    a.g("fractions", "Fraction").mark().i(big).i(big - 2).tuple().reduce()
    cases["fraction_of_20k_digit_ints"] = Case(4, a.stop(), limit="max_digits")

    a = Asm()
    a.op(b"}").op(b")" + b"\x85" * 1_000_000).none().op(b"s")
    cases["tuple_1e6_deep_as_dict_key"] = Case(4, a.stop(), limit="max_depth")

    a = Asm()
    a.g("builtins", "slice")
    sl = a.put()
    a.op(b"j" + struct.pack("<I", sl)).op((b"j" + struct.pack("<I", sl)) * 99_999).none().op(b"\x85R" * 100_000)
    cases["slices_1e5_deep"] = Case(4, a.stop(), limit="max_depth")

    # deques chained through the memo in reverse order: every single APPEND adds one level to a
    # deque that is already inside another, so no depth is visible at any one place in the stream
    n = 100_000
    a = Asm()
    a.g("collections", "deque")
    dq = a.put()
    first = a.memo
    for _ in range(n):
        a.get(dq).op(b")R\x94").op(b"0")
        a.memo += 1
    for k in range(n - 1):
        a.get(first + k).get(first + k + 1).op(b"a0")
    a.get(first)
    cases["deques_1e5_deep_through_memo"] = Case(4, a.stop(), limit="max_depth")

    # build a 100k-int list once, then copy it 2,000 times through the memo: 2e8 items from 300 KB
    a = Asm()
    a.op(b"]")
    lst = a.put()
    a.mark()
    for k in range(100_000):
        a.op(b"J" + struct.pack("<i", k))
    a.op(b"e0")  # fill it, drop it from the stack (it stays in the memo)
    a.g("builtins", "list")
    lg = a.put()
    a.mark()
    for _ in range(2_000):
        a.get(lg).get(lst).op(b"\x85R")
    a.list()
    cases["list_copies_through_memo"] = Case(4, a.stop(), limit="max_copy")

    # a benign deep-ish structure well inside the limit must load
    value: object = 0
    for _ in range(200):
        value = [value]
    cases["list_200_deep_ok"] = Case(4, pickle.dumps(value, 4), expect="loads")
    cases.update(_more_cases())
    return cases


def scanner_reuse_stream(items: int = 100_000, calls: int = 50_000) -> bytes:
    """One memoized ``items``-element argument tuple reused by ``calls`` REDUCEs (issue 12 class 5)."""
    a = Asm()
    a.g("builtins", "set")
    fn = a.put()
    a.mark()
    a.op(b"K\x01" * items)
    a.tuple()
    args = a.put()
    a.mark()
    for _ in range(calls):
        a.get(fn).get(args).reduce()
    a.list()
    return a.stop()


def int_hash_flood(keys: int) -> bytes:
    """A dict of ``keys`` distinct int keys that all hash to 0 (multiples of 2**61 - 1)."""
    p = (1 << 61) - 1
    return pickle.dumps({p * (k + 1): None for k in range(keys)}, 4)


def _more_cases() -> dict[str, Case]:
    """numpy reached through OBJ and INST instead of REDUCE, and through the copyreg helpers."""
    cases = {}
    a = Asm()
    a.mark().g(NP, "scalar").g("numpy", "dtype").mark().s("O8").false().true().tuple().reduce()
    a.b(b"AAAAAAAA").op(b"o")  # OBJ scalar(<unbuilt object dtype>, b"AAAAAAAA")
    cases["numpy_scalar_through_obj"] = Case(1, a.stop())
    a = Asm()
    a.mark().g("numpy", "dtype").mark().s("O8").false().true().tuple().reduce()
    a.b(b"AAAAAAAA").op(f"i{NP}\nscalar\n".encode())  # INST
    cases["numpy_scalar_through_inst"] = Case(1, a.stop())
    a = Asm()
    a.g(NP, "scalar").mark().g("copyreg", "__newobj__").mark().g("numpy", "dtype").s("O8").false().true().tuple().reduce()
    a.b(b"AAAAAAAA").tuple().reduce()
    cases["numpy_scalar_of_newobj_dtype"] = Case(1, a.stop())
    return cases
