"""The rule passes: each reads a :class:`Trace` and yields :class:`ScanFinding` objects.

A pass decides one question (is every global allowed? is every callable a named, callable global
with sane arguments? ...). ``PASSES`` lists them in the order reports show them.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

from .._allowlist import CALL, NOBUILD, Allowlist, format_global
from .._limits import DEFAULT_LIMITS, Limits
from ._machine import LONG_BYTES, LONG_STR, BigInt, Box, Glob, Kind, Made, Trace
from ._report import ScanFinding, Severity

__all__ = ["PASSES", "run_passes"]

Pass = Callable[[Trace, Allowlist, Limits], Iterator[ScanFinding]]


def _name(glob: Glob) -> str:
    if glob.pair is not None:
        return format_global(*glob.pair)
    module, name = glob.raw
    return format_global(str(module), str(name))


def _describe(value: object) -> str:
    if isinstance(value, Glob):
        return f"global {_name(value)}"
    if isinstance(value, Made):
        return f"the result of {value.op} at byte {value.pos}"
    if isinstance(value, Kind):
        return f"a {value.name}"
    return f"a {type(value).__name__}"


def check_structure(trace: Trace, allow: Allowlist, limits: Limits = DEFAULT_LIMITS) -> Iterator[ScanFinding]:
    """Malformed streams and bytes after STOP: the real unpickler would fail, or another parser could
    read the tail differently (a polyglot), so both are unsafe."""
    if trace.broken is not None:
        b = trace.broken
        yield ScanFinding(Severity.UNSAFE, b.op, b.pos, f"malformed stream: {b.message}")
    if trace.stop is not None and trace.end < trace.length:
        yield ScanFinding(
            Severity.UNSAFE, "STOP", trace.stop,
            f"{trace.length - trace.end} bytes after the first STOP (pickle ignores them; another parser may not)",
        )
    for pos, op, why in trace.oddities:
        yield ScanFinding(Severity.WARNING if op in ("NEXT_BUFFER", "STOP") else Severity.UNSAFE, op, pos, why)
    for pos, op, idx in trace.memo_overwrites:
        yield ScanFinding(Severity.UNSAFE, op, pos, f"memo index {idx} overwritten (memo confusion: picklers never reuse an index)")


def check_refused_opcodes(trace: Trace, allow: Allowlist, limits: Limits = DEFAULT_LIMITS) -> Iterator[ScanFinding]:
    """EXT1/EXT2/EXT4 and PERSID/BINPERSID hand control to registries and hooks outside the stream."""
    for pos, op, why in trace.refused:
        yield ScanFinding(Severity.UNSAFE, op, pos, why)


def check_globals(trace: Trace, allow: Allowlist, limits: Limits = DEFAULT_LIMITS) -> Iterator[ScanFinding]:
    """Every global must be named by literal strings and be exactly in the allowlist."""
    for glob in trace.globals:
        if glob.pair is None:
            yield ScanFinding(
                Severity.UNSAFE, glob.op, glob.pos,
                f"{glob.op} operands are not literal strings ({_describe(glob.raw[0])}, "
                f"{_describe(glob.raw[1])}): the global is computed at load time",
            )
        elif not allow.role(*glob.pair):
            name = _name(glob)
            raw = format_global(*glob.raw)  # type: ignore[arg-type]
            also = f" (written as {raw})" if raw != name else ""
            yield ScanFinding(Severity.UNSAFE, glob.op, glob.pos, f"global {name}{also} is not in the allowlist", name)


_FRACTION_TEXT = re.compile(r"[+-]?([0-9]+)(?:/([0-9]+))?", re.ASCII)

_NEWOBJ = ("copyreg", "__newobj__")
_NEWOBJ_EX = ("copyreg", "__newobj_ex__")
_RECONSTRUCTOR = ("copyreg", "_reconstructor")
_COPYREG = frozenset({_NEWOBJ, _NEWOBJ_EX, _RECONSTRUCTOR})
_OBJECT = ("builtins", "object")
_NUMPY_DTYPE = ("numpy", "dtype")
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")


def _literal_str(value: object) -> bool:
    return type(value) is str or value is LONG_STR


def _digits(value: object) -> int | None:
    """Decimal digits of an integer (or abstract big integer); None for anything else."""
    if type(value) is int or type(value) is bool:
        return len(str(abs(int(value)))) if value.bit_length() < 14000 else value.bit_length() * 31 // 100
    if type(value) is BigInt:
        return value.digits
    return None


def _too_many_digits(args: tuple, limits: Limits) -> str | None:
    cap = limits.value("max_digits")
    if cap < 0:
        return None
    for a in args:
        d = _digits(a)
        if d is not None and d > cap:
            return f"an integer of about {d} digits (limits.max_digits is {cap})"
    return None


def _is_numpy(value: object, name: str) -> bool:
    return type(value) is Glob and value.pair is not None and value.pair[0] in _NUMPY_CORE and value.pair[1] == name


def _made_by(value: object, pair: tuple[str, str]) -> bool:
    return type(value) is Made and type(value.callee) is Glob and value.callee.pair == pair


def _bytes_arg(value: object, literal: bytes | None = None) -> bool:
    """Bytes as pickle writes them: a literal, or _codecs.encode(<str>, 'latin1') at protocols 0-2."""
    if literal is not None:
        return value == literal or (_made_by(value, ("_codecs", "encode")) and type(value) is Made
                                    and type(value.args) is tuple and value.args[:1] == (literal.decode("latin-1"),))
    return (type(value) is bytes or value is LONG_BYTES or _made_by(value, ("_codecs", "encode"))
            or (type(value) is Made and _made_by(value, ("builtins", "bytes")) and value.args == ()))


def _arg_problem(pair: tuple[str, str], args: tuple, allow: Allowlist, limits: Limits) -> tuple[str, str | None] | None:
    """Why these arguments are refused for this allowed callable, and the limit concerned (None: fine)."""
    module, name = pair
    if pair == ("_codecs", "encode"):
        # Protocols 0-2 write exactly encode(str, "latin1"); any other codec is a lookup by name.
        if not (len(args) == 2 and _literal_str(args[0]) and args[1] in ("latin1", "latin-1")):
            return "only _codecs.encode(<str>, 'latin1') is allowed", None
    elif pair in (("builtins", "bytes"), ("builtins", "bytearray")):
        # bytes(10**12) allocates a terabyte from five input bytes; bytes("x", "idna") imports a codec.
        # Protocols 0-2 write bytearray(_codecs.encode(str, "latin1")).
        first = args[0] if args else b""
        ok_first = (
            type(first) in (str, bytes)
            or first in (LONG_STR, LONG_BYTES)
            or _made_by(first, ("_codecs", "encode"))
        )
        if not (len(args) <= 2 and ok_first and (len(args) < 2 or args[1] in ("latin1", "latin-1"))
                and (type(first) is not str and first is not LONG_STR or len(args) == 2)):
            return f"{name}() is only allowed on a literal string or bytes (no size, no codec but latin1)", None
    elif pair == ("decimal", "Decimal"):
        # Decimal pickles itself as Decimal(<str>); Decimal(<400 KB int>) takes tens of seconds.
        if not (len(args) == 1 and (_literal_str(args[0]) or _digits(args[0]) is not None)):
            return "decimal.Decimal is only allowed as Decimal(<str>) or Decimal(<int>)", None
        too_many = _too_many_digits(args, limits)
        if too_many:
            return f"decimal.Decimal of {too_many}", "max_digits"
    elif pair == ("fractions", "Fraction"):
        # Fraction("1e999999999") and Fraction(Decimal("1e999999999")) compute 10**999999999.
        # Fraction pickles itself as Fraction(numerator, denominator) (3.12+) or Fraction("n/d").
        text = args[0] if len(args) == 1 and type(args[0]) is str else None
        match = _FRACTION_TEXT.fullmatch(text) if text is not None else None
        as_ints = len(args) == 2 and all(type(a) is int or type(a) is BigInt for a in args)
        if not (match or as_ints):
            return "fractions.Fraction is only allowed as Fraction(<int>, <int>) or Fraction('<int>/<int>')", None
        cap = limits.value("max_digits")
        if match and cap >= 0 and max(len(g or "") for g in match.groups()) > cap:
            return f"fractions.Fraction of a {len(text or '')}-character number (limits.max_digits is {cap})", "max_digits"
        too_many = _too_many_digits(args, limits) if as_ints else None
        if too_many:
            return f"fractions.Fraction of {too_many}", "max_digits"
    elif pair == ("collections", "defaultdict"):
        if args and not (args[0] is None or isinstance(args[0], Glob)):
            return "a defaultdict's default_factory must be None or an allowed global", None
    elif pair == _NUMPY_DTYPE:
        # dtype(x, align, copy=False) returns numpy's process-wide dtype singleton; a BUILD on it
        # would change float64 for everyone. numpy's own pickles always pass copy=True.
        if not (len(args) == 3 and type(args[0]) is str and type(args[1]) is bool and args[2] is True):
            return "numpy.dtype must be called as numpy writes it: (str, bool, True)", None
    elif module in _NUMPY_CORE and name == "_reconstruct":
        # numpy writes _reconstruct(ndarray, (0,), b'b') and sets shape, dtype and data by BUILD;
        # another shape would allocate before anything is checked.
        if not (len(args) == 3 and type(args[0]) is Glob and args[0].pair == ("numpy", "ndarray")
                and args[1] == (0,) and _bytes_arg(args[2], b"b")):
            return "numpy _reconstruct must be called as numpy writes it: (numpy.ndarray, (0,), b'b')", None
    elif module in _NUMPY_CORE and name == "scalar":
        if not (len(args) == 2 and _made_by(args[0], _NUMPY_DTYPE) and _bytes_arg(args[1])):
            return "numpy scalar must be called as numpy writes it: (<numpy.dtype(...)>, <bytes>)", None
    elif module in _NUMPY_CORE and name == "_frombuffer":
        if not (len(args) == 4 and _made_by(args[1], _NUMPY_DTYPE) and type(args[2]) is tuple
                and all(type(d) is int and d >= 0 for d in args[2]) and args[3] in ("C", "F")):
            return "numpy _frombuffer must be called as numpy writes it: (<buffer>, <numpy.dtype(...)>, <shape>, 'C' or 'F')", None
    return None


def _callable_global(value: object, allow: Allowlist) -> bool:
    return isinstance(value, Glob) and value.pair is not None and bool(allow.role(*value.pair) & CALL)


def effective_calls(made: Made) -> tuple[list[tuple[object, object, object]], str | None]:
    """What ``made`` amounts to, as ``[(callable, args, kwargs)]``: the copyreg helpers construct the
    class they are given (``__newobj__(cls, *args)`` is ``cls.__new__(cls, *args)``), so their
    argument and no-BUILD rules are the class's. The first entry's callable is the class of the
    result. Or a problem when the helper's own arguments are not of that form."""
    callee, args, kwargs = made.callee, made.args, made.kwargs
    if type(callee) is not Glob or callee.pair not in _COPYREG:
        return [(callee, args, kwargs)], None
    name = format_global(*callee.pair)
    if type(args) is not tuple:
        return [], f"{name} arguments are {_describe(args)}, not a tuple"
    if kwargs is not None and not (type(kwargs) is Box and kwargs.n == 0):
        return [], f"{name} called with keyword arguments"
    if callee.pair == _NEWOBJ:
        if not args:
            return [], f"{name} needs a class as its first argument"
        return [(args[0], args[1:], None)], None
    if callee.pair == _NEWOBJ_EX:
        if len(args) != 3:
            return [], f"{name} takes (class, args, kwargs)"
        return [(args[0], args[1], args[2])], None
    if len(args) != 3:
        return [], f"{name} takes (class, base, state)"
    cls, base, state = args
    calls: list[tuple[object, object, object]] = [(cls, (), None)]
    if not (type(base) is Glob and base.pair == _OBJECT):
        calls.append((base, (state,), None))  # base.__new__(cls, state); base.__init__(obj, state)
    return calls, None


