"""anypickle's own reconstructors: module-level functions that payloads reference by name.

They fill the holes cloudpickle leaves (closure cells shared between functions, nested class names,
locks, patches on installed classes). Never rename or remove one: old payloads name them.
"""

from __future__ import annotations

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
