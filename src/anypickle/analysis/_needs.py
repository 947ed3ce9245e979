"""What an object needs to reach a fresh interpreter intact, found by analysis rather than by trial.

A successful ``pickle.dumps`` proves nothing: pickle writes ``__main__`` classes, helper-module
functions and patched methods *by reference*, and the receiver fails or silently runs its own code
of the same name. So every function, class and method in the object graph is classified here.

Two walks share one classifier, :func:`classify`:

* :class:`ProbePickler` is the stdlib C pickler with a ``reducer_override`` hook. The C pickler walks
  plain containers (dict, list, tuple, str, int...) itself and calls the hook only for other
  objects, so plain data costs close to a bare ``pickle.dumps``. The hook raises
  :class:`NeedFound` at the first need, and the payload written so far is thrown away.
* :func:`find_needs` walks the graph in Python and records each need with its path
  (``obj.jobs[2].gen``). It is the slow path, used by :func:`anypickle.explain` and error messages.
"""

from __future__ import annotations

import enum
import functools
import io
import pickle
import re
import sys
import types
import typing
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .. import _reducers
from .._reducers import LOCK_TYPES
from ._modules import MAIN_NAMES, ModulePolicy, lookup

if TYPE_CHECKING:
    from ._finding import Finding

__all__ = [
    "FILE_TYPES", "LOCK_TYPES", "UNSHIPPABLE_TYPES", "Need", "NeedFound", "ProbePickler", "classify",
    "code_globals", "definition_need", "find_needs", "locate", "locate_named_type", "method_need",
    "patched_attributes",
]


class Need(enum.Enum):
    """Why an object cannot travel through stdlib pickle by reference."""

    LOCAL_FUNCTION = "local-function"
    """A lambda, nested function or closure: not importable by ``module.qualname``."""
    MAIN = "main"
    """A function or class defined in ``__main__``: the receiver never ran the sender's script."""
    LOCAL_MODULE = "local-module"
    """A function or class from a module that is neither stdlib nor installed (or named in ``by_value``)."""
    DYNAMIC_CLASS = "dynamic-class"
    """A class not importable by ``module.qualname`` (made by ``type()``, or inside a function)."""
    PATCHED_METHOD = "patched-method"
    """A method bound onto an instance whose class holds another function under that name."""
    PATCHED_CLASS = "patched-class"
    """An installed class whose attributes were replaced by code the receiver lacks."""
    SHARED_CELL = "shared-cell"
    """A closure whose cells another closure also uses: rebinding one must show in the other."""
    EXCEPTION_INIT = "exception-init"
    """An exception whose ``__init__`` takes other arguments than ``self.args``: pickle cannot rebuild it."""
    LOCAL_IMPORT = "local-import"
    """A by-value function whose body imports a local module when it runs (``from .kernels import f``):
    the module must travel too, and be importable on the receiver (anypickle registers it there)."""
    LOCK = "lock"
    """A lock: pickle and cloudpickle refuse it; anypickle rebuilds it in the same state."""
    UNSHIPPABLE = "unshippable"
    """Generators, coroutines, frames...: live execution state that no serializer can ship."""


# Needs that pickle by reference can never satisfy but a by-value pickler can.
BY_VALUE_NEEDS = frozenset(Need) - {Need.UNSHIPPABLE}

UNSHIPPABLE_TYPES: dict[type, str] = {
    types.GeneratorType: "materialize it (list(gen)) or ship the generator function and its arguments",
    types.CoroutineType: "ship the coroutine function and its arguments, and await it on the receiver",
    types.AsyncGeneratorType: "ship the async generator function and its arguments",
    types.FrameType: "frames are live execution state; ship the data you need from them",
    types.TracebackType: "format it (traceback.format_tb) and ship the text",
}
# Open files: a by-value pickler reopens them by name on the receiver (dill), in their mode; for a
# mode that writes, that truncates the very file ("w") or writes where the sender also writes.
FILE_TYPES = (io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom, io.BufferedReader, io.FileIO)
_FILE_ADVICE = ("ship the file's path (and what was written so far, if needed) and reopen it on the receiver, "
                "in append mode to keep its content")


