"""Portable mode: ship functions and classes as source, so any Python 3.10-3.13 loads what another wrote.

Bytecode changes with every CPython minor version (``marshal`` format, opcodes, inline caches), so
cloudpickle and dill payloads only load in the interpreter that wrote them. Portable mode pickles every
by-value function, lambda, closure and class as a call of a rebuild function of this module with the
*source text* of its definition, plus its closure cells, the globals it reads, defaults, ``__dict__``
and so on. Everything else (data, installed-library objects) pickles as usual. The rebuild functions are
module-level, so plain ``pickle.loads`` reads a portable payload.

:mod:`anypickle.backends._source` finds a definition's text (sender), :mod:`anypickle.backends._recompile` compiles it
back (both sides), :mod:`anypickle.backends._classes` decides what a class needs. See docs/portable.md.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import io
import pickle
import sys
import types
import typing
from typing import Any, Iterable

from . import _recompile, _source
from .. import _reducers
from ..analysis._modules import MAIN_NAMES, ModuleNames, ModulePolicy, lookup
from ..analysis._needs import (
    FILE_TYPES,
    LOCK_TYPES,
    UNSHIPPABLE_TYPES,
    NeedFound,
    definition_need,
    method_need,
    patched_attributes,
    exception_needs_own_reducer,
    gap_reduce,
    has_gap,
    imported_by_value,
    locate,
    locate_named_type,
    refuse_unshippable,
    unshippable_advice,
)
from ._classes import class_reduce, namedtuple_class, rebuild_from_source, set_state
from ._source import NoSource, Unshippable
from ._marshal import used_submodules
from ..errors import DecodeError, EncodeError

__all__ = ["dump_portable", "dumps_portable", "loads_portable"]

# Protocol 5 is the highest protocol of every Python from 3.8 on, and our oldest receiver is 3.10; it
# also frames and memoizes well. A future protocol 6 would be unreadable by 3.10-3.13, so never use
# pickle.HIGHEST_PROTOCOL here.
PROTOCOL = 5

class _ModuleRef:
    """Stands for a by-value module where rebuilt code needs it as its globals or as a global.

    There only the attributes that code reads travel (``module_attrs``); the module object itself, met
    as a value, travels whole. Both roles must load as one module, so the whole module is written as
    this reference plus its attributes, and the pickle memo makes every reference the same object.
    """

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def __reduce__(self) -> tuple:
        package = vars(self.module).get("__package__")
        if isinstance(package, str) and package:  # relative imports in its code resolve against it
            return _rebuild_module, (self.module.__name__, package)
        return _rebuild_module, (self.module.__name__,)


class _Namespace:
    """The globals of by-value code whose ``__globals__`` is not a module's dict (code made by exec)."""

    def __init__(self, name: str | None) -> None:
        self.name = name

    def __reduce__(self) -> tuple:
        return _rebuild_module, (self.name or "__anypickle_namespace__",)



