"""The rule passes: each reads a :class:`Trace` and yields :class:`Finding` objects.

A pass decides one question (is every global allowed? is every callable a named, callable global
with sane arguments? ...). ``PASSES`` lists them in the order reports show them.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

from .._allowlist import CALL, NOBUILD, Allowlist, format_global
from ._machine import DICT, LONG_BYTES, LONG_INT, LONG_STR, Glob, Kind, Made, Trace
from ._report import Finding

__all__ = ["PASSES", "run_passes"]

Pass = Callable[[Trace, Allowlist], Iterator[Finding]]


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


def check_structure(trace: Trace, allow: Allowlist) -> Iterator[Finding]:
    """Malformed streams and bytes after STOP: the real unpickler would fail, or another parser could
    read the tail differently (a polyglot), so both are unsafe."""
    if trace.broken is not None:
        b = trace.broken
        yield Finding("unsafe", b.op, b.pos, f"malformed stream: {b.message}")
    if trace.stop is not None and trace.end < trace.length:
        yield Finding(
            "unsafe", "STOP", trace.stop,
            f"{trace.length - trace.end} bytes after the first STOP (pickle ignores them; another parser may not)",
        )
    for pos, op, why in trace.oddities:
        yield Finding("warning" if op in ("NEXT_BUFFER", "STOP") else "unsafe", op, pos, why)
    for pos, op, idx in trace.memo_overwrites:
        yield Finding("unsafe", op, pos, f"memo index {idx} overwritten (memo confusion: picklers never reuse an index)")


def check_refused_opcodes(trace: Trace, allow: Allowlist) -> Iterator[Finding]:
    """EXT1/EXT2/EXT4 and PERSID/BINPERSID hand control to registries and hooks outside the stream."""
    for pos, op, why in trace.refused:
        yield Finding("unsafe", op, pos, why)


def check_globals(trace: Trace, allow: Allowlist) -> Iterator[Finding]:
    """Every global must be named by literal strings and be exactly in the allowlist."""
    for glob in trace.globals:
        if glob.pair is None:
            yield Finding(
                "unsafe", glob.op, glob.pos,
                f"{glob.op} operands are not literal strings ({_describe(glob.raw[0])}, "
                f"{_describe(glob.raw[1])}): the global is computed at load time",
            )
        elif not allow.role(*glob.pair):
            name = _name(glob)
            raw = format_global(*glob.raw)  # type: ignore[arg-type]
            also = f" (written as {raw})" if raw != name else ""
            yield Finding("unsafe", glob.op, glob.pos, f"global {name}{also} is not in the allowlist", name)


_FRACTION_TEXT = re.compile(r"[+-]?[0-9]+(?:/[0-9]+)?", re.ASCII)


def _literal_str(value: object) -> bool:
    return type(value) is str or value is LONG_STR


def _arg_problem(pair: tuple[str, str], args: tuple, allow: Allowlist) -> str | None:
    """Why these arguments are refused for this allowed callable (None: fine)."""
    module, name = pair
    if pair == ("_codecs", "encode"):
        # Protocols 0-2 write exactly encode(str, "latin1"); any other codec is a lookup by name.
        if not (len(args) == 2 and _literal_str(args[0]) and args[1] in ("latin1", "latin-1")):
            return "only _codecs.encode(<str>, 'latin1') is allowed"
    elif pair in (("builtins", "bytes"), ("builtins", "bytearray")):
        # bytes(10**12) allocates a terabyte from five input bytes.
        # Protocols 0-2 write bytearray(_codecs.encode(str, "latin1")).
        first = args[0] if args else b""
        ok_first = (
            type(first) in (str, bytes)
            or first in (LONG_STR, LONG_BYTES)
            or (isinstance(first, Made) and isinstance(first.callee, Glob) and first.callee.pair == ("_codecs", "encode"))
        )
        if not (len(args) <= 2 and ok_first and (len(args) < 2 or args[1] in ("latin1", "latin-1"))):
            return f"{name}() is only allowed on a literal string or bytes (no size, no codec by name)"
    elif pair == ("copyreg", "_reconstructor"):
        if not (len(args) == 3 and _callable_global(args[0], allow) and isinstance(args[1], Glob)
                and args[1].pair is not None and allow.role(*args[1].pair)):
            return "copyreg._reconstructor needs an allowed class and an allowed base class"
    elif pair in (("copyreg", "__newobj__"), ("copyreg", "__newobj_ex__")):
        if not (args and _callable_global(args[0], allow)):
            return f"copyreg.{name} needs an allowed class as its first argument"
    elif pair == ("numpy", "dtype"):
        # dtype(x, align, copy=False) returns numpy's process-wide dtype singleton; a BUILD on it
        # would change float64 for everyone. numpy's own pickles always pass copy=True.
        if not (len(args) == 3 and type(args[0]) is str and args[2] is True):
            return "numpy.dtype must be called as numpy writes it: (str, bool, True)"
    elif name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        if not (args and isinstance(args[0], Glob) and args[0].pair is not None and allow.role(*args[0].pair)):
            return "numpy _reconstruct needs an allowed ndarray class as its first argument"
    elif pair == ("fractions", "Fraction"):
        # Fraction("1e999999999") and Fraction(Decimal("1e999999999")) compute 10**999999999.
        # Fraction pickles itself as Fraction(numerator, denominator) (3.11+) or Fraction("n/d").
        as_text = len(args) == 1 and type(args[0]) is str and _FRACTION_TEXT.fullmatch(args[0])
        as_ints = len(args) == 2 and all(type(a) is int or a is LONG_INT for a in args)
        if not (as_text or as_ints):
            return "fractions.Fraction is only allowed as Fraction(<int>, <int>) or Fraction('<int>/<int>')"
    elif pair == ("collections", "defaultdict"):
        if args and not (args[0] is None or isinstance(args[0], Glob)):
            return "a defaultdict's default_factory must be None or an allowed global"
    if any(a is LONG_INT for a in args) and pair in (("builtins", "bytes"), ("builtins", "bytearray")):
        return "huge integer argument"
    return None


def _callable_global(value: object, allow: Allowlist) -> bool:
    return isinstance(value, Glob) and value.pair is not None and bool(allow.role(*value.pair) & CALL)


_CHECKED_ARGS = frozenset({
    ("_codecs", "encode"), ("builtins", "bytes"), ("builtins", "bytearray"), ("copyreg", "_reconstructor"),
    ("copyreg", "__newobj__"), ("copyreg", "__newobj_ex__"), ("numpy", "dtype"), ("collections", "defaultdict"),
    ("fractions", "Fraction"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
})


def check_calls(trace: Trace, allow: Allowlist) -> Iterator[Finding]:
    """Every REDUCE/NEWOBJ/NEWOBJ_EX/OBJ/INST calls a named global allowed to be called, with a
    tuple of arguments that global accepts."""
    # list(range(10**10)) turns a few bytes into gigabytes: no range() result may feed a call.
    ranges = {id(m) for m in trace.calls if type(m.callee) is Glob and m.callee.pair == ("builtins", "range")}
    verdicts: dict[int, tuple[str, int, bool]] = {}  # per callee Glob; streams reuse a few globals
    for made in trace.calls:
        callee = made.callee
        if type(callee) is not Glob:
            yield Finding(
                "unsafe", made.op, made.pos,
                f"{made.op} calls {_describe(callee)}, not a named global (callable computed at load time)",
            )
            continue
        if callee.pair is None:
            continue  # already reported by check_globals / check_refused_opcodes
        verdict = verdicts.get(id(callee))
        if verdict is None:
            verdict = verdicts[id(callee)] = (_name(callee), allow.role(*callee.pair), callee.pair in _CHECKED_ARGS)
        name, role, checked = verdict
        if not role:
            continue  # reported by check_globals
        if not role & CALL:
            yield Finding("unsafe", made.op, made.pos, f"{name} may appear as a value but not be called", name)
            continue
        args = made.args
        if type(args) is not tuple:
            yield Finding("unsafe", made.op, made.pos, f"{made.op} arguments are {_describe(args)}, not a tuple", name)
            continue
        if made.kwargs is not None and made.kwargs is not DICT:
            yield Finding("unsafe", made.op, made.pos, "NEWOBJ_EX keyword arguments are not a dict", name)
            continue
        problem = _arg_problem(callee.pair, args, allow) if checked else None
        if problem is None and ranges and any(id(a) in ranges for a in args):
            problem = "a range() result passed to a call (list(range(10**10)) amplifies a few bytes into gigabytes)"
        if problem:
            yield Finding("unsafe", made.op, made.pos, problem, name)


def check_builds(trace: Trace, allow: Allowlist) -> Iterator[Finding]:
    """BUILD sets state on a freshly made object only: on a global it would set attributes on a
    shared class or function (``setattr(fractions.Fraction, ...)``)."""
    for pos, target, _state in trace.builds:
        if type(target) is Made:
            callee = target.callee
            if type(callee) is Glob and callee.pair is not None and allow.role(*callee.pair) & NOBUILD:
                made_by = _name(callee)
                yield Finding("unsafe", "BUILD", pos, f"BUILD on what {made_by} returns (a shared object)", made_by)
            continue
        name = _name(target) if isinstance(target, Glob) else None
        yield Finding("unsafe", "BUILD", pos, f"BUILD on {_describe(target)}: only objects the stream creates may get state", name)


def check_mutations(trace: Trace, allow: Allowlist) -> Iterator[Finding]:
    """APPEND(S)/SETITEM(S)/ADDITEMS only fill lists, dicts, sets and objects the stream creates."""
    for pos, op, target in trace.mutations:
        if isinstance(target, Made):
            callee = target.callee
            if not (isinstance(callee, Glob) and callee.pair is not None and allow.role(*callee.pair) & NOBUILD):
                continue
        name = _name(target) if isinstance(target, Glob) else None
        yield Finding("unsafe", op, pos, f"{op} into {_describe(target)}", name)


PASSES: tuple[Pass, ...] = (
    check_structure,
    check_refused_opcodes,
    check_globals,
    check_calls,
    check_builds,
    check_mutations,
)


def run_passes(trace: Trace, allow: Allowlist) -> list[Finding]:
    """All findings of all passes, sorted by byte position."""
    findings = [finding for rule in PASSES for finding in rule(trace, allow)]
    findings.sort(key=lambda f: f.position)
    return findings