def _effective_class(made: Made) -> object:
    calls, _ = effective_calls(made)
    return calls[0][0] if calls else made.callee


def check_calls(trace: Trace, allow: Allowlist, limits: Limits = DEFAULT_LIMITS) -> Iterator[ScanFinding]:
    """Every REDUCE/NEWOBJ/NEWOBJ_EX/OBJ/INST calls a named global allowed to be called, with a
    tuple of arguments that global accepts; a copyreg helper is judged as the call of the class it
    constructs. Verdicts are cached per (callable, arguments) object, so a stream that reuses one
    memoized argument tuple in many calls costs one check, not one per call."""
    # list(range(10**10)) turns a few bytes into gigabytes: no range() result may feed a call.
    ranges = set()
    for m in trace.calls:
        cls = _effective_class(m)
        if type(cls) is Glob and cls.pair == ("builtins", "range"):
            ranges.add(id(m))
    verdicts: dict[tuple[int, int, int], tuple[str, str | None, str | None] | None] = {}
    keep: list[object] = []  # the objects whose ids key the cache stay alive
    for made in trace.calls:
        callee = made.callee
        if type(callee) is not Glob:
            yield ScanFinding(
                Severity.UNSAFE, made.op, made.pos,
                f"{made.op} calls {_describe(callee)}, not a named global (callable computed at load time)",
            )
            continue
        if callee.pair is None or not allow.role(*callee.pair):
            continue  # already reported by check_globals / check_refused_opcodes
        key = (id(callee), id(made.args), id(made.kwargs))
        if key in verdicts:
            verdict = verdicts[key]
        else:
            keep.append((callee, made.args, made.kwargs))
            verdict = verdicts[key] = _call_verdict(made, allow, limits, ranges)
        if verdict is not None:
            message, name, limit = verdict
            yield ScanFinding(Severity.UNSAFE, made.op, made.pos, message, name, limit=limit)