class PortablePickler(pickle.Pickler):
    """A pickler that turns by-value functions and classes into source-based rebuild calls."""

    def __init__(self, file: Any, policy: ModulePolicy) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._policy = policy
        self._namespaces: dict[int, object] = {}
        self._records: dict[int, dict] = {}
        self._names: dict[int, tuple[set[str], set[str]]] = {}
        self._module_refs: dict[int, _ModuleRef] = {}
        self._keep: list[object] = []  # keeps the objects keyed by id() alive for the whole dump

    # -- decisions -------------------------------------------------------------------------------

    def _goes_by_value(self, obj: Any) -> bool:
        return definition_need(obj, self._policy) is not None  # the analysis' decision, as auto's

    def _attribute_of_class(self, obj: Any) -> tuple | None:
        """``(getattr, (owner, name))`` when ``obj`` is reachable as an attribute of a by-value class.

        Methods and nested classes then keep their identity: they come from the rebuilt outer class.
        """
        qualname = obj.__qualname__
        if "." not in qualname or "<locals>" in qualname:
            return None
        owner_name, _, name = qualname.rpartition(".")
        try:
            owner = lookup(obj.__module__, owner_name)
        except (KeyError, AttributeError):
            return None
        if isinstance(owner, type) and vars(owner).get(name) is not None and getattr(owner, name, None) is obj:
            if isinstance(obj, type):
                # The owner's class statement rebuilds this class; what changed since comes as state.
                from ._classes import attribute_state

                return getattr, (owner, name), attribute_state(obj), None, None, _set_class_state
            if type(obj) is types.FunctionType and vars(obj):
                return getattr, (owner, name), dict(vars(obj)), None, None, _set_function_dict
            return getattr, (owner, name)
        return None

    def _namespace_of(self, globals_dict: dict) -> object:
        """What the receiver uses as the globals of rebuilt code: a module, by reference or by value."""
        ref = self._namespaces.get(id(globals_dict))
        if ref is None:
            name = globals_dict.get("__name__")
            module = sys.modules.get(name) if isinstance(name, str) else None
            ref = self._global(module) if module is not None and vars(module) is globals_dict else _Namespace(name)
            self._namespaces[id(globals_dict)] = ref
            self._keep.append(globals_dict)
        return ref

    def _global(self, value: Any) -> Any:
        """``value`` as rebuilt code refers to it: a by-value module by a :class:`_ModuleRef`, else itself."""
        if type(value) is not types.ModuleType or not self._policy.module_by_value(value):
            return value
        ref = self._module_refs.get(id(value))
        if ref is None:
            ref = self._module_refs[id(value)] = _ModuleRef(value)
            self._keep.append(value)
        return ref

    def _namespace_by_value(self, ref: object) -> bool:
        return not isinstance(ref, types.ModuleType) or self._policy.module_by_value(ref)

    def _globals_for(self, names: Iterable[str], attr_names: Iterable[str], globals_dict: dict) -> tuple[dict, list]:
        """The globals among ``names``, and for by-value modules among them, their attributes in ``attr_names``."""
        found = {n: globals_dict[n] for n in sorted(set(names)) if n in globals_dict and n != "__builtins__"}
        names = set(attr_names)
        module_attrs = []
        seen: set[int] = set()
        stack = [v for v in found.values() if isinstance(v, types.ModuleType)]
        while stack:
            module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            if not self._policy.module_by_value(module):
                # Code that reads ``xml.dom.minidom`` through the global ``xml`` needs the receiver to have
                # imported the submodules too; unpickling each one imports it (and binds it on its parent).
                for sub in used_submodules(module.__name__, frozenset(names)):
                    parent, _, child = sub.rpartition(".")
                    pair = sys.modules.get(parent), sys.modules.get(sub)
                    if all(isinstance(m, types.ModuleType) for m in pair):  # sys.modules may hold None ("not importable")
                        module_attrs.append((pair[0], {child: pair[1]}))
                continue
            attrs = {n: v for n, v in sorted(vars(module).items()) if n in names and not n.startswith("__")}
            stack.extend(v for v in attrs.values() if isinstance(v, types.ModuleType))
            module_attrs.append((self._global(module), {n: self._global(v) for n, v in attrs.items()}))
        return {n: self._global(v) for n, v in found.items()}, module_attrs

    # -- the hook --------------------------------------------------------------------------------

    def reducer_override(self, obj: Any) -> Any:  # noqa: C901 - one dispatch on the object's type
        t = type(obj)
        if has_gap(t):  # dict views, descriptors of C types, weak proxies, ndarray subclasses' attributes
            try:
                return gap_reduce(obj, self)
            except NeedFound as exc:
                raise Unshippable(obj, exc.reason, unshippable_advice(obj)) from None
        if t in FILE_TYPES or t in UNSHIPPABLE_TYPES:
            try:
                refuse_unshippable(obj)
            except NeedFound as exc:
                raise Unshippable(obj, exc.reason, unshippable_advice(obj)) from None
        if t is types.FunctionType:
            return self._function_reduce(obj)
        if isinstance(obj, type):
            return self._class_reduce(obj)
        if t is types.CellType:
            return _cell_reduce(obj)
        if t is types.ModuleType:
            return self._module_reduce(obj)
        if t is types.MethodType and method_need(obj) is not None:
            # Pickle writes a bound method as getattr(obj, name), which finds nothing, or the class's own
            # method, when the function was bound onto the instance under a name of the user's choice.
            return _make_method, (obj.__func__, obj.__self__)
        # mypy refuses a class as lru_cache's Hashable argument (python/mypy#20409).
        if isinstance(obj, BaseException) and exception_needs_own_reducer(t):  # type: ignore[arg-type]
            return _reducers.reduce_exception(obj)
        if t in LOCK_TYPES:
            return _reducers.reduce_lock(obj)
        if t is memoryview:
            return _reducers.reduce_memoryview(obj)
        if t is staticmethod or t is classmethod or t is property:
            owned = _owner_attribute(obj)
            if owned is not None:  # taken from a class: the very object the rebuilt class holds
                return owned
            if t is property:
                return property, (obj.fget, obj.fset, obj.fdel, obj.__doc__)
            return t, (obj.__func__,)
        if t is types.UnionType:  # int | None: not picklable on 3.10-3.13
            return _make_union, (obj.__args__,)
        if t is functools._lru_cache_wrapper:
            return self._decorated_reduce(obj)
        if t is typing.NewType and self._goes_by_value(obj):
            return _reducers.make_newtype, (obj.__name__, obj.__supertype__, obj.__module__)
        if t is typing.TypeVar and self._typevar_by_value(obj):
            # TypeVar pickles by name (module.T), which the receiver lacks for a __main__ TypeVar or a
            # 3.12 type parameter (def f[T]), whose __module__ is 'typing'.
            return _rebuild_typevar, (obj.__name__, obj.__constraints__, obj.__bound__, obj.__covariant__,
                                      obj.__contravariant__)
        if t is types.CodeType:
            raise Unshippable(obj, "a code object is bytecode, which differs between Python versions",
                               hint="ship the function that owns it instead")
        if t is types.BuiltinFunctionType and (obj.__self__ is None or isinstance(obj.__self__, types.ModuleType)):
            module = getattr(obj, "__module__", None)
            if module and module != "builtins" and self._policy.goes_by_value(module):
                raise Unshippable(obj, f"compiled function {module}.{obj.__name__} comes from a local extension "
                                        "module: it has no Python source to ship",
                                   hint="install the module on the receiver and pass by_reference=[...]")
        return NotImplemented

    def _typevar_by_value(self, tv: Any) -> bool:
        module = getattr(tv, "__module__", None)
        try:
            if module and lookup(module, tv.__name__) is tv:
                return self._policy.goes_by_value(module)
        except (KeyError, AttributeError):
            pass
        return True

    def _module_reduce(self, module: types.ModuleType) -> tuple:
        if not self._policy.module_by_value(module):
            return importlib.import_module, (module.__name__,)
        if module.__name__ in MAIN_NAMES:
            # The sender's whole script namespace is not what a payload means to carry: code rebuilt from
            # __main__ carries the globals it reads; the module object itself arrives as the fresh module
            # that code runs in.
            return _module_of, (self._global(module),)
        # A local (helper) module met as a value travels whole: every attribute but the import machinery's
        # (a local module it imported is a value too, so it travels whole as well).
        attrs = {n: v for n, v in vars(module).items()
                 if not n.startswith("__") or n in ("__doc__", "__all__")}
        return _module_of, (self._global(module),), attrs, None, None, _set_module_attrs

    def _function_reduce(self, func: types.FunctionType) -> Any:
        if not self._goes_by_value(func):
            return NotImplemented
        as_attribute = self._attribute_of_class(func)
        if as_attribute is not None:
            return as_attribute
        if _reducers.is_singledispatch(func):
            # The dispatcher's caches (a WeakKeyDictionary, closures over it) cannot be pickled; its
            # default and registered implementations, each shipped by source, rebuild it.
            return _reducers.reduce_singledispatch(func)
        code = func.__code__
        # Closures made by one def share its code object: find and check the source once, and ship one
        # record object, which the pickle memo then writes once.
        record = self._records.get(id(code))
        if record is None:
            try:
                record = _source.function_source(func)
            except NoSource as exc:
                raise Unshippable(func, f"function {func.__qualname__!r} has no source to ship: {exc}",
                                   hint="define it in a file (or a notebook cell), not with exec/compile from a string") from None
            self._records[id(code)] = record
            self._keep.append(code)
        namespace = self._namespace_of(func.__globals__)
        if self._namespace_by_value(namespace):
            names = self._names.get(id(code))
            if names is None:
                names = self._names[id(code)] = (_recompile.global_names(code), _recompile.code_names(code))
            found, module_attrs = self._globals_for(names[0], names[1], func.__globals__)
        else:
            found, module_attrs = {}, []
        cells = dict(zip(code.co_freevars, func.__closure__ or ()))
        state = {
            "globals": found,
            "module_attrs": module_attrs,
            "name": func.__name__,
            "qualname": func.__qualname__,
            "module": func.__module__,
            "doc": func.__doc__,
            "defaults": func.__defaults__,
            "kwdefaults": func.__kwdefaults__,
            "annotations": func.__annotations__ or None,
            "dict": dict(vars(func)) or None,
        }
        modules = imported_by_value(func, self._policy)
        if modules:  # local modules its body imports when it runs: registered on the receiver before it runs
            state["modules"] = modules
        type_params = getattr(func, "__type_params__", ())
        if type_params:  # 3.12+: def f[T](); the receiver, being 3.12+ to compile it, can take them
            state["type_params"] = type_params
        return _rebuild_function, (record, namespace, cells), state, None, None, _set_function_state

    def _decorated_reduce(self, obj: Any) -> Any:
        """An object a decorator made of a function (``functools.lru_cache``): re-apply the decorators."""
        if not self._goes_by_value(obj):
            return NotImplemented
        as_attribute = self._attribute_of_class(obj)
        if as_attribute is not None:
            return as_attribute
        raw, hops = obj, 0
        while hasattr(raw, "__wrapped__"):
            raw, hops = raw.__wrapped__, hops + 1
        if not isinstance(raw, types.FunctionType):
            raise Unshippable(obj, f"cannot find the function that {obj!r} wraps")
        try:
            record = _source.decorators_source(raw)
        except NoSource as exc:
            raise Unshippable(obj, f"cannot ship {obj!r} by source: {exc}") from None
        # ``obj`` is what the innermost ``hops`` decorators made (each wrapper links to the next by
        # __wrapped__); outer decorators wrap ``obj`` in turn and travel as their own objects.
        record["decorators"] = record["decorators"][-hops:]
        names: set[str] = set()
        loaded: set[str] = set()
        for text in record["decorators"]:
            expression = _recompile.compile_expression(text, record)
            names |= _recompile.code_names(expression)
            loaded |= _recompile.global_names(expression)
        missing = sorted(n for n in loaded if n not in raw.__globals__ and not hasattr(builtins, n))
        if missing:
            raise Unshippable(obj, f"the decorators of {raw.__qualname__!r} use {', '.join(missing)}, which are not "
                                    "globals: decorators applied inside a function cannot be replayed")
        namespace = self._namespace_of(raw.__globals__)
        found, module_attrs = (self._globals_for(loaded, names, raw.__globals__) if self._namespace_by_value(namespace)
                               else ({}, []))
        return _rebuild_decorated, (record, namespace, raw, found, module_attrs)

    def _class_reduce(self, cls: type) -> Any:
        if cls.__module__ == "builtins":
            return NotImplemented
        if not self._goes_by_value(cls):
            patched = patched_attributes(cls, self._policy)
            if patched:  # an installed class whose methods were replaced by by-value code: patch it again
                return _reducers.reduce_patched_class(cls, patched)
            return NotImplemented
        as_attribute = self._attribute_of_class(cls)
        if as_attribute is not None:
            return as_attribute
        kind, args, state = class_reduce(self, cls)
        if state is None:
            return _CLASS_REBUILDERS[kind], args
        return _CLASS_REBUILDERS[kind], args, state, None, None, _set_class_state


