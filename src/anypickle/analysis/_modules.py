"""Which modules a receiver can be expected to import: the standard library and installed distributions.

Everything else (a script's ``__main__``, a helper module beside the script, a package on a path the user
added by hand) is *local*: the receiver usually lacks it, so its functions and classes travel by value.
"""

from __future__ import annotations

import importlib
import os
import sys
import _thread
import types
from functools import lru_cache
from typing import Any, Iterable, Union

from ..errors import AnyPickleError

__all__ = ["MAIN_NAMES", "ModuleNames", "ModulePolicy", "is_installed_module", "lookup", "resolve_target"]

# Modules named to by_value= / by_reference=: by name, or the module object itself.
ModuleNames = Iterable[Union[str, types.ModuleType]]

MAIN_NAMES = frozenset({"__main__", "__mp_main__"})
"""The names a script's own module has: no receiver can import definitions from it by name."""
# The receiver needs these to read an envelope at all, so they always go by reference, even when
# anypickle itself runs from a source checkout rather than an installed distribution.
_ALWAYS_INSTALLED = frozenset({"anypickle", "cloudpickle", "dill"})

_lock = _thread.allocate_lock()  # threading.Lock itself (importing threading costs ~1 ms)
_distribution_top_levels: frozenset[str] | None = None


def _install_roots() -> tuple[str, ...]:
    """Directories whose files belong to the interpreter or to installed distributions."""
    import sysconfig  # here: called once (cached), when a module outside the stdlib is first classified

    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        import site

        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except (AttributeError, ValueError):  # virtualenv's old site.py lacks getsitepackages
        pass
    return tuple(sorted(os.path.realpath(r) + os.sep for r in roots if r))


def _top_levels_of_distributions() -> frozenset[str]:
    global _distribution_top_levels
    if _distribution_top_levels is None:
        with _lock:
            if _distribution_top_levels is None:
                # packages_distributions() reads every installed RECORD/top_level.txt once: tens of ms,
                # paid only the first time a module outside site-packages needs classifying
                # (editable installs live in the user's checkout, not in site-packages). Imported here:
                # importlib.metadata (with email.*) alone is a third of `import anypickle` otherwise.
                import importlib.metadata

                _distribution_top_levels = frozenset(importlib.metadata.packages_distributions())
    return _distribution_top_levels


@lru_cache(maxsize=4096)
def is_installed_module(name: str) -> bool:
    """True when module ``name`` is stdlib, built in, or part of an installed distribution.

    >>> is_installed_module("json"), is_installed_module("__main__")
    (True, False)
    """
    if name in MAIN_NAMES:
        return False
    top = name.partition(".")[0]
    if top in _ALWAYS_INSTALLED or top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return True
    module = sys.modules.get(top)
    if module is not None:
        file = getattr(module, "__file__", None)
        spec = getattr(module, "__spec__", None) if file is None else None
        if spec is not None:
            origin = spec.origin
            file = origin if origin not in (None, "built-in", "frozen") else None
        if file is not None:
            real = os.path.realpath(file)
            if real.startswith(_install_roots_cached()):
                return True
            # A directory pip installs into (site-packages, or `pip install --target DIR` put on
            # PYTHONPATH) holds *.dist-info folders; a script's own folder does not.
            entry = os.path.dirname(real)
            if os.path.basename(real) == "__init__.py" or os.path.basename(entry) == top:
                entry = os.path.dirname(entry)
            if _holds_distributions(entry):
                return True
    return top in _top_levels_of_distributions()


@lru_cache(maxsize=256)
def _holds_distributions(directory: str) -> bool:
    try:
        return any(name.endswith(".dist-info") for name in os.listdir(directory))
    except OSError:
        return False


@lru_cache(maxsize=1)
def _install_roots_cached() -> tuple[str, ...]:
    return _install_roots()


class ModulePolicy:
    """Decides, per module name, whether its functions and classes go by value or by reference.

    Local modules go by value by default; ``by_value`` and ``by_reference`` name modules (and their
    submodules) to force either way. The object is immutable and cheap, made once per ``dumps`` call.
    """

    __slots__ = ("by_value", "by_reference")

    def __init__(self, by_value: ModuleNames = (), by_reference: ModuleNames = ()) -> None:
        self.by_value = frozenset(_names(by_value))
        self.by_reference = frozenset(_names(by_reference))

    @property
    def is_default(self) -> bool:
        """True when no module was named either way: verdicts may then be cached across calls."""
        return not (self.by_value or self.by_reference)

    def goes_by_value(self, module_name: str | None) -> bool:
        """True when definitions from ``module_name`` must travel by value."""
        if module_name is None:
            return True
        if self.by_value or self.by_reference:
            for name in _parents(module_name):
                if name in self.by_value:
                    return True
                if name in self.by_reference:
                    return False
        return not is_installed_module(module_name)

    def module_by_value(self, module: object) -> bool:
        """True when the module *object* must travel by value (its name cannot bring it back).

        That is a module of a by-value name, and also one the receiver cannot import by its name even
        though the name is installed: ``types.ModuleType("json.extra")`` (not what ``sys.modules``
        holds under its name), or one registered there by hand with neither spec nor file.
        """
        name = getattr(module, "__name__", None)
        if not isinstance(name, str) or self.goes_by_value(name):
            return True
        if sys.modules.get(name) is not module:
            return True
        return getattr(module, "__spec__", None) is None and getattr(module, "__file__", None) is None


def _names(modules: ModuleNames) -> Iterable[str]:
    for m in modules:
        yield m if isinstance(m, str) else m.__name__


def _parents(name: str) -> Iterable[str]:
    while True:
        yield name
        if "." not in name:
            return
        name = name.rpartition(".")[0]


def lookup(module_name: str, qualname: str) -> object:
    """The object a receiver would find at ``module_name.qualname`` among the modules imported here.

    Raises KeyError (a LookupError) when the module is not imported, AttributeError when a part of
    the qualified name is missing. Imports nothing.
    """
    module = sys.modules.get(module_name)
    if module is None:
        raise KeyError(module_name)
    obj: object = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_target(spec: str) -> Any:
    """``module:attr`` (dotted attr allowed) to the object it names, importing ``module`` from the current
    folder or the installed ones (the command line's targets: ``anypickle explain/check/bench``)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise AnyPickleError(f"expected module:attr, got {spec!r}")
    sys.path.insert(0, ".")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise AnyPickleError(f"cannot import {module_name!r}: {exc}") from None
    finally:
        sys.path.pop(0)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AnyPickleError(f"{module_name!r} has no attribute path {attr!r}") from None
    return obj
