"""Receiver context (the taskloaf pattern): objects that do not travel but are resolved by name on arrival.

``dumps(obj, context={"db": conn})`` writes every occurrence of ``conn`` (matched by identity) as the
persistent id ``"db"`` instead of serializing it; ``loads(data, context={"db": other_conn})`` puts the
receiver's own object in its place. Typical values: the worker's handle to its scheduler, a database
connection, a large model already loaded on the worker.

Underneath: pickle's ``persistent_id`` hook on every pickler anypickle uses (the probe, stdlib pickle,
cloudpickle, dill; marshal cannot carry references and is skipped), ``persistent_load`` on the
receiver (:func:`resolver`, handed to the backend's ``loads``), and the envelope flag ``CONTEXT`` so a receiver that forgot its context gets a clear error.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .errors import DecodeError, UsageError

__all__ = ["Marker", "marker", "resolver"]

# Values without an identity of their own: small ints, interned strings and singletons are shared by
# unrelated code, so matching them by identity would replace values the sender never meant.
_ATOMS = (type(None), bool, int, float, complex, str, bytes)


class Marker:
    """The ``persistent_id`` hook of one ``dumps``: a context value becomes its name."""

    __slots__ = ("_by_id", "used")

    def __init__(self, context: Mapping[str, Any]) -> None:
        by_id: dict[int, tuple[str, Any]] = {}
        for name, value in context.items():
            if not isinstance(name, str):
                raise UsageError(f"context names must be str, not {type(name).__qualname__} ({name!r})")
            if isinstance(value, _ATOMS):
                raise UsageError(
                    f"context[{name!r}] is {value!r} ({type(value).__qualname__}): context values are matched by identity, "
                    "and such values are shared by unrelated code; pass the object that holds it instead")
            if id(value) in by_id:
                raise UsageError(f"context names {by_id[id(value)][0]!r} and {name!r} hold the same object")
            by_id[id(value)] = (name, value)
        self._by_id = by_id
        self.used = False  # set once a value was written by name: the envelope then gets the CONTEXT flag

    def __call__(self, obj: Any) -> str | None:
        hit = self._by_id.get(id(obj))
        if hit is None or hit[1] is not obj:
            return None
        self.used = True
        return hit[0]


def marker(context: Mapping[str, Any] | None) -> Marker | None:
    """The hook for ``dumps(context=...)``, or None when there is no context."""
    if context is None:
        return None
    if isinstance(context, Marker):  # an internal hook (anypickle.dask moves large arrays out of band)
        return context
    if not isinstance(context, Mapping):
        raise UsageError(f"context must be a mapping of names to objects, not {type(context).__qualname__}")
    return Marker(context) if context else None



def resolver(context: Mapping[str, Any] | None) -> Callable[[Any], Any]:
    """The ``persistent_load`` of ``loads(context=...)``: each name the payload wrote comes from ``context``."""
    if context is not None and not isinstance(context, Mapping):
        raise UsageError(f"context must be a mapping of names to objects, not {type(context).__qualname__}")
    given = {} if context is None else context

    def persistent_load(name: Any) -> Any:
        try:
            return given[name]
        except (KeyError, TypeError):
            have = f"it has {sorted(given)}" if given else "none was given"
            raise DecodeError(
                f"the payload refers to {name!r} in the receiver context, but the context passed to "
                f"loads() has no such name ({have}): pass loads(data, context={{{name!r}: ...}})") from None

    return persistent_load