def _owner_attribute(obj: Any) -> tuple | None:
    """``(class_attribute, (owner, name))`` for a property/staticmethod/classmethod a class holds.

    The owner is found by the qualname of the function inside (``C.p``); shipping the wrapper as an
    attribute of the class keeps its identity with ``vars(C)[name]`` on the receiver.
    """
    func = obj.fget if isinstance(obj, property) else getattr(obj, "__func__", None)
    qualname, module = getattr(func, "__qualname__", None), getattr(func, "__module__", None)
    if not isinstance(qualname, str) or "." not in qualname or "<locals>" in qualname or module is None:
        return None
    try:
        owner = lookup(module, qualname.rpartition(".")[0])
    except (KeyError, AttributeError):
        return None
    if not isinstance(owner, type):
        return None
    name = next((k for k, v in vars(owner).items() if v is obj), None)
    return None if name is None else (_reducers.class_attribute, (owner, name))


def _cell_reduce(cell: types.CellType) -> tuple:
    # Cells travel as objects (memoized like any other) so closures that shared a cell share it again,
    # and the contents go in the state, after the memo entry, so a recursive closure resolves.
    try:
        contents = (cell.cell_contents,)
    except ValueError:  # an empty cell: a variable not yet assigned when the closure was pickled
        return _make_cell, ()
    return _make_cell, (), contents, None, None, _set_cell


