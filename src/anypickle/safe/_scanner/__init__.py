"""Static pickle scanner: ``scan(data_or_path) -> ScanReport``, which never imports or calls anything.

It simulates the unpickler's stack and memo (:mod:`._machine`), then runs small rule passes over what
the simulation recorded (:mod:`._rules`). It fails closed: a stream it cannot follow is unsafe.
Zip containers (PyTorch ``.pt`` files) are scanned member by member (:mod:`._container`).
"""

from __future__ import annotations

import os
from typing import Iterable, Union

from .._allowlist import AllowEntry, Allowlist, build_allowlist, format_global
from .._limits import DEFAULT_LIMITS, Limits
from ...backends._id import Backend
from ..._envelope import is_envelope
from ..._envelope import parse as parse_envelope
from ...errors import AnyPickleError, DecodeError, UsageError
from ._container import iter_pickle_members, is_zip
from ._machine import simulate
from ._report import ScanFinding, ScanReport, Severity
from ._rules import run_passes

__all__ = ["ScanFinding", "ScanReport", "Severity", "scan", "scan_bytes"]

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]


def scan_bytes(
    data: bytes, allow: Allowlist, *, member: str | None = None, offset: int = 0,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[list[tuple[str, str]], list[ScanFinding]]:
    """Globals ``(raw, mapped)`` and findings for one pickle stream (no container handling).

    ``offset`` is added to every position (the stream's place inside an envelope).
    """
    trace = simulate(data)
    names = []
    for glob in trace.globals:
        if glob.pair is None:
            continue
        names.append((format_global(*glob.raw), format_global(*glob.pair)))  # type: ignore[arg-type]
    findings = run_passes(trace, allow, limits)
    if member is not None or offset:
        findings = [
            ScanFinding(f.severity, f.opcode, f.position + offset, f.message, f.global_name, member, f.limit)
            for f in findings
        ]
    return names, findings


def scan(data_or_path: Source, *, allow: Iterable[AllowEntry] = ()) -> ScanReport:
    """Scan a pickle stream (bytes) or a file (``str``/``PathLike``) without executing it.

    ``allow`` adds exact ``"module.qualname"`` globals to the default allowlist, as in
    ``loads(..., safe=True, allow=...)``. Raises only :class:`~anypickle.errors.AnyPickleError`
    (a file that cannot be read is a :class:`~anypickle.errors.UsageError`); anything wrong with the
    content is a finding.
    """
    try:
        return _scan(data_or_path, allow)
    except AnyPickleError:
        raise
    except MemoryError:
        raise DecodeError("out of memory while scanning (the scanner keeps one stream in memory)") from None
    except Exception as exc:  # pragma: no cover - a scanner bug must still not leak a foreign type
        raise DecodeError(f"scanner error: {type(exc).__name__}: {exc}") from exc


def _scan(data_or_path: Source, allow: Iterable[AllowEntry]) -> ScanReport:
    allowlist = build_allowlist(allow)
    if isinstance(data_or_path, (str, os.PathLike)):
        source = os.fspath(data_or_path)
        try:
            with open(source, "rb") as file:
                data = file.read()
        except FileNotFoundError as exc:
            raise UsageError(f"no such file: {source}") from exc
        except IsADirectoryError as exc:
            raise UsageError(f"is a directory, not a pickle file: {source}") from exc
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc}") from exc
    elif isinstance(data_or_path, (bytes, bytearray, memoryview)):
        source = "<bytes>"
        data = bytes(data_or_path)
    else:
        raise UsageError(
            f"scan() takes bytes or a file path, not {type(data_or_path).__name__}"
        )
    report = ScanReport(source)
    if is_zip(data):
        found_any = False
        for member, content, problem, unsafe in iter_pickle_members(data):
            if problem is not None:
                report.findings.append(ScanFinding(Severity.UNSAFE if unsafe else Severity.WARNING, "ZIP", 0, problem, member=member))
                continue
            found_any = True
            report.members.append(member)
            names, findings = scan_bytes(content, allowlist, member=member)
            report.globals.extend(names)
            report.findings.extend(findings)
        if not found_any and not report.findings:
            report.findings.append(ScanFinding(Severity.INFO, "ZIP", 0, "zip archive holds no pickle member"))
        return report
    offset = 0
    if is_envelope(data):
        try:
            header = parse_envelope(memoryview(data))
        except DecodeError as exc:
            report.findings.append(ScanFinding(Severity.UNSAFE, "ENVELOPE", 0, f"malformed anypickle envelope: {exc}"))
            return report
        if header.carries_code:
            report.findings.append(ScanFinding(
                Severity.UNSAFE, "ENVELOPE", 0,
                f"anypickle envelope from backend {header.backend.label} carries code by design "
                "(bytecode or source): loading it runs that code",
            ))
            if header.backend is Backend.MARSHAL:
                return report  # a marshal payload is no pickle stream: nothing more to walk
        if header.tag is not None:
            report.findings.append(ScanFinding(
                Severity.INFO, "ENVELOPE", 0,
                f"signed (key id {header.key_id!r}); scan does not check signatures: loads(key=...) does",
            ))
        offset = header.payload_offset
        data = data[offset:]
    names, findings = scan_bytes(data, allowlist, offset=offset)
    report.globals.extend(names)
    report.findings.extend(findings)
    return report
