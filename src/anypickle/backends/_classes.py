"""Portable classes: rebuild a class by running its ``class`` statement's body on the receiver.

The sender ships the source of the class statement; the receiver compiles the body, evaluates the
bases, keywords (``metaclass=``) and decorators from their source, and calls ``__build_class__`` as the
``class`` statement itself would. So whatever the class machinery does at definition time happens
again on the receiver, under its own Python version: ``@dataclass`` writes ``__init__`` anew, Enum,
NamedTuple, ABCs and metaclasses build their internals themselves, ``__slots__`` makes its descriptors.
Classes without source (made by ``type()``) are rebuilt from their ``__dict__`` instead.
"""

from __future__ import annotations

import abc
import builtins
import collections
import enum
import sys
import types
from typing import Any, Iterable, Protocol

from . import _recompile, _source
from ..analysis._modules import is_installed_module
from ._source import NoSource, Unshippable
from .. import _reducers

__all__ = ["class_reduce"]

_MISSING = object()
# Attributes the class machinery writes for itself; never copied from the sender's class.
_SKIP_NAMES = frozenset({"__dict__", "__weakref__", "_abc_impl"})


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name[:2] == name[-2:] == "__"


def _methods(cls: type) -> list[types.FunctionType]:
    """The functions the class statement of ``cls`` defined (not inherited or machinery-made ones)."""
    found = []
    prefix = cls.__qualname__ + "."
    for value in vars(cls).values():
        func = _source.function_of(value)
        if func is not None:
            if func.__qualname__.startswith(prefix):
                found.append(func)
        elif isinstance(value, type) and value.__qualname__.startswith(cls.__qualname__ + "."):
            found.extend(_methods(value))
    return found


def _closure_cells(cls: type, freevars: tuple[str, ...]) -> dict[str, types.CellType]:
    """The cells the class body closed over, found in the closures of its methods."""
    cells: dict[str, types.CellType] = {}
    for func in _methods(cls):
        for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
            if name in freevars:
                cells.setdefault(name, cell)
    return cells


def _defined_by_source(cls: type, name: str, value: object, span: tuple | None) -> bool:
    """True when running the class statement again (body, decorators, metaclass) recreates ``name``.

    A function is recreated when its qualname is ``<class qualname>.<name>`` (a method, or one the class
    machinery wrote, like dataclass's ``__init__``), or when it is a lambda written inside the class
    statement (``span`` is its file and line range). An alias (``m = other`` in the body, or
    ``C.m = C.other`` afterwards: the two look the same) travels as an extra attribute, as a reference
    to the rebuilt ``C.other``.
    """
    prefix = cls.__qualname__ + "."
    func = _source.function_of(value)
    if func is not None:
        if func.__qualname__ == prefix + name:
            return True
        if func.__qualname__ != prefix + "<lambda>" or span is None:
            return False
        code = func.__code__
        return code.co_filename == span[0] and span[1] <= code.co_firstlineno <= span[2]
    if isinstance(value, type):
        return value.__qualname__.startswith(prefix)
    if isinstance(value, (staticmethod, classmethod, property)):
        return True  # wraps something that is not a Python function (a builtin): made by the body
    # Other descriptors (slot members, namedtuple field getters, cached_property...) are made by the
    # class body or by the class machinery, which run again on the receiver.
    return hasattr(type(value), "__get__")


def _extras(cls: type, span: tuple | None = None) -> dict[str, Any]:
    """Class attributes that may have changed since the class statement ran (``C.count = 3``, patches)."""
    if isinstance(cls, enum.EnumMeta):
        return {}  # members are the class's own instances, re-made by the body; Enum forbids reassignment
    return {name: value for name, value in vars(cls).items()
            if name not in _SKIP_NAMES and not _defined_by_source(cls, name, value, span)
            and (not _is_dunder(name) or _patched_dunder_method(value))}


def _patched_dunder_method(value: object) -> bool:
    """True for a dunder method the user assigned after the class statement.

    Data dunders (``__slots__``, ``__dataclass_fields__``, ``__match_args__``...) and dunder methods
    from installed code (``dataclasses._replace`` as ``__replace__`` on 3.13, ``functools.total_ordering``'s
    comparisons) are written by the class machinery, which runs again on the receiver, in its own version.
    """
    func = _source.function_of(value)
    return func is not None and not is_installed_module(func.__module__ or "__main__")


class ClassPickler(Protocol):
    """What :func:`class_reduce` asks of the portable pickler (:class:`anypickle.backends._portable.PortablePickler`)."""

    def _namespace_of(self, globals_dict: dict) -> object: ...
    def _namespace_by_value(self, ref: object) -> bool: ...
    def _globals_for(self, names: Iterable[str], attr_names: Iterable[str], globals_dict: dict) -> tuple[dict, list]: ...
    def _goes_by_value(self, obj: Any) -> bool: ...