# ----------------------------------------------------------------------------------------- receiver


def _make_method(func: Any, obj: Any) -> types.MethodType:
    # types.MethodType is not importable by name ("builtins.method"), so the stream names this function.
    return types.MethodType(func, obj)


def _module_of(ref: types.ModuleType) -> types.ModuleType:
    # The module a _ModuleRef loaded as; the attributes follow as state, once the memo holds the module.
    return ref


def _set_module_attrs(module: types.ModuleType, attrs: dict) -> None:
    vars(module).update(attrs)


def _make_cell() -> types.CellType:
    # types.CellType is not importable by name ("builtins.cell"), so the stream names this function.
    return types.CellType()


def _set_cell(cell: types.CellType, state: tuple) -> None:
    cell.cell_contents = state[0]


def _rebuild_typevar(name: str, constraints: tuple, bound: Any, covariant: bool, contravariant: bool) -> Any:
    return typing.TypeVar(name, *constraints, bound=bound, covariant=covariant, contravariant=contravariant)


def _make_union(args: tuple) -> Any:
    return functools.reduce(lambda a, b: a | b, args)


def _rebuild_module(name: str, package: str | None = None) -> types.ModuleType:
    """A fresh module standing in for a sender module the receiver lacks (``__main__``, a helper)."""
    module = types.ModuleType(name)
    module.__dict__["__builtins__"] = builtins
    if package is not None:
        module.__dict__["__package__"] = package
    return module