def _call_verdict(made: Made, allow: Allowlist, limits: Limits, ranges: set) -> tuple[str, str | None, str | None] | None:
    """(message, global name, limit) when this call is refused, None when it is fine."""
    outer = _name(made.callee)  # type: ignore[arg-type]
    calls, problem = effective_calls(made)
    if problem:
        return problem, outer, None
    for cls, args, kwargs in calls:
        if not _callable_global(cls, allow):
            if type(cls) is Glob and cls.pair is not None and allow.role(*cls.pair):
                return f"{_name(cls)} may appear as a value but not be called", _name(cls), None
            via = f" (through {outer})" if cls is not made.callee else ""
            return f"{made.op} constructs {_describe(cls)}{via}, not an allowed class or callable", outer, None
        assert type(cls) is Glob and cls.pair is not None
        name = _name(cls)
        if cls.pair in _COPYREG and cls is not made.callee:
            return f"{outer} may not construct another copyreg helper", name, None
        if type(args) is not tuple:
            return f"{made.op} arguments are {_describe(args)}, not a tuple", name, None
        if kwargs is not None and not (type(kwargs) is Box and kwargs.name == "dict" and kwargs.n == 0):
            # Nothing on the allowlist is written with keyword arguments; bytes(..., encoding="idna")
            # would import a codec module.
            return f"keyword arguments to {name} are refused (nothing on the allowlist is pickled with them)", name, None
        if cls.pair in _COPYREG:
            continue  # the helper itself: its class was checked above, as the effective call
        found = _arg_problem(cls.pair, args, allow, limits)
        if found is None and ranges and any(id(a) in ranges for a in args):
            found = "a range() result passed to a call (list(range(10**10)) amplifies a few bytes into gigabytes)", None
        if found:
            return found[0], name, found[1]
    return None


