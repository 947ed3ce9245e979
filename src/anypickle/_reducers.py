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


def make_memoryview(data: bytes, fmt: str, shape: tuple, readonly: bool) -> memoryview:
    """A memoryview over a copy of the original's bytes, with its format and shape."""
    view = memoryview(data if readonly else bytearray(data))
    if fmt != "B" or len(shape) != 1:
        view = view.cast(fmt, shape)
    return view


def make_singledispatch(default: Any, implementations: list, attributes: dict) -> Any:
    """A ``functools.singledispatch`` function registered again, implementation by implementation.

    The original's dispatch cache is a ``WeakKeyDictionary``, which no pickler can carry; the
    registry is all the state that matters.
    """
    func = functools.singledispatch(default)
    for cls, implementation in implementations:
        func.register(cls, implementation)
    func.__dict__.update(attributes)
    return func


def make_lru_cache(wrapped: Any, maxsize: Any, typed: bool, attributes: dict) -> Any:
    """A ``functools.lru_cache`` wrapper around ``wrapped`` (with an empty cache)."""
    func = functools.lru_cache(maxsize=maxsize, typed=typed)(wrapped)
    func.__dict__.update(attributes)
    return func


def make_exception(cls: type, args: tuple) -> BaseException:
    """An exception instance created without calling ``__init__``; its ``__dict__`` follows as state.

    ``BaseException.__reduce__`` replays ``cls(*args)``, which fails for a custom ``__init__`` whose
    parameters differ from the ``args`` it passed to ``super().__init__``.
    """
    return cls.__new__(cls, *args)