def _globals_dict(namespace: Any) -> dict:
    return namespace if isinstance(namespace, dict) else vars(namespace)


def _compile_or_explain(compile_: Any, record: dict) -> Any:
    try:
        return compile_(record)
    except LookupError as exc:
        raise DecodeError(f"the shipped source of {record['qualname']!r} does not define it: {exc}") from None
    except SyntaxError as exc:
        raise DecodeError(
            f"the source of {record['qualname']!r} ({record['filename']}:{record['lineno']}) does not compile on "
            f"Python {sys.version_info[0]}.{sys.version_info[1]}: {exc.msg}. Portable mode ships source, so the "
            "receiver must understand the syntax the sender used") from None


def _rebuild_function(record: dict, namespace: Any, cells: dict) -> types.FunctionType:
    """Compile a shipped function definition and build the function with the shipped closure cells."""
    code = _compile_or_explain(_recompile.compile_function, record)
    closure = tuple(cells[name] if name in cells else types.CellType() for name in code.co_freevars)
    return types.FunctionType(code, _globals_dict(namespace), record["name"], None, closure or None)


def _set_function_state(func: types.FunctionType, state: dict) -> None:
    if state.get("modules"):
        _reducers.install_modules(state["modules"])
    func.__globals__.update(state["globals"])
    for module, attrs in state["module_attrs"]:
        vars(module).update(attrs)
    func.__name__ = state["name"]
    func.__qualname__ = state["qualname"]
    func.__module__ = state["module"]
    func.__doc__ = state["doc"]
    func.__defaults__ = state["defaults"]
    func.__kwdefaults__ = state["kwdefaults"]
    if state["annotations"]:
        func.__annotations__ = state["annotations"]
    if state["dict"]:
        func.__dict__.update(state["dict"])
    if state.get("type_params"):
        # typeshed declares FunctionType.__type_params__ for 3.12+ only: needed when mypy checks as 3.10.
        func.__type_params__ = state["type_params"]  # type: ignore[attr-defined, unused-ignore]


def _set_function_dict(func: types.FunctionType, state: dict) -> None:
    func.__dict__.update(state)


def _rebuild_decorated(record: dict, namespace: Any, raw: Any, found: dict, module_attrs: list) -> Any:
    """Re-apply the decorators of a definition, innermost first, to the rebuilt undecorated function."""
    globals_dict = _globals_dict(namespace)
    globals_dict.update(found)
    for module, attrs in module_attrs:
        vars(module).update(attrs)
    obj = raw
    for text in reversed(record["decorators"]):
        obj = eval(_recompile.compile_expression(text, record), globals_dict)(obj)  # noqa: S307
    return obj


