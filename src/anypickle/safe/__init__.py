"""Safe loading: ``safe_loads`` loads ordinary data from any pickle protocol and refuses everything else.

The implementation is :mod:`anypickle.safe._loads`; this package imports it (with the allowlist, the
numpy guard, the tracker and ``Limits``) on the first use of one of its names, because ``import
anypickle`` imports the package's C helper :mod:`anypickle.safe._opwalk` for the fast path of every
``loads`` and must not pay for safe loading then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._allowlist import DEFAULT_ALLOW
    from ._limits import DEFAULT_LIMITS, Limits
    from ._loads import safe_loads

__all__ = ["DEFAULT_ALLOW", "DEFAULT_LIMITS", "Limits", "safe_loads"]

_LAZY = {"DEFAULT_ALLOW": "._allowlist", "DEFAULT_LIMITS": "._limits", "Limits": "._limits", "safe_loads": "._loads"}


def __getattr__(name: str) -> object:
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
