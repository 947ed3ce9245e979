"""``explain(obj)``: which backend auto picks, what in the object needed it, and what each backend can do."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from ._backend import Backend
from ._modules import ModuleNames, ModulePolicy
from ._needs import BY_VALUE_NEEDS, Finding, Need, find_needs
from .backends import get as get_backend
from .errors import EncodeError

__all__ = ["BackendVerdict", "Explanation", "explain"]

# What each raw backend gets wrong even when its dumps succeeds: the receiver then fails or runs
# other code. Facts measured by the compatibility matrix (fresh-process mode); keep them in step.
_BLIND_SPOTS: dict[Backend, frozenset[Need]] = {
    Backend.PICKLE: BY_VALUE_NEEDS,
    Backend.MARSHAL: frozenset(),  # refuses at dumps what it cannot carry
    Backend.CLOUDPICKLE: frozenset({Need.LOCAL_MODULE, Need.SHARED_CELL, Need.PATCHED_CLASS}),
    Backend.DILL: frozenset({Need.LOCAL_MODULE, Need.PATCHED_CLASS}),
}


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
    from ._api import dumps  # the facade imports this module's public names

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
    kinds = {f.need for f in needs}
    verdicts = []
    for backend in Backend:
        impl = get_backend(backend)
        try:
            impl.dump(obj, io.BytesIO(), policy, auto=False)
        except impl.dump_errors as exc:
            verdicts.append(BackendVerdict(backend, False, f"dumps fails: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
            continue
        blind = sorted(n.value for n in kinds & _BLIND_SPOTS[backend])
        if blind:
            verdicts.append(BackendVerdict(backend, False, f"dumps succeeds, but the receiver breaks on: {', '.join(blind)}"))
        else:
            verdicts.append(BackendVerdict(backend, True, "dumps succeeds and nothing found needs more"))
    return Explanation(picked, needs, tuple(verdicts), error, size)
