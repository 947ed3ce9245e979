"""The :class:`Backend` enum: which serializer wrote a payload."""

from __future__ import annotations

import enum

from ..errors import UsageError

__all__ = ["Backend", "parse_backend"]


class Backend(enum.IntEnum):
    """Which serializer wrote a payload. The value is the byte stored in the envelope: never renumber."""

    PICKLE = 1
    MARSHAL = 2
    CLOUDPICKLE = 3
    DILL = 4

    @property
    def label(self) -> str:
        """The lower-case name used on the command line and in keyword arguments."""
        return self.name.lower()


def parse_backend(value: "str | Backend") -> "Backend | None":
    """Turn ``"auto"``, a backend name or a :class:`Backend` into a Backend (``None`` for auto)."""
    if isinstance(value, Backend):
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        if name == "auto":
            return None
        try:
            return Backend[name.upper()]
        except KeyError:
            pass
    choices = ", ".join(["auto"] + [b.label for b in Backend])
    raise UsageError(f"unknown backend {value!r}: expected one of {choices}")
