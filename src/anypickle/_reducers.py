"""anypickle's own reconstructors: module-level functions that payloads reference by name.

They fill the holes cloudpickle leaves (closure cells shared between functions, nested class names,
locks, patches on installed classes). Never rename or remove one: old payloads name them.
"""

from __future__ import annotations

import _thread
import collections
import functools
import importlib
import importlib.util
import sys
import types
import weakref
from typing import Any

LOCK_TYPES = (type(_thread.allocate_lock()), type(_thread.RLock()))
"""``_thread.lock`` and ``_thread.RLock``: what :func:`reduce_lock` rebuilds (the analysis refuses neither)."""

__all__: list[str] = []


class EmptyCell:
    """Stands for a closure cell that has no value yet (a name assigned later in the enclosing scope)."""


def set_function_state(func: types.FunctionType, state: tuple[Any, ...]) -> None:
    """Fill the closure cells of ``func`` in place, then apply cloudpickle's function state.

    The cells themselves arrive as pickled objects (memoized, so two functions that shared a cell
    share it again); only their values travel here, after every function involved exists, which
    keeps recursive closures from recursing at load time. A fourth item lists the local modules the
    function imports when it runs, shipped by value: see :func:`install_modules`.
    """
    dict_state, slotstate, cell_values = state[:3]
    if len(state) > 3:
        install_modules(state[3])
    if cell_values is not None:
        for cell, value in zip(func.__closure__ or (), cell_values):
            if value is not EmptyCell:
                cell.cell_contents = value
    from cloudpickle import cloudpickle as _cp  # imported here: the probe imports this module, not cloudpickle

    _cp._function_setstate(func, (dict_state, slotstate))


def install_modules(modules: Any) -> None:
    """Register by-value modules in ``sys.modules`` (parents first) so that an import finds them.

    A function shipped by value that runs ``from .kernels import f`` or ``import helper`` imports a
    module of the sender the receiver lacks; it arrives with the function. A module the receiver
    already has under that name is kept (the receiver's own wins).
    """
    for name, module in modules:
        module = sys.modules.setdefault(name, module)
        parent, _, child = name.rpartition(".")
        if parent and parent in sys.modules and not hasattr(sys.modules[parent], child):
            setattr(sys.modules[parent], child, module)


def _no_subclass_hook(cls: type, **kwargs: Any) -> None:
    """Stands for a by-value base's ``__init_subclass__`` while a shipped subclass is rebuilt."""


class quiet_subclass_hooks:
    """Within the block, ``__init_subclass__`` of ``bases`` (their own, in their ``__dict__``) does nothing.

    A subclass shipped with its by-value base is rebuilt by creating the class again, which runs the
    base's ``__init_subclass__`` again: a registry the base keeps (shipped as it was, with the subclass
    already in it) would get it twice. The hook ran on the sender; its effects travel as state.
    """

    def __init__(self, bases: Any) -> None:
        self.saved = [(b, b.__dict__["__init_subclass__"]) for b in bases if "__init_subclass__" in b.__dict__]

    def __enter__(self) -> None:
        for base, _ in self.saved:
            setattr(base, "__init_subclass__", classmethod(_no_subclass_hook))

    def __exit__(self, *exc: object) -> None:
        for base, hook in self.saved:
            setattr(base, "__init_subclass__", hook)


def make_class_quietly(make: Any, args: tuple, quiet: tuple) -> Any:
    """``make(*args)`` (a class constructor) with the ``__init_subclass__`` of the ``quiet`` bases silenced."""
    with quiet_subclass_hooks(quiet):
        return make(*args)


def make_newtype(name: str, supertype: Any, module: str) -> Any:
    """A ``typing.NewType`` defined where the receiver cannot import it (``__main__``, a local module)."""
    import typing

    make: Any = typing.NewType  # (mypy only accepts a literal name: this one comes from the payload)
    new = make(name, supertype)
    new.__module__ = module
    return new


def set_cell(cell: types.CellType, value: Any) -> None:
    """Fill a closure cell met on its own (not as part of a function): its value travels as its state."""
    cell.cell_contents = value