def _unshippable(obj: object, t: type) -> tuple[str, str] | None:
    """(reason, advice) when nothing can ship ``obj`` faithfully, else None."""
    advice = UNSHIPPABLE_TYPES.get(t)
    if advice is not None:
        return f"a {t.__name__} object is live execution state: {advice}", advice
    if t in FILE_TYPES:
        mode = getattr(obj, "mode", "")
        if isinstance(mode, str) and any(c in mode for c in "wax+") and obj not in (
                sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            name = getattr(obj, "name", "?")
            return (f"file {name!r} is open for writing (mode {mode!r}): reopening it on the receiver would "
                    "truncate it or write where the sender writes", _FILE_ADVICE)
    return None


def unshippable_advice(obj: object) -> str | None:
    """The advice for an object nothing can ship faithfully, or None."""
    found = _unshippable(obj, type(obj))
    if found is not None:
        return found[1]
    try:
        _reducers.reduce_gap(obj, lambda o: False)
    except _reducers.Unfaithful as exc:
        return exc.advice
    return None

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: set for classes made by a class statement or type()

# Instance types already proven to need nothing, under the default module policy. Only the type is
# cached, never a verdict on a function or class, so a later patch is still seen when the class
# itself is saved (once per dumps, thanks to the pickle memo).
_plain_instance_types: set[type] = set()


class NeedFound(Exception):
    """Raised by :class:`ProbePickler` at the first need; carries the need and the object."""

    def __init__(self, need: Need, obj: object, reason: str) -> None:
        super().__init__(reason)
        self.need = need
        self.obj = obj
        self.reason = reason



def definition_need(obj: Any, policy: ModulePolicy) -> tuple[Need, str] | None:
    """Classify a function or class: may it go by reference (None), or why must it go by value?"""
    if isinstance(obj, type) and not obj.__flags__ & _HEAPTYPE:
        return None  # a C type (code, cell, mappingproxy...): only by reference, never by value
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "?")
    kind = "class" if isinstance(obj, type) else "function"
    if module in MAIN_NAMES:
        return Need.MAIN, f"{kind} {qualname!r} is defined in __main__, which the receiver does not have"
    try:
        found = lookup(module, qualname)  # type: ignore[arg-type]
    except (LookupError, AttributeError):
        found = None
    if found is not obj:
        if kind == "class":
            return Need.DYNAMIC_CLASS, f"class {qualname!r} cannot be imported as {module}.{qualname}"
        return Need.LOCAL_FUNCTION, f"function {qualname!r} cannot be imported as {module}.{qualname}"
    if policy.goes_by_value(module):
        return Need.LOCAL_MODULE, (
            f"{kind} {qualname!r} comes from module {module!r}, which is not installed "
            "(the receiver usually lacks it), so it travels by value"
        )
    return None


def patched_attributes(cls: type, policy: ModulePolicy) -> list[str]:
    """Names of class attributes that are functions the receiver's copy of the class lacks."""
    patched = []
    for name, value in list(vars(cls).items()):
        func = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        # Only code from __main__ or a local module counts: installed classes legitimately hold
        # functions that are not importable by name (fractions.Fraction's operators are closures).
        if type(func) is types.FunctionType and policy.goes_by_value(func.__module__):
            patched.append(name)
    return patched


