"""What a scan found: :class:`Severity`, :class:`ScanFinding` and :class:`ScanReport`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["ScanFinding", "ScanReport", "Severity"]


class Severity(str, enum.Enum):
    """How bad a finding is, ordered: ``INFO < WARNING < UNSAFE``. Equal to its string value
    (``Severity.UNSAFE == "unsafe"``), which is also what JSON output holds."""

    INFO = "info"
    WARNING = "warning"
    UNSAFE = "unsafe"

    @property
    def rank(self) -> int:
        """0, 1, 2 for info, warning, unsafe."""
        return _RANKS[self.value]

    def __lt__(self, other: object) -> bool:
        return self.rank < other.rank if isinstance(other, Severity) else NotImplemented

    def __le__(self, other: object) -> bool:
        return self.rank <= other.rank if isinstance(other, Severity) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return self.rank > other.rank if isinstance(other, Severity) else NotImplemented

    def __ge__(self, other: object) -> bool:
        return self.rank >= other.rank if isinstance(other, Severity) else NotImplemented

    def __str__(self) -> str:
        return self.value


_RANKS = {"info": 0, "warning": 1, "unsafe": 2}


@dataclass(frozen=True)
class ScanFinding:
    """One observation: its severity, the opcode and byte position it is about, and a message.

    ``member`` names the zip member for container files; ``global_name`` the global concerned;
    ``limit`` the :class:`~anypickle.Limits` field exceeded, when that is the finding.
    """

    severity: Severity
    opcode: str
    position: int
    message: str
    global_name: str | None = None
    member: str | None = None
    limit: str | None = None

    def __post_init__(self) -> None:
        if type(self.severity) is not Severity:  # a plain string: "info", "warning" or "unsafe"
            object.__setattr__(self, "severity", Severity(self.severity))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "severity": self.severity.value,
            "opcode": self.opcode,
            "position": self.position,
            "message": self.message,
            "global_name": self.global_name,
            "member": self.member,
            "limit": self.limit,
        }

    def __str__(self) -> str:
        where = f"{self.member}@{self.position}" if self.member else f"@{self.position}"
        return f"{self.severity.upper():7} {where} {self.opcode}: {self.message}"


@dataclass
class ScanReport:
    """The verdict on one stream or file: ``safe`` is False when any finding is ``"unsafe"``.

    ``globals`` lists every global the stream names as ``(raw, mapped)`` "module.qualname" strings
    (raw as written, mapped after Python 2 names go through ``_compat_pickle``); ``members`` lists
    the zip members scanned, empty for a plain stream.
    """

    source: str
    globals: list[tuple[str, str]] = field(default_factory=list)
    findings: list[ScanFinding] = field(default_factory=list)
    members: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        """True when no finding is ``"unsafe"``."""
        return not any(f.severity is Severity.UNSAFE for f in self.findings)

    @property
    def unsafe_findings(self) -> list[ScanFinding]:
        """Only the findings that make the stream unsafe."""
        return [f for f in self.findings if f.severity is Severity.UNSAFE]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "source": self.source,
            "safe": self.safe,
            "globals": [{"raw": raw, "mapped": mapped} for raw, mapped in self.globals],
            "findings": [f.to_dict() for f in self.findings],
            "members": list(self.members),
        }

    def __str__(self) -> str:
        verdict = "SAFE" if self.safe else "UNSAFE"
        lines = [f"{self.source}: {verdict}"]
        if self.members:
            lines.append(f"  members scanned: {', '.join(self.members)}")
        if self.globals:
            names = sorted({raw if raw == mapped else f"{raw} -> {mapped}" for raw, mapped in self.globals})
            lines.append(f"  globals: {', '.join(names)}")
        for finding in self.findings:
            lines.append(f"  {finding}")
        return "\n".join(lines)
