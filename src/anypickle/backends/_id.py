"""The :class:`Backend` enum: which serializer wrote a payload."""

from __future__ import annotations

import enum
from typing import Literal

from ..errors import UsageError

__all__ = ["PORTABLE", "Backend", "parse_backend"]

PORTABLE: Literal["portable"] = "portable"
"""``dumps(obj, backend="portable")``: code as source, loadable by any Python 3.10+. Not a serializer of
its own: the payload is a pickle stream, so the envelope records :attr:`Backend.PICKLE` with its
``PORTABLE`` flag (the matrix shows it as a column of its own)."""


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


def parse_backend(value: "str | Backend") -> "Backend | Literal['portable'] | None":
    """Turn ``"auto"``, a backend name or a :class:`Backend` into a Backend (``None`` for auto), and
    ``"portable"`` into :data:`PORTABLE` (portable mode is no serializer of its own)."""
    if isinstance(value, Backend):
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        if name == "auto":
            return None
        if name == PORTABLE:
            return PORTABLE
        try:
            return Backend[name.upper()]
        except KeyError:
            pass
    choices = ", ".join(["auto"] + [b.label for b in Backend] + [PORTABLE])
    raise UsageError(f"unknown backend {value!r}: expected one of {choices}")
