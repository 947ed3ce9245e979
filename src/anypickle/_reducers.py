"""anypickle's own reconstructors: module-level functions that payloads reference by name.

They fill the holes cloudpickle leaves (closure cells shared between functions, nested class names,
locks, patches on installed classes). Never rename or remove one: old payloads name them.
"""

from __future__ import annotations

import functools
import importlib
import threading
import types
from typing import Any

from cloudpickle import cloudpickle as _cp

__all__: list[str] = []


class EmptyCell:
    """Stands for a closure cell that has no value yet (a name assigned later in the enclosing scope)."""


def set_function_state(func: types.FunctionType, state: tuple[Any, Any, Any]) -> None:
    """Fill the closure cells of ``func`` in place, then apply cloudpickle's function state.

    The cells themselves arrive as pickled objects (memoized, so two functions that shared a cell
    share it again); only their values travel here, after every function involved exists, which
    keeps recursive closures from recursing at load time.
    """
    dict_state, slotstate, cell_values = state
    if cell_values is not None:
        for cell, value in zip(func.__closure__ or (), cell_values):
            if value is not EmptyCell:
                cell.cell_contents = value
    _cp._function_setstate(func, (dict_state, slotstate))


def make_lock(locked: bool) -> Any:
    """A new ``threading.Lock``, acquired when the original was held."""
    lock = threading.Lock()
    if locked:
        lock.acquire()
    return lock


def make_rlock() -> Any:
    """A new, released ``threading.RLock``: its owner thread does not exist on the receiver."""
    return threading.RLock()


def reapply_patches(module: str, qualname: str, patches: dict[str, Any]) -> type:
    """Import an installed class and set on it the attributes the sender had patched."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    for name, value in patches.items():
        setattr(obj, name, value)
    return obj


def make_singledispatch(default: Any, registry: dict[type, Any], attributes: dict[str, Any]) -> Any:
    """Rebuild a ``functools.singledispatch`` function from its default and registered implementations.

    The dispatcher's own caches (a WeakKeyDictionary and closures over it) cannot be pickled and
    need not be: registering the implementations again rebuilds them.
    """
    func = functools.singledispatch(default)
    for cls, impl in registry.items():
        func.register(cls, impl)
    for name, value in attributes.items():
        setattr(func, name, value)
    return func


def make_lru_cache(wrapped: Any, maxsize: int | None, typed: bool) -> Any:
    """Wrap a by-value function in a new, empty ``functools.lru_cache``."""
    return functools.lru_cache(maxsize=maxsize, typed=typed)(wrapped)


def make_exception(cls: type, args: tuple[Any, ...], state: dict[str, Any] | None, cause: Any) -> BaseException:
    """Rebuild an exception without calling its ``__init__``, whose signature need not match ``args``.

    ``BaseException.__reduce__`` rebuilds with ``cls(*self.args)``, which breaks for the common
    ``__init__(self, code, msg)`` that passes only ``msg`` to ``super().__init__``.
    """
    exc = cls.__new__(cls, *args)  # type: ignore[call-overload]
    exc.args = args
    if state:
        exc.__dict__.update(state)
    exc.__cause__ = cause
    return exc


def make_memoryview(data: bytes, fmt: str, shape: tuple, readonly: bool) -> memoryview:
    """A memoryview over a copy of the original's bytes, with its format and shape."""
    view = memoryview(data if readonly else bytearray(data))
    if fmt != "B" or len(shape) != 1:
        view = view.cast(fmt, shape)
    return view