def make_lock(locked: bool) -> Any:
    """A new ``threading.Lock``, acquired when the original was held."""
    lock = _thread.allocate_lock()  # threading.Lock itself: importing threading costs ~1 ms
    if locked:
        lock.acquire()
    return lock


def make_rlock() -> Any:
    """A new, released ``threading.RLock``: its owner thread does not exist on the receiver."""
    return _thread.RLock()  # threading.RLock() builds this C lock


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
    exc = cls.__new__(cls, *args)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    exc.__cause__ = cause
    return exc


# --- reductions shared by auto's AnyPickler and portable mode's PortablePickler -------------------
# Each returns the ``(reconstructor, args)`` that ``reducer_override`` hands to pickle; keeping them
# here means both picklers write the same thing, readable by the same reconstructors.


def reduce_exception(exc: BaseException) -> tuple:
    """Rebuild with :func:`make_exception`, never calling ``__init__``."""
    return make_exception, (type(exc), exc.args, exc.__dict__ or None, exc.__cause__)


def reduce_patched_class(cls: type, patched: list[str]) -> tuple:
    """Import the installed class ``cls`` on the receiver and set the ``patched`` attributes again."""
    return reapply_patches, (cls.__module__, cls.__qualname__, {name: vars(cls)[name] for name in patched})


def is_singledispatch(func: types.FunctionType) -> bool:
    """True for the wrapper ``functools.singledispatch`` returns (it keeps its state in its ``__dict__``)."""
    extra = func.__dict__
    return "registry" in extra and "dispatch" in extra and "__wrapped__" in extra


def reduce_singledispatch(func: Any) -> tuple:
    """The default implementation, the registered ones and other attributes; not the dispatch caches."""
    registry = {cls: impl for cls, impl in func.registry.items() if cls is not object}
    skip = {"registry", "dispatch", "register", "_clear_cache", "__wrapped__"}
    attributes = {k: v for k, v in func.__dict__.items() if k not in skip}
    return make_singledispatch, (func.__wrapped__, registry, attributes)


def reduce_lru_cache(func: Any) -> tuple:
    """A new, empty cache of the same size around the wrapped function."""
    params = func.cache_parameters()
    return make_lru_cache, (func.__wrapped__, params["maxsize"], params["typed"])


def reduce_lock(lock: Any) -> tuple:
    """A ``_thread.lock`` in the same state, or a released ``_thread.RLock``."""
    if type(lock) is LOCK_TYPES[0]:
        return make_lock, (lock.locked(),)
    return make_rlock, ()


def reduce_memoryview(view: memoryview) -> tuple:
    """A memoryview again (cloudpickle would turn it into bytes), with its format and shape."""
    return make_memoryview, (view.tobytes(), view.format, view.shape, view.readonly)


def make_memoryview(data: bytes, fmt: str, shape: tuple, readonly: bool) -> memoryview:
    """A memoryview over a copy of the original's bytes, with its format and shape."""
    view = memoryview(data if readonly else bytearray(data))
    if fmt != "B" or len(shape) != 1:
        # fmt is whatever struct format the sender's view had; typeshed's overloads take literal formats only.
        view = view.cast(fmt, shape)  # type: ignore[call-overload]
    return view


# --- objects every backend gets silently wrong ------------------------------------------------------
# pickle, cloudpickle and dill each rebuild these as something else (a value instead of a descriptor,
# a detached copy instead of a view). Every pickler of anypickle (the probe, auto's cloudpickle and
# dill, portable mode) asks :func:`reduce_gap` first.