def class_reduce(pickler: ClassPickler, cls: type) -> tuple[str, tuple, dict | None]:
    """How to rebuild ``cls`` by value: ``(kind, args, state)``, where ``kind`` names the portable rebuilder
    (``"source"``: run the class statement again; ``"namedtuple"``, ``"functional_enum"``, ``"dynamic"``:
    classes with no ``class`` statement) that ``args`` are passed to, and ``state`` (None: none) is set on
    the rebuilt class by :func:`set_state`. Raises :class:`Unshippable` for what portable cannot ship.
    """
    try:
        record = _source.class_source(cls)
    except NoSource:
        if issubclass(cls, tuple) and hasattr(cls, "_fields") and hasattr(cls, "_make"):
            return _namedtuple_reduce(cls)
        if isinstance(cls, enum.EnumMeta):
            return _functional_enum_reduce(cls)
        return _dynamic_class_reduce(cls)
    methods = _methods(cls)
    module = sys.modules.get(cls.__module__)
    own = [m.__globals__ for m in methods if m.__globals__.get("__name__") == cls.__module__]
    if own:
        globals_dict = own[0]  # the globals the class statement ran in (a module, or an exec namespace)
    elif module is not None:
        globals_dict = vars(module)
    elif methods:
        globals_dict = methods[0].__globals__
    else:
        globals_dict = {"__name__": cls.__module__}
    namespace = pickler._namespace_of(globals_dict)
    body = _recompile.compile_class_body(record)
    cells = _closure_cells(cls, tuple(record["freevars"]))
    if record.get("type_params"):
        # The type-parameter scope's variables (.type_params, T...) are not in any method's closure.
        params = getattr(cls, "__type_params__", ())
        for name in record["freevars"]:
            if name not in cells:
                value = params if name == ".type_params" else next((p for p in params if p.__name__ == name), None)
                if value is not None:
                    cells[name] = types.CellType(value)

    expressions = [(text, "decorator", i) for i, text in enumerate(record["decorators"])]
    expressions += [(text, "base", i) for i, text in enumerate(record["bases"])]
    expressions += [(text, "keyword", key) for key, text in record["keywords"]]
    expression_names: set[str] = set()
    expression_attrs: set[str] = set()
    expr_locals: dict[str, Any] = {}
    for text, role, where in expressions:
        expression = _recompile.compile_expression(text.lstrip("*"), record)
        expression_attrs |= _recompile.code_names(expression)
        expression_names |= _recompile.global_names(expression)
        for name in _recompile.global_names(expression):
            if name in globals_dict or hasattr(builtins, name) or name in cells or name in expr_locals:
                continue
            # A local variable of the enclosing function (``class C(base)`` inside ``make(base)``): its
            # value survives in the class itself when the expression is nothing but that name.
            if role == "base" and text == name and len(record["bases"]) == len(cls.__bases__):
                expr_locals[name] = cls.__bases__[where]
            elif role == "keyword" and where == "metaclass" and text == name:
                expr_locals[name] = type(cls)
            else:
                raise Unshippable(cls, f"the {role} {text!r} of class {cls.__qualname__!r} reads the local variable "
                                        f"{name!r} of the function that defined the class; its value is lost")
    by_value = pickler._namespace_by_value(namespace)
    construct = _recompile.construction_names(body) | expression_names
    unresolved = sorted(n for n in construct - _recompile.stored_names(body) - expression_names
                        if n not in globals_dict and not hasattr(builtins, n))
    if unresolved and "<locals>" in cls.__qualname__:
        raise Unshippable(cls, f"the body of class {cls.__qualname__!r} reads {', '.join(map(repr, unresolved))}, a "
                                "local variable of the function that defined the class that no method closes "
                                "over: its value is lost", hint="pass the value as a class attribute or a default")
    if by_value:
        attrs = _recompile.code_names(body) | expression_attrs
        found, module_attrs = pickler._globals_for(construct, attrs, globals_dict)
        late, late_attrs = pickler._globals_for(_recompile.global_names(body) - construct, attrs, globals_dict)
    else:
        found, module_attrs, late, late_attrs = {}, [], {}, []
    state = {
        "namespace": namespace,
        "globals": late,
        "module_attrs": late_attrs,
        "qualname": cls.__qualname__,
        "module": cls.__module__,
        "extras": _extras(cls, (record["filename"], record["lineno"], record["end_lineno"])),
    }
    registered = virtual_subclasses(cls)
    if registered:
        state["registered"] = registered
    args: tuple = (record, namespace, cells, found, module_attrs, expr_locals)
    quiet = tuple(b for b in cls.__mro__[1:-1] if "__init_subclass__" in vars(b) and pickler._goes_by_value(b))
    if quiet:
        args += (quiet,)
    return "source", args, state


def attribute_state(cls: type) -> dict:
    """The state of a class rebuilt by its owner's class statement: only what changed since."""
    state: dict[str, Any] = {"namespace": None, "globals": {}, "module_attrs": [], "qualname": cls.__qualname__,
                             "module": cls.__module__, "extras": _extras(cls)}
    registered = virtual_subclasses(cls)
    if registered:
        state["registered"] = registered
    return state