def method_need(method: types.MethodType) -> tuple[Need, str] | None:
    owner = method.__self__
    func = method.__func__
    name = getattr(func, "__name__", None)
    cls = owner if isinstance(owner, type) else type(owner)
    try:
        attr = getattr(cls, name) if isinstance(owner, type) else vars_lookup(cls, name)  # type: ignore[arg-type]
    except AttributeError:
        attr = None
    attr_func = getattr(attr, "__func__", attr)
    if attr_func is func:
        return None
    return Need.PATCHED_METHOD, (
        f"method {name!r} is bound to a {cls.__qualname__} instance whose class has "
        + ("a different function under that name" if attr is not None else "no such method")
        + "; pickle would look it up by name on the receiver"
    )


def vars_lookup(cls: type, name: str) -> object:
    """The raw class attribute ``name`` along the MRO, without invoking descriptors."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    raise AttributeError(name)


def classify(obj: object, policy: ModulePolicy) -> tuple[Need, str] | None:
    """The first need of ``obj`` itself (not of what it contains), or None when pickle can ship it."""
    t = type(obj)
    if t is types.FunctionType:
        return definition_need(obj, policy)
    if t in _reducers._PROXY_TYPES:  # before any isinstance(), which a dead proxy answers with ReferenceError
        return None  # _reducers.reduce_gap ships it (or refuses a lone live one)
    if isinstance(obj, type):
        found = definition_need(obj, policy)
        if found is None:
            patched = patched_attributes(obj, policy)
            if patched:
                return Need.PATCHED_CLASS, (
                    f"class {obj.__qualname__!r} has attributes {patched} replaced by code the receiver lacks"
                )
        return found
    if t is types.MethodType:
        return method_need(obj)  # type: ignore[arg-type]
    if t is _LRU_WRAPPER:
        return definition_need(obj, policy)
    if t is types.ModuleType and obj.__name__ not in MAIN_NAMES and policy.module_by_value(obj):  # type: ignore[attr-defined]
        return Need.LOCAL_MODULE, (
            f"module {obj.__name__!r} cannot be imported by its name on the receiver, so it travels by value")  # type: ignore[attr-defined]
    # A class is hashable, but mypy checks type[X] against lru_cache's Hashable with the unbound
    # object.__hash__ and refuses it (python/mypy#20409), hence the ignore.
    if isinstance(obj, BaseException) and exception_needs_own_reducer(t):  # type: ignore[arg-type]
        return Need.EXCEPTION_INIT, (
            f"{t.__qualname__}.__init__ takes other arguments than the exception's args, so "
            "pickle's cls(*args) would fail on the receiver; anypickle restores it without calling __init__")
    if t is typing.NewType and policy.goes_by_value(obj.__module__):
        need = Need.MAIN if obj.__module__ in MAIN_NAMES else Need.LOCAL_MODULE
        return need, f"NewType {obj.__name__!r} is defined in {obj.__module__}, which the receiver lacks"  # type: ignore[attr-defined]
    if t is typing.TypeVar and policy.goes_by_value(obj.__module__):
        need = Need.MAIN if obj.__module__ in MAIN_NAMES else Need.LOCAL_MODULE
        return need, f"type variable {obj.__name__!r} is defined in {obj.__module__}, which the receiver lacks"  # type: ignore[attr-defined]
    if t in UNSHIPPABLE_TYPES or t in FILE_TYPES:
        refusal = _unshippable(obj, t)
        if refusal is not None:
            return Need.UNSHIPPABLE, refusal[0]
    if t in LOCK_TYPES:
        return Need.LOCK, f"{t.__name__} objects are refused by pickle; anypickle rebuilds them"
    return None


_LRU_WRAPPER = type(functools.lru_cache()(lambda: None))


@functools.lru_cache(maxsize=1024)
def exception_needs_own_reducer(t: type[BaseException]) -> bool:
    """True for Python exception classes with their own ``__init__`` and the default reduction."""
    return bool(
        t.__flags__ & _HEAPTYPE
        and t.__init__ is not BaseException.__init__
        and t.__reduce__ is BaseException.__reduce__
        and t.__reduce_ex__ is BaseException.__reduce_ex__
    )


class ProbePickler(pickle.Pickler):
    """The C pickler, with a hook that stops at the first object that cannot go by reference.

    Used as the first (and, for plain data, only) step of ``backend="auto"``: if ``dump`` returns,
    the bytes written are a correct stdlib pickle payload.
    """

    def __init__(self, file: Any, policy: ModulePolicy, protocol: int = 5, buffer_callback: Any = None) -> None:
        super().__init__(file, protocol, buffer_callback=buffer_callback)
        self._policy = policy
        self._cache = _plain_instance_types if policy.is_default else None
        if self._cache is not None:
            # The C pickler calls reducer_override for every object that is not a str, bytes, int,
            # float, dict, list, tuple, set...: 1k datetimes are 1k calls. An instance attribute
            # (looked up at each dump()) that is a closure over the cache skips the bound-method
            # call and two attribute loads for the common cache hit. It holds no reference to
            # self: a pickler <-> bound method cycle would keep each pickler and its memo alive
            # until the garbage collector runs (measured: 1.4x slower dumps of 10k strings). Shadowing
            # the method with an instance attribute is the point, hence the type: ignore.
            self.reducer_override = _cached_reducer_override(self._cache, policy, self)  # type: ignore[method-assign, assignment]

    def reducer_override(self, obj: object) -> Any:
        return _probe_reduce(obj, self._policy, self._cache, self)


def _probe_reduce(obj: object, policy: ModulePolicy, cache: set[type] | None, pickler: Any) -> Any:
    t = type(obj)
    if cache is not None and t in cache:
        return NotImplemented
    found = classify(obj, policy)
    if found is not None:
        raise NeedFound(found[0], obj, found[1])
    if has_gap(t):
        return gap_reduce(obj, pickler)
    if cache is not None and _cacheable_instance_type(t, policy):
        cache.add(t)
    return NotImplemented


def gap_reduce(obj: Any, pickler: Any) -> Any:
    """:func:`_reducers.reduce_gap` (or the ndarray-subclass reduction) inside ``pickler``, or NotImplemented.

    An object nothing can ship faithfully raises :class:`NeedFound` with :attr:`Need.UNSHIPPABLE`.
    """
    if type(obj) not in _reducers.GAP_TYPES:
        rv = _reducers.array_subclass_reduce(obj)
        return NotImplemented if rv is None else rv
    try:
        rv = _reducers.reduce_gap(obj, lambda o: memo_has(pickler, o))
    except _reducers.Unfaithful as exc:
        raise NeedFound(Need.UNSHIPPABLE, obj, exc.reason) from None
    return NotImplemented if rv is None else rv


def has_gap(t: type) -> bool:
    """True for the types :func:`gap_reduce` handles (each instance is looked at; never cache the type)."""
    return t in _reducers.GAP_TYPES or bool(t.__flags__ & _HEAPTYPE and _reducers.is_array_subclass(t))


def refuse_unshippable(obj: object) -> None:
    """Raise :class:`NeedFound` (:attr:`Need.UNSHIPPABLE`) for an object nothing can ship faithfully."""
    t = type(obj)
    if t in UNSHIPPABLE_TYPES or t in FILE_TYPES:
        found = _unshippable(obj, t)
        if found is not None:
            raise NeedFound(Need.UNSHIPPABLE, obj, found[0])


def memo_has(pickler: Any, obj: object) -> bool:
    """True when ``pickler`` already wrote ``obj`` (the C pickler's memo is a proxy: copied, O(memo))."""
    memo = pickler.memo
    if not isinstance(memo, dict):
        memo = memo.copy()
    return id(obj) in memo


def _cached_reducer_override(cache: set[type], policy: ModulePolicy, pickler: Any) -> Callable[[object], Any]:
    def reducer_override(obj: object) -> Any:
        if type(obj) in cache:
            return NotImplemented
        return _probe_reduce(obj, policy, cache, pickler_ref())

    pickler_ref = weakref.ref(pickler)
    return reducer_override


def _cacheable_instance_type(t: type, policy: ModulePolicy) -> bool:
    # Types whose verdict depends on the instance (a TypeVar's module, a cell the by-value pickler
    # must see) are never cached: one from an installed module must not wave through a __main__ one.
    if issubclass(t, type) or t in (types.FunctionType, types.MethodType, types.ModuleType, types.CellType,
                                    typing.TypeVar, typing.NewType, _LRU_WRAPPER) or t in FILE_TYPES or t in _reducers.GAP_TYPES:
        return False
    if _reducers.is_array_subclass(t):
        return False
    # mypy refuses a class as lru_cache's Hashable argument (python/mypy#20409).
    if issubclass(t, BaseException) and exception_needs_own_reducer(t):  # type: ignore[arg-type]
        return False
    return definition_need(t, policy) is None


# --- the slow walk, with paths -------------------------------------------------------------------

_ATOMIC = (type(None), bool, int, float, complex, str, bytes, bytearray, range, slice, type(Ellipsis))
_ATOMIC_TYPES = frozenset(_ATOMIC)


def code_globals(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from code_globals(const)


def _children(obj: Any, path: str, policy: ModulePolicy) -> Iterator[tuple[object, str]]:
    """The objects ``obj`` refers to that a by-value serializer would ship, with their paths."""
    t = type(obj)
    # Atomic items (numbers, strings) are skipped here, before their path is formatted: plain data is
    # most of a large graph, and the walk stays linear with a small constant.
    atomic = _ATOMIC_TYPES  # exact types: isinstance() would run a weak proxy's referent lookup
    if t is dict or isinstance(obj, dict):
        for k, v in list(obj.items()):
            if type(k) not in atomic:
                yield k, f"{path}<key {k!r}>"
            if type(v) not in atomic:
                yield v, f"{path}[{k!r}]"
        if t is dict:
            return
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            if type(v) not in atomic:
                yield v, f"{path}[{i}]"
        if t in (list, tuple):
            return
    elif isinstance(obj, (set, frozenset)):
        for i, v in enumerate(obj):
            if type(v) not in atomic:
                yield v, f"{path}{{item {i}}}"
        if t in (set, frozenset):
            return
    if t in _reducers.GAP_TYPES:  # shipped by anypickle's own reduction: only what that reduction ships
        if t is weakref.WeakSet:
            for i, v in enumerate(list(obj)):
                yield v, f"{path}{{member {i}}}"
        return
    if t is types.FunctionType:
        if definition_need(obj, policy) is None:
            return  # travels by reference: its insides stay home
        for i, cell in enumerate(obj.__closure__ or ()):
            try:
                yield cell.cell_contents, f"{path}.<closure {obj.__code__.co_freevars[i]}>"
            except ValueError:
                pass
        for i, v in enumerate(obj.__defaults__ or ()):
            yield v, f"{path}.__defaults__[{i}]"
        for k, v in (obj.__kwdefaults__ or {}).items():
            yield v, f"{path}.__kwdefaults__[{k!r}]"
        g = obj.__globals__
        for name in dict.fromkeys(code_globals(obj.__code__)):
            if name in g:
                yield g[name], f"{path}.<global {name}>"
        yield from ((v, f"{path}.{k}") for k, v in vars(obj).items() if k != "__wrapped__")
        if "__wrapped__" in vars(obj):
            yield obj.__wrapped__, f"{path}.__wrapped__"
        return
    if t is types.MethodType:
        yield obj.__func__, f"{path}.__func__"
        yield obj.__self__, f"{path}.__self__"
        return
    if isinstance(obj, functools.partial):
        yield obj.func, f"{path}.func"
        for i, v in enumerate(obj.args):
            yield v, f"{path}.args[{i}]"
        for k, v in obj.keywords.items():
            yield v, f"{path}.keywords[{k!r}]"
        return
    if isinstance(obj, type):
        if definition_need(obj, policy) is None:
            for name in patched_attributes(obj, policy):
                yield vars(obj)[name], f"{path}.{name}"
            return
        for base in obj.__bases__:
            yield base, f"{path}.<base {base.__qualname__}>"
        for k, v in list(vars(obj).items()):
            if not k.startswith("__") or k in ("__init__", "__call__", "__reduce__", "__getstate__", "__setstate__"):
                yield v, f"{path}.{k}"
        return
    if isinstance(obj, (staticmethod, classmethod)):
        yield obj.__func__, path
        return
    if isinstance(obj, property):
        for part in ("fget", "fset", "fdel"):
            if getattr(obj, part) is not None:
                yield getattr(obj, part), f"{path}.{part}"
        return
    if isinstance(obj, types.ModuleType) or t in UNSHIPPABLE_TYPES:
        return
    yield t, f"{path}.__class__"
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        for k, v in list(d.items()):
            yield v, f"{path}.{k}"
    for klass in t.__mro__:
        for slot in klass.__dict__.get("__slots__", ()) if isinstance(klass.__dict__.get("__slots__", ()), (tuple, list)) else (klass.__dict__["__slots__"],):
            if slot in ("__dict__", "__weakref__"):
                continue
            try:
                yield getattr(obj, slot), f"{path}.{slot}"
            except AttributeError:
                pass


def _walk(obj: object, root: str, policy: ModulePolicy) -> Iterator[tuple[object, str]]:
    """Depth-first over the whole object graph, each object once, yielding (object, path).

    Linear in the size of the graph, with no cap: a need after the first N objects is still found.
    """
    seen: set[int] = set()
    stack: list[tuple[object, str]] = [(obj, root)]
    while stack:
        o, path = stack.pop()
        if type(o) in _reducers._PROXY_TYPES:  # a weak proxy is a leaf: its referent is not shipped through it
            if id(o) not in seen:
                seen.add(id(o))
                yield o, path
            continue
        if isinstance(o, _ATOMIC) or id(o) in seen:
            continue
        seen.add(id(o))
        yield o, path
        try:
            children = list(_children(o, path, policy))
        except Exception:  # noqa: BLE001 - a hostile __dict__/__slots__ must not break explain()
            children = []
        stack.extend(reversed(children))


def find_needs(obj: object, policy: ModulePolicy, root: str = "obj") -> list[Finding]:
    """Every need in the graph of ``obj``, each with its path; slow, for reports and errors."""
    from ._finding import Finding  # with dataclasses: not imported by ``import anypickle``

    findings = []
    cell_owner: dict[int, str] = {}
    for o, path in _walk(obj, root, policy):
        found = classify(o, policy)
        if found is not None:
            advice = unshippable_advice(o) if found[0] is Need.UNSHIPPABLE else None
            findings.append(Finding(found[0], path, type(o).__qualname__, found[1], advice))
        if type(o) is types.FunctionType and found is not None:
            imported = imported_by_value(o, policy)
            if imported:
                findings.append(Finding(Need.LOCAL_IMPORT, path, "function", (
                    f"its body imports {', '.join(repr(n) for n, _ in imported)} when it runs, which the receiver "
                    "lacks: anypickle ships the module(s) by value and registers them there")))
        if type(o) is types.FunctionType and o.__closure__ and found is not None:
            for cell in o.__closure__:
                other = cell_owner.setdefault(id(cell), path)
                if other != path:
                    findings.append(Finding(Need.SHARED_CELL, path, "function", (
                        f"shares a closure cell with {other}: rebinding it in one must show in the other "
                        "(cloudpickle copies cells per function; anypickle keeps them shared)")))
                    break
    return findings


def locate(obj: object, predicate: Callable[[object], bool], policy: ModulePolicy, root: str = "obj") -> tuple[str, object] | None:
    """The path of the first object in the graph for which ``predicate`` is true."""
    for o, path in _walk(obj, root, policy):
        try:
            if predicate(o):
                return path, o
        except Exception:  # noqa: BLE001 - predicates probe arbitrary objects
            continue
    return None


_CANNOT_PICKLE = re.compile(r"(?:cannot pickle|can't pickle) '?([\w.]+)'?")


def locate_named_type(obj: object, message: str, policy: ModulePolicy) -> tuple[str, object] | None:
    """The path and object of the first value of the type a pickler's ``message`` names
    (``"cannot pickle '_thread.lock' object"``), or None when it names none or none is found."""
    m = _CANNOT_PICKLE.search(message)
    if m is None:
        return None
    type_name = m.group(1).rpartition(".")[2]
    return locate(obj, lambda o: type(o).__name__ == type_name, policy)


# --- modules a function imports when it runs --------------------------------------------------------

_IMPORT_NAME = __import__("opcode").opmap["IMPORT_NAME"]


@functools.lru_cache(maxsize=2048)
def code_imports(code: types.CodeType) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    """The ``(name, level, fromlist)`` of every import statement in ``code`` and its nested code."""
    found: list[tuple[str, int, tuple[str, ...]]] = []
    if _IMPORT_NAME in code.co_code[::2]:
        import dis

        consts: list[Any] = []
        for ins in dis.get_instructions(code):
            # IMPORT_NAME follows LOAD_CONST level, LOAD_CONST fromlist
            if ins.opname == "LOAD_CONST":
                consts.append(ins.argval)
            elif ins.opname == "IMPORT_NAME":
                level = consts[-2] if len(consts) >= 2 and isinstance(consts[-2], int) else 0
                fromlist = consts[-1] if consts and isinstance(consts[-1], tuple) else ()
                found.append((ins.argval, level, tuple(fromlist)))
            elif ins.opname not in ("EXTENDED_ARG", "CACHE", "NOP"):
                consts.clear()
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found.extend(code_imports(const))
    return tuple(found)


def imported_by_value(func: types.FunctionType, policy: ModulePolicy) -> list[tuple[str, types.ModuleType]]:
    """The by-value modules ``func``'s body imports when it runs (``from .kernels import f``, ``import helper``).

    The receiver lacks them, so a by-value function must bring them: ``(name, module)`` pairs, parents
    first. Relative imports resolve against the function's package, as they would when it runs.
    """
    imports = code_imports(func.__code__)
    if not imports:
        return []
    import importlib
    import importlib.util

    g = func.__globals__
    package = g.get("__package__")
    if package is None:
        spec = g.get("__spec__")
        package = getattr(spec, "parent", None)
    if package is None and isinstance(g.get("__name__"), str):
        package = g["__name__"] if "__path__" in g else g["__name__"].rpartition(".")[0]
    names: dict[str, None] = {}
    for name, level, fromlist in imports:
        try:
            base = importlib.util.resolve_name("." * level + name, package) if level else name
        except (ImportError, ValueError):
            continue
        parts = base.split(".")
        for i in range(1, len(parts) + 1):
            names[".".join(parts[:i])] = None
        for item in fromlist:
            if item != "*":
                names[f"{base}.{item}"] = None  # a submodule, when it is one (checked below)
    found = []
    for name in names:
        if name in MAIN_NAMES or not policy.goes_by_value(name):
            continue
        module = sys.modules.get(name)
        if module is None:
            try:
                if importlib.util.find_spec(name) is None:
                    continue
                module = importlib.import_module(name)  # the body would import it too, when it runs
            except (ImportError, ValueError):  # a guarded optional import the sender lacks as well
                continue
        if isinstance(module, types.ModuleType):
            found.append((name, module))
    return found


def __getattr__(name: str) -> Any:
    if name == "Finding":  # its home is ._finding since it stopped being imported with this module
        from ._finding import Finding

        return Finding
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
