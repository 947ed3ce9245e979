"""A :class:`Finding`: one need found in an object graph, as :func:`find_needs` reports it.

Its own module so that ``import anypickle`` (which needs the probe of :mod:`._needs`, not the slow
walk) does not import dataclasses and, through it, inspect: about 6 ms of a fresh interpreter's import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._needs import Need

__all__ = ["Finding"]

_FUNCTION_TYPE_NAMES = frozenset({"function", "method", "_lru_cache_wrapper", "builtin_function_or_method"})


@dataclass(frozen=True)
class Finding:
    """One need found in an object graph: which need, where (``path``), on what type, and why."""

    need: Need
    path: str
    type_name: str
    reason: str
    advice: str | None = None
    """What to do instead, for :attr:`Need.UNSHIPPABLE` findings."""

    @property
    def key(self) -> str:
        """The need and what it was found on, as the catalogue's evidence is keyed: ``"main/function"``."""
        on = "function" if self.type_name in _FUNCTION_TYPE_NAMES else "other"
        return f"{self.need.value}/{on}"

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict of this finding."""
        return {"need": self.need.value, "path": self.path, "type": self.type_name, "reason": self.reason}