def class_attribute(cls: type, name: str) -> Any:
    """``cls.__dict__[name]``: the raw attribute, where ``getattr`` would run the descriptor."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    raise AttributeError(f"type object {cls.__qualname__!r} has no attribute {name!r}")


def dict_view(mapping: dict, kind: str) -> Any:
    """``mapping.keys()``, ``.values()`` or ``.items()``: a live view of the (shared) dict or OrderedDict."""
    if kind not in ("keys", "values", "items") or not isinstance(mapping, dict):
        raise ValueError(f"unknown dict view {kind!r}")
    # dict's own methods (a subclass's override could return anything); OrderedDict's give odict views
    return getattr(collections.OrderedDict if isinstance(mapping, collections.OrderedDict) else dict, kind)(mapping)


def weak_proxy(referent: Any) -> Any:
    """A ``weakref.proxy`` to ``referent``, which the rest of the payload keeps alive."""
    return weakref.proxy(referent)


class _Gone:
    """The referent of a dead weak proxy made on the receiver."""


def _gone() -> None:
    """The referent of a dead callable weak proxy made on the receiver."""


def dead_weak_proxy(callable_: bool) -> Any:
    """A ``weakref.proxy`` whose referent no longer exists (callable, like the sender's, or not)."""
    referent: Any = types.FunctionType(_gone.__code__, {}) if callable_ else _Gone()
    proxy = weakref.proxy(referent)
    del referent  # the only reference: the proxy is dead from here on
    return proxy


def dead_weak_ref() -> Any:
    """A ``weakref.ref`` whose referent no longer exists."""
    referent = _Gone()
    ref = weakref.ref(referent)
    del referent
    return ref


def set_array_state(array: Any, state: tuple[Any, dict[str, Any]]) -> None:
    """An ndarray subclass's own state (``ndarray.__setstate__``), then its instance attributes."""
    array_state, attributes = state
    if array_state is not None:
        array.__setstate__(array_state)
    array.__dict__.update(attributes)


_DESCRIPTOR_TYPES = (types.GetSetDescriptorType, types.MemberDescriptorType, types.MethodDescriptorType,
                     types.WrapperDescriptorType, types.ClassMethodDescriptorType)
_DICT_VIEWS = {type({}.keys()): "keys", type({}.values()): "values", type({}.items()): "items",
               type(collections.OrderedDict().keys()): "keys", type(collections.OrderedDict().values()): "values",
               type(collections.OrderedDict().items()): "items"}
_PROXY_TYPES = (weakref.ProxyType, weakref.CallableProxyType)
GAP_TYPES = (frozenset(_DESCRIPTOR_TYPES) | frozenset(_DICT_VIEWS) | frozenset(_PROXY_TYPES)
             | {weakref.ReferenceType, weakref.WeakSet})
"""Types :func:`reduce_gap` may handle: never cached as "plain" by the picklers."""


_LONE_WEAK = ("{what} an object this payload does not hold: on the receiver nothing would keep it "
              "alive, so it would arrive dead")
_LONE_WEAK_ADVICE = ("ship the referent itself, before the weak reference (e.g. the parent before the children "
                     "that hold weak proxies to it), or rebuild the weak reference on the receiver")


class Unfaithful(Exception):
    """Raised by :func:`reduce_gap` for an object no serializer can ship faithfully (with advice)."""

    def __init__(self, obj: object, reason: str, advice: str) -> None:
        super().__init__(reason)
        self.obj = obj
        self.reason = reason
        self.advice = advice


def reduce_gap(obj: Any, memo_has: Any) -> Any:
    """The reduction of an object the serializers get silently wrong, or None to let them proceed.

    ``memo_has(o)`` tells whether ``o`` was already written to this payload (for weak proxies).
    Raises :class:`Unfaithful` where nothing can be faithful.
    """
    t = type(obj)
    if t in _DICT_VIEWS:
        import gc

        mapping = [r for r in gc.get_referents(obj) if isinstance(r, dict)]
        if len(mapping) != 1:
            return None
        return dict_view, (mapping[0], _DICT_VIEWS[t])
    if t in _PROXY_TYPES:
        try:
            referent = obj.__repr__.__self__  # a bound method of the referent, not of the proxy
        except ReferenceError:  # dead already: it arrives dead, as it is
            return dead_weak_proxy, (t is weakref.CallableProxyType,)
        if type(referent) in _PROXY_TYPES or isinstance(referent, weakref.ref):
            referent = None
        if referent is None or not memo_has(referent):
            raise Unfaithful(
                obj, _LONE_WEAK.format(what="a weakref.proxy to") + " (pickle would silently ship the referent "
                     "itself in its place)", _LONE_WEAK_ADVICE)
        return weak_proxy, (referent,)
    if t is weakref.ReferenceType:
        referent = obj()
        if referent is None:  # dead already: it arrives dead, as it is
            return dead_weak_ref, ()
        if not memo_has(referent):
            raise Unfaithful(obj, _LONE_WEAK.format(what="a weakref.ref to"), _LONE_WEAK_ADVICE)
        return weakref.ref, (referent,) if obj.__callback__ is None else (referent, obj.__callback__)
    if t is weakref.WeakSet:
        members = list(obj)
        if not all(memo_has(m) for m in members):
            raise Unfaithful(obj, _LONE_WEAK.format(what="a weakref.WeakSet holding"), _LONE_WEAK_ADVICE)
        return weakref.WeakSet, (members,)
    if t in _DESCRIPTOR_TYPES:
        owner = getattr(obj, "__objclass__", None)
        name = getattr(obj, "__name__", None)
        if not isinstance(owner, type) or not isinstance(name, str) or owner.__dict__.get(name) is not obj:
            return None
        try:
            if getattr(owner, name) is obj:
                return None  # pickle's getattr(owner, name) finds the descriptor itself
        except AttributeError:
            pass
        return class_attribute, (owner, name)
    return None


def array_subclass_reduce(obj: Any) -> Any:
    """An ndarray subclass instance with instance attributes: numpy's reduction, plus the attributes.

    ``ndarray.__reduce_ex__`` keeps the subclass but not its ``__dict__`` (cloudpickle and pickle then
    return the class default of ``a.color``); None when there are none or the subclass reduces itself.
    """
    t = type(obj)
    attributes = getattr(obj, "__dict__", None)
    if not attributes:
        return None
    ndarray = sys.modules["numpy"].ndarray
    if t.__reduce_ex__ is not ndarray.__reduce_ex__ or t.__reduce__ is not ndarray.__reduce__:
        return None
    rv = obj.__reduce_ex__(4)  # (numpy's _reconstruct, args, state): protocol 5 would drop the subclass state too
    return rv[0], rv[1], (rv[2] if len(rv) > 2 else None, dict(attributes)), None, None, set_array_state


def is_array_subclass(t: type) -> bool:
    """True for a strict subclass of numpy's ndarray (numpy imported already)."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and t is not numpy.ndarray and issubclass(t, getattr(numpy, "ndarray", ()))


# --- wire names -------------------------------------------------------------------------------------
# Payloads name reconstructors by module path, so a module that payloads name keeps that path on the
# wire when the code moves: its objects' ``__module__`` stays the old path (see keep_wire_name), and
# that path stays importable. WIRE_NAMES maps each such path to the module that owns the code now;
# the finder below serves it on first import (``pickle.loads`` alone, in a process that has not
# imported the owner yet).
WIRE_NAMES = {
    "anypickle._portable": "anypickle.backends._portable",  # portable mode's rebuilders
    "anypickle.wrap": "anypickle.shipping.wrap",  # anypickle.Wrapped and its rebuilder
}


def keep_wire_name(namespace: dict, wire_name: str) -> None:
    """Give every class and function defined in the module of ``namespace`` the ``__module__``
    ``wire_name``, and register that name in ``sys.modules``, so payloads keep naming ``wire_name``.

    The import system does not set a package attribute for a module found in ``sys.modules``:
    ``anypickle.wrap`` stays the function while ``anypickle.wrap.Wrapped`` still loads.
    """
    owner = namespace["__name__"]
    for value in list(namespace.values()):
        if (isinstance(value, type) or isinstance(value, types.FunctionType)) and value.__module__ == owner:
            value.__module__ = wire_name
    sys.modules.setdefault(wire_name, sys.modules[owner])


class _WireNameFinder:
    """Imports a wire name of :data:`WIRE_NAMES` as the module that owns its code now (a meta path
    finder and its loader: the module object returned is the owner itself, nothing is executed twice)."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in WIRE_NAMES:
            return None
        return importlib.util.spec_from_loader(fullname, _WireNameFinder)  # type: ignore[arg-type]

    @staticmethod
    def create_module(spec: Any) -> types.ModuleType:
        return importlib.import_module(WIRE_NAMES[spec.name])

    @staticmethod
    def exec_module(module: types.ModuleType) -> None:
        """Nothing to run: the owner module ran when it was imported."""


if _WireNameFinder not in sys.meta_path:
    sys.meta_path.append(_WireNameFinder)