def _shape_items(shape: object) -> int | None:
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
        return None
    total = 1
    for d in shape:
        total *= d
    return total


def check_builds(trace: Trace, allow: Allowlist, limits: Limits = DEFAULT_LIMITS) -> Iterator[ScanFinding]:
    """BUILD sets state on a freshly made object only: on a global it would set attributes on a
    shared class or function (``setattr(fractions.Fraction, ...)``); on what a NOBUILD class
    returns, directly or through a copyreg helper, it would change a shared object (an enum member,
    numpy's interned dtypes). numpy's dtypes and arrays take one BUILD each, of the shape numpy
    writes (an object array's item list as long as its shape says)."""
    built: set[int] = set()
    for pos, target, state in trace.builds:
        if type(target) is Made:
            cls = _effective_class(target)
            if type(cls) is Glob and cls.pair is not None and allow.role(*cls.pair) & NOBUILD:
                made_by = _name(cls)
                yield ScanFinding(Severity.UNSAFE, "BUILD", pos, f"BUILD on what {made_by} returns (a shared object)", made_by)
                continue
            if type(cls) is Glob and cls.pair is not None and (cls.pair == _NUMPY_DTYPE or _is_numpy(cls, "_reconstruct")):
                what = _name(cls)
                if id(target) in built:
                    yield ScanFinding(Severity.UNSAFE, "BUILD", pos, f"second BUILD on what {what} returns (numpy writes one)", what)
                    continue
                built.add(id(target))
                problem = _numpy_state_problem(cls.pair == _NUMPY_DTYPE, state, limits)
                if problem:
                    yield ScanFinding(Severity.UNSAFE, "BUILD", pos, problem[0], what, limit=problem[1])
            continue
        name = _name(target) if isinstance(target, Glob) else None
        yield ScanFinding(Severity.UNSAFE, "BUILD", pos, f"BUILD on {_describe(target)}: only objects the stream creates may get state", name)