def _rebuild_class_from_source(record: dict, namespace: Any, cells: dict, found: dict, module_attrs: list,
                               expr_locals: dict, quiet: tuple = ()) -> type:
    """Run a shipped ``class`` statement: bases, keywords and decorators from source, body with our cells."""
    globals_dict = _globals_dict(namespace)
    globals_dict.update(found)
    for module, attrs in module_attrs:
        vars(module).update(attrs)
    try:
        return rebuild_from_source(record, globals_dict, cells, expr_locals, quiet)
    except SyntaxError as exc:
        raise DecodeError(
            f"the source of class {record['qualname']!r} ({record['filename']}:{record['lineno']}) does not compile "
            f"on Python {sys.version_info[0]}.{sys.version_info[1]}: {exc.msg}. Portable mode ships source, so the "
            "receiver must understand the syntax the sender used") from None


def _set_class_state(cls: type, state: dict) -> None:
    set_state(cls, state)


def _rebuild_namedtuple(name: str, fields: tuple, defaults: tuple) -> type:
    return namedtuple_class(name, fields, defaults)


def _rebuild_functional_enum(base: Any, name: str, members: tuple, module: str, qualname: str) -> type:
    return base(name, list(members), module=module, qualname=qualname)


def _rebuild_dynamic_class(metaclass: type, name: str, bases: tuple, construct: dict) -> type:
    return types.new_class(name, bases, {"metaclass": metaclass}, lambda ns: ns.update(construct))


# What :func:`anypickle.backends._classes.class_reduce` decides, and the rebuilder (named on the wire) of each.
_CLASS_REBUILDERS = {
    "source": _rebuild_class_from_source,
    "namedtuple": _rebuild_namedtuple,
    "functional_enum": _rebuild_functional_enum,
    "dynamic": _rebuild_dynamic_class,
}


# -------------------------------------------------------------------------------------------- facade


def dump_portable(obj: Any, file: Any, policy: ModulePolicy) -> None:
    """Write the portable pickle of ``obj`` to ``file``; raise EncodeError naming what cannot be shipped."""
    try:
        PortablePickler(file, policy).dump(obj)
    except Unshippable as exc:
        raise _portable_error(obj, exc.obj, exc.reason, policy, exc.hint) from None
    except RecursionError:
        raise EncodeError("portable mode cannot serialize this object: it nests too deeply", type_name=type(obj).__qualname__) from None
    except (pickle.PicklingError, TypeError, AttributeError, ValueError) as exc:
        from .._api import is_refusal

        if not is_refusal(exc, (pickle.PicklingError, TypeError, AttributeError, ValueError)):
            raise  # the object's own __reduce__ failed, or a bug: as in the other modes, it goes through
        raise _portable_error(obj, None, f"{type(exc).__name__}: {exc}", policy, None) from exc


def _portable_error(root: Any, culprit: Any, reason: str, policy: ModulePolicy, hint: str | None) -> EncodeError:
    """The EncodeError of portable mode; the culprit is found as for the other backends
    (:func:`~anypickle.analysis._needs.locate` and :func:`~anypickle.analysis._needs.locate_named_type`)."""
    located = None
    if culprit is root:
        located = ("obj", root)
    elif culprit is not None:
        located = locate(root, lambda o: o is culprit, policy)
    else:
        located = locate_named_type(root, reason, policy)
    return EncodeError(
        f"portable mode cannot ship this {type(root).__qualname__} object: {reason}",
        path=located[0] if located else None,
        type_name=type(located[1]).__qualname__ if located else None,
        hint=hint,
    )


def dumps_portable(obj: Any, *, by_value: ModuleNames = (), by_reference: ModuleNames = ()) -> bytes:
    """A plain pickle stream (protocol 5) in which by-value code travels as source."""
    buf = io.BytesIO()
    dump_portable(obj, buf, ModulePolicy(by_value, by_reference))
    return buf.getvalue()


def loads_portable(payload: bytes) -> Any:
    """Load what :func:`dumps_portable` wrote (``pickle.loads`` does the same)."""
    return pickle.loads(payload)


# Payloads name this module's rebuilders as anypickle._portable.*, where they lived before the
# backends/ folder: they keep that name on the wire (anypickle._reducers.WIRE_NAMES).
_reducers.keep_wire_name(globals(), "anypickle._portable")
