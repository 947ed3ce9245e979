"""``explain(obj)``: which backend auto picks, what in the object needed it, and what each backend can do."""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from typing import Any

from .._api import dumps
from ..backends._id import Backend
from ._modules import ModuleNames, ModulePolicy
from ._finding import Finding
from ._needs import find_needs
from ..backends import get as get_backend
from ..errors import EncodeError

__all__ = ["BackendVerdict", "Explanation", "explain"]

_BROKE = ("wrong result", "loads fails")


@functools.lru_cache(maxsize=1)
def _evidence() -> tuple[tuple[frozenset[str], str, dict[str, str]], ...]:
    """Per catalogue case: the needs measured in it, its name, and each raw backend's recorded outcome.

    The outcomes are the catalogue's fresh-process expectations for this Python, which
    tests/test_matrix.py asserts cell by cell against real fresh interpreters; the needs are
    measured by scripts/update_case_needs.py (and checked against the matrix run by the same tests).
    """
    from ..lab.catalogue import all_cases
    from ..lab.catalogue._measured import NEEDS

    rows = []
    for case in all_cases():
        needs = NEEDS.get(case.name)
        if needs is None or case.expected("auto", "fresh") != "ok":
            continue  # (where nothing can ship the object, the raw backends fail for that, not for its needs)
        outcomes = {b.label: case.expected(b.label, "fresh") for b in Backend}
        rows.append((frozenset(needs), case.name, outcomes))
    return tuple(rows)


def recorded_verdict(backend: Backend, needs: frozenset[str]) -> tuple[bool, str]:
    """Whether ``backend``, whose dumps succeeded, ships an object with these needs, per the catalogue.

    The evidence is the catalogue's cases with exactly these needs (or, when none has them all, the
    cases whose needs are a part of them, plus for each need none of those has, the cases that have
    it): the backend ships when it ships every one of them intact to a fresh process. Without needs, everything goes by reference and only the object's kind matters.
    """
    if not needs:
        return True, "dumps succeeds and nothing found needs more"
    unshippable = sorted(n for n in needs if n.startswith("unshippable/"))
    if unshippable:
        return False, "dumps succeeds, but nothing can ship this faithfully (see needs: unshippable)"
    rows = _evidence()
    relevant = [r for r in rows if r[0] == needs]
    if not relevant:
        relevant = [r for r in rows if r[0] and r[0] <= needs]
        covered = frozenset().union(*(r[0] for r in relevant))
        # every need of the object must be backed by some case: else take the cases that have it
        relevant += [r for r in rows if (r[0] & (needs - covered)) and r not in relevant]
    if not relevant:
        return False, (f"dumps succeeds, but no catalogue case has needs like these ({', '.join(sorted(needs))}): "
                       "untested, so not vouched for")
    broke = [r for r in relevant if r[2][backend.label] in _BROKE]
    if not broke:
        return True, (f"dumps succeeds; in a fresh process it ships all {len(relevant)} catalogue case(s) "
                      f"with these needs intact")
    shown = sorted(set().union(*(r[0] for r in broke)))
    examples = "; ".join(f"{name!r}: {outcomes[backend.label]}" for _, name, outcomes in broke[:2])
    return False, (f"dumps succeeds, but in a fresh process it breaks on {len(broke)} of {len(relevant)} catalogue "
                   f"case(s) with these needs ({', '.join(shown)}), e.g. {examples}")


@dataclass(frozen=True)
class BackendVerdict:
    """Whether one backend, used raw, ships the object intact, and why not."""

    backend: Backend
    ships: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"backend": self.backend.label, "ships": self.ships, "reason": self.reason}


@dataclass(frozen=True)
class Explanation:
    """The report of :func:`explain`: printable, and convertible with :meth:`to_dict`."""

    backend: Backend | None
    """The backend auto picks, or None when nothing can ship the object."""
    needs: tuple[Finding, ...]
    backends: tuple[BackendVerdict, ...]
    error: str | None = None
    payload_size: int | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole report."""
        return {
            "backend": self.backend.label if self.backend else None,
            "payload_size": self.payload_size,
            "needs": [f.to_dict() for f in self.needs],
            "backends": [v.to_dict() for v in self.backends],
            "error": self.error,
        }

    def __str__(self) -> str:
        lines = []
        if self.backend is None:
            lines.append("auto: cannot serialize this object")
            if self.error:
                lines.extend("  " + line for line in self.error.splitlines())
        else:
            lines.append(f"auto picks: {self.backend.label} ({self.payload_size} bytes)")
        if self.needs:
            lines.append("needs:")
            for f in self.needs:
                lines.append(f"  {f.path}: {f.need.value} ({f.type_name}): {f.reason}")
        else:
            lines.append("needs: none (everything goes by reference)")
        lines.append("backends (raw):")
        for v in self.backends:
            lines.append(f"  {v.backend.label:<12} {'ships' if v.ships else 'fails':<6} {v.reason}")
        return "\n".join(lines)


def explain(obj: Any, *, by_value: ModuleNames = (), by_reference: ModuleNames = ()) -> Explanation:
    """Report the backend ``dumps(obj)`` would pick, each need with its path, and each backend's verdict.

    >>> print(explain(lambda: 1).backend.label)
    marshal
    """
    by_value, by_reference = tuple(by_value), tuple(by_reference)  # read twice: by the analysis and by dumps
    policy = ModulePolicy(by_value, by_reference)
    needs = tuple(find_needs(obj, policy))
    picked: Backend | None
    error = None
    size = None
    try:
        data = dumps(obj, by_value=by_value, by_reference=by_reference)
        picked = Backend(data[5])
        size = len(data)
    except EncodeError as exc:
        picked, error = None, str(exc)
    keys = frozenset(f.key for f in needs)
    verdicts = []
    for backend in Backend:
        impl = get_backend(backend)
        try:
            impl.dump(obj, io.BytesIO(), policy)
        except Exception as exc:  # noqa: BLE001 - whatever the raw library raises, its dumps fails
            verdicts.append(BackendVerdict(backend, False, f"dumps fails: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
            continue
        ships, reason = recorded_verdict(backend, keys)
        verdicts.append(BackendVerdict(backend, ships, reason))
    return Explanation(picked, needs, tuple(verdicts), error, size)