def _numpy_state_problem(is_dtype: bool, state: object, limits: Limits) -> tuple[str, str | None] | None:
    if is_dtype:
        if not (type(state) is tuple and len(state) in (8, 9) and state[0] in (3, 4)):
            return "a numpy dtype's BUILD state must be the 8- or 9-tuple numpy writes", None
        return None
    if not (type(state) is tuple and len(state) == 5 and state[0] == 1 and _made_by(state[2], _NUMPY_DTYPE)
            and type(state[3]) is bool):
        return "a numpy array's BUILD state must be (1, shape, <numpy.dtype(...)>, is_fortran, data) as numpy writes it", None
    items = _shape_items(state[1])
    if items is None:
        return "a numpy array's shape must be a tuple of non-negative ints", None
    data = state[4]
    if type(data) is Box:
        if data.name != "list" or data.n != items:
            given = f"a list of {data.n} items" if data.name == "list" else f"a {data.name}"
            return f"a numpy object array of shape {state[1]} ({items} items) given {given} (numpy writes exactly one per item)", None
        cap = limits.value("max_array_bytes")
        if cap >= 0 and items * 8 > cap:
            return f"a numpy object array of {items} items (limits.max_array_bytes is {cap})", "max_array_bytes"
    elif not (_bytes_arg(data) or data is LONG_STR or type(data) is str
              or (type(data) is Kind and data.name in ("bytearray", "buffer"))):
        return f"a numpy array's data must be bytes or an item list, not {_describe(data)}", None
    return None


def check_mutations(trace: Trace, allow: Allowlist, limits: Limits = DEFAULT_LIMITS) -> Iterator[ScanFinding]:
    """APPEND(S)/SETITEM(S)/ADDITEMS only fill lists, dicts, sets and objects the stream creates."""
    for pos, op, target in trace.mutations:
        if isinstance(target, Made):
            cls = _effective_class(target)
            if not (isinstance(cls, Glob) and cls.pair is not None and allow.role(*cls.pair) & NOBUILD):
                continue
        name = _name(target) if isinstance(target, Glob) else None
        yield ScanFinding(Severity.UNSAFE, op, pos, f"{op} into {_describe(target)}", name)


PASSES: tuple[Pass, ...] = (
    check_structure,
    check_refused_opcodes,
    check_globals,
    check_calls,
    check_builds,
    check_mutations,
)


def run_passes(trace: Trace, allow: Allowlist, limits: Limits = DEFAULT_LIMITS) -> list[ScanFinding]:
    """All findings of all passes, sorted by byte position."""
    findings = [finding for rule in PASSES for finding in rule(trace, allow, limits)]
    findings.sort(key=lambda f: f.position)
    return findings
