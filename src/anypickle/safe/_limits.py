"""The resource limits of safe loading: :class:`Limits`, what ``loads(..., safe=True, limits=...)`` takes.

``safe=True`` costs time roughly linear in the input and memory within a fixed factor of it. Each
limit below bounds one way a few input bytes could ask for much more; a stream over a limit is
refused with :class:`~anypickle.errors.UnsafePickleError` naming the limit (``.limit``), before the
allocation or computation it would cause.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True)
class Limits:
    """Resource limits of ``safe=True`` loading; pass a changed copy as ``loads(..., limits=...)``.

    ``max_depth``: nesting depth of the loaded value (containers inside containers, objects inside
    objects). Deeper values crash CPython when hashed (tuples as dict keys) or freed (slices,
    deques, object arrays). pickle itself cannot write data deeper than ~1000 levels (its
    recursion limit).

    ``max_copy``: items (or bytes) that constructor calls and BUILD may copy from values the stream
    reuses through its memo (``list(<memo ref>)`` a million times over one big list). A value's
    first use is free: the input bytes that made it paid for it.

    ``max_digits``: decimal digits of an integer handed to ``Decimal`` or ``Fraction`` (converting
    a 400 KB integer takes tens of seconds). 4300 is CPython's own ``int``/``str`` conversion limit.

    ``max_array_bytes``: bytes a numpy array's shape asks for (object arrays: 8 per item).

    ``max_hashed_keys``: dict keys and set elements whose hash a stream can choose (anything but
    str and bytes: ints, tuples, floats...), counting what ``set(list)``-style calls copy as well.
    Off by default: n keys that all hash alike cost n**2/2 comparisons (10,000: ~1 s; 100,000:
    ~3 min), and ordinary data has many int keys. Set it when loading untrusted data that has no
    reason to hold more than that many such keys (docs/security.md, "hash flooding").

    ``-1`` (or None) switches a limit off.
    """

    max_depth: int | None = 1000
    max_copy: int | None = 50_000_000
    max_digits: int | None = 4300
    max_array_bytes: int | None = 1 << 31
    max_hashed_keys: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_copy", "max_digits", "max_array_bytes", "max_hashed_keys"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < -1):
                raise UsageError(f"Limits.{name} must be a non-negative int, -1 or None, not {value!r}")

    def value(self, name: str) -> int:
        """The limit as an int, -1 when it is off."""
        value = getattr(self, name)
        return -1 if value is None else value

    def c_args(self) -> tuple[int, int, int, int]:
        """(max_depth, max_copy, max_int_bytes, max_hashed_keys) for ``_opwalk.memo_check``/``plain_data``."""
        digits = self.value("max_digits")
        return (self.value("max_depth"), self.value("max_copy"), -1 if digits < 0 else digits * 100 // 241,
                self.value("max_hashed_keys"))


DEFAULT_LIMITS = Limits()
"""The limits ``safe=True`` applies unless ``limits=`` is given."""


def check_limits(limits: object) -> Limits:
    """``limits`` itself when it is a :class:`Limits`, the defaults for None; else UsageError."""
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, Limits):
        raise UsageError(f"limits must be an anypickle.Limits, not {type(limits).__qualname__}")
    return limits