def virtual_subclasses(cls: type) -> list[type]:
    """The classes ``cls.register(...)`` made virtual subclasses of an ABC (the class statement does not)."""
    if not isinstance(cls, abc.ABCMeta):
        return []
    try:
        import _abc  # type: ignore[import-not-found]  # CPython's C implementation of abc, no stubs

        refs = _abc._get_dump(cls)[0]
    except (ImportError, AttributeError, TypeError):  # the pure-Python _py_abc
        refs = getattr(cls, "_abc_registry", ())
    found = [r() for r in refs]
    return sorted((c for c in found if isinstance(c, type)), key=lambda c: (c.__module__, c.__qualname__))


def _namedtuple_reduce(cls: type) -> tuple[str, tuple, dict]:
    defaults = tuple(cls._field_defaults[f] for f in cls._fields if f in cls._field_defaults)  # type: ignore[attr-defined]
    state: dict[str, Any] = {"namespace": None, "globals": {}, "module_attrs": [], "qualname": cls.__qualname__,
                             "module": cls.__module__, "extras": _extras(cls)}
    return "namedtuple", (cls.__name__, tuple(cls._fields), defaults), state  # type: ignore[attr-defined]


def _functional_enum_reduce(cls: type) -> tuple[str, tuple, None]:
    base = next(b for b in cls.__mro__[1:] if isinstance(b, enum.EnumMeta))
    members = tuple((m.name, m._value_) for m in cls)  # type: ignore[attr-defined]
    return "functional_enum", (base, cls.__name__, members, cls.__module__, cls.__qualname__), None


def _dynamic_class_reduce(cls: type) -> tuple[str, tuple, dict]:
    """A class with no ``class`` statement (``type(name, bases, ns)``): rebuild it from its ``__dict__``."""
    attrs = dict(vars(cls))
    slots = attrs.get("__slots__")
    if isinstance(slots, str):
        slots = (slots,)
    if slots:
        for name in slots:
            attrs.pop(name, None)
    construct: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    if slots is not None:
        construct["__slots__"] = tuple(slots)
    extras = {k: v for k, v in attrs.items() if k not in _SKIP_NAMES and k not in construct and k != "__slots__"
              and not isinstance(v, (types.MemberDescriptorType, types.GetSetDescriptorType))}
    state: dict[str, Any] = {"namespace": None, "globals": {}, "module_attrs": [], "qualname": cls.__qualname__,
                             "module": cls.__module__, "extras": extras}
    return "dynamic", (type(cls), cls.__name__, cls.__bases__, construct), state


def rebuild_from_source(record: dict, globals_dict: dict, cells: dict, expr_locals: dict, quiet: tuple = ()) -> type:
    body = _recompile.compile_class_body(record)
    closure = tuple(cells[n] if n in cells else types.CellType() for n in body.co_freevars)
    local_values = dict(expr_locals)
    for name, cell in cells.items():
        try:
            local_values.setdefault(name, cell.cell_contents)
        except ValueError:
            pass

    def value(text: str) -> Any:
        return _recompile.evaluate(text, record, globals_dict, local_values)

    bases: list[Any] = []
    for text in record["bases"]:
        if text.startswith("*"):
            bases.extend(value(text[1:]))
        else:
            bases.append(value(text))
    keywords: dict[str, Any] = {}
    for key, text in record["keywords"]:
        if key is None:
            keywords.update(value(text))
        else:
            keywords[key] = value(text)
    if record.get("type_params") and ".type_params" in cells:
        import typing

        params = cells[".type_params"].cell_contents
        if not any(getattr(b, "__origin__", None) is typing.Generic for b in bases):
            # What the 3.12 type-parameter scope adds; mypy only knows Generic subscripted with type variables.
            bases.append(typing.Generic[params])  # type: ignore[index]
    body_function = types.FunctionType(body, globals_dict, record["name"], None, closure or None)
    with _reducers.quiet_subclass_hooks(quiet):  # by-value bases' __init_subclass__ ran on the sender: its effects travel
        cls = builtins.__build_class__(body_function, record["name"], *bases, **keywords)
    for text in reversed(record["decorators"]):
        cls = value(text)(cls)
    return cls


def set_state(cls: type, state: dict) -> None:
    namespace = state["namespace"]
    if namespace is not None:
        (namespace if isinstance(namespace, dict) else vars(namespace)).update(state["globals"])
    for module, attrs in state["module_attrs"]:
        vars(module).update(attrs)
    if cls.__qualname__ != state["qualname"]:
        cls.__qualname__ = state["qualname"]
    if cls.__module__ != state["module"]:
        cls.__module__ = state["module"]
    for name, new in state["extras"].items():
        current = vars(cls).get(name, _MISSING)
        try:
            same = current is new or bool(current == new)
        except Exception:  # noqa: BLE001 - arbitrary __eq__ (numpy arrays...): treat as changed
            same = False
        if not same:
            setattr(cls, name, new)
    for subclass in state.get("registered", ()):
        cls.register(subclass)  # type: ignore[attr-defined]  # an ABCMeta class: virtual_subclasses checked


def namedtuple_class(name: str, fields: tuple, defaults: tuple) -> type:
    return collections.namedtuple(name, fields, defaults=defaults or None)
