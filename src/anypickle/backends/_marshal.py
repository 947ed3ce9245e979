"""marshal + ``types.FunctionType``: the cheapest way to ship one plain function by value.

The payload is one ``marshal`` record: the code object, the function's attributes, and each
global the code uses, encoded as a tagged value:

* ``("v", value)``: plain data marshal can carry (numbers, strings, bytes, tuples, lists, dicts, sets);
* ``("m", "xml", "xml.dom", ...)``: a module, imported on the receiver with the submodules the code uses;
* ``("r", "json", "dumps")``: an installed function or class, imported by module and qualname;
* ``("s",)``: the function itself (a recursive function).

Anything else (another by-value function, an instance, a class defined in ``__main__``) is
refused with :class:`CannotMarshal`; auto then moves on to cloudpickle.
"""

from __future__ import annotations

import builtins
import importlib
import marshal
import sys
import types
from typing import TYPE_CHECKING, Any

from ._id import Backend
from ..analysis._modules import ModulePolicy
from ..analysis._needs import code_globals, definition_need, imported_by_value

if TYPE_CHECKING:
    from ._lines import LineCollector
    from . import Writer

_FORMAT = "anypickle-marshal-1"
# marshal format 2: no back-references. Formats 3 and 4 mark an object as shared whenever its reference
# count exceeds one, a fact about the sender's heap (interned strings held elsewhere), so equal functions
# got different bytes, and a function loaded back re-dumped differently. Format 2 writes equal bytes for
# equal functions (sets are written sorted), at ~20% more bytes. Every format loads (old payloads too);
# the code object format itself is per-version.
_VERSION = 2


class CannotMarshal(TypeError):
    """The object is not a function marshal can carry whole."""

    anypickle_refusal = True  # a documented refusal: auto moves on to cloudpickle


class MarshalBackend:
    """Functions as marshalled code objects, rebuilt with ``types.FunctionType``."""

    id = Backend.MARSHAL
    name = "marshal"
    carries_code = True
    library_version: str | None = None
    dump_errors: tuple[type[BaseException], ...] = (CannotMarshal,)

    def dump(
        self, obj: Any, file: Writer, policy: ModulePolicy, *, persistent_id: Any = None,
        buffer_callback: Any = None, lines: LineCollector | None = None,
    ) -> None:
        if persistent_id is not None:
            raise CannotMarshal("marshal cannot write references to the receiver's context")
        file.write(marshal.dumps(encode_function(obj, policy), _VERSION))
        if lines is not None:
            lines.add(obj.__code__)

    def loads(self, payload: memoryview, *, buffers: Any = None, persistent_load: Any = None) -> Any:
        # marshal carries neither buffers (its BUFFERS table is empty) nor persistent ids.
        return decode_function(marshal.loads(payload))


def encode_function(func: Any, policy: ModulePolicy) -> tuple[Any, ...]:
    """The marshal record of ``func``, or :class:`CannotMarshal` saying what it cannot carry."""
    if type(func) is not types.FunctionType:
        raise CannotMarshal(f"marshal ships plain functions only, not {type(func).__qualname__} objects")
    name = func.__qualname__

    def value(v: Any, where: str) -> tuple[Any, ...]:
        if v is func:
            return ("s",)
        if isinstance(v, types.ModuleType):
            if policy.module_by_value(v):
                raise CannotMarshal(f"{name}: {where} is module {v.__name__!r}, which must travel by value")
            # A receiver that imports ``xml`` has not imported ``xml.dom.minidom``: name the
            # submodules the code reaches through attributes too, as cloudpickle does.
            if not hasattr(v, "__path__"):  # not a package: no submodules (skips a scan of sys.modules)
                return ("m", v.__name__)
            return ("m", v.__name__, *used_submodules(v.__name__, code_names))
        if isinstance(v, (types.FunctionType, type, types.BuiltinFunctionType)):
            if isinstance(v, types.BuiltinFunctionType) or definition_need(v, policy) is None:
                module = getattr(v, "__module__", None)
                if module is not None:
                    return ("r", module, v.__qualname__)
            raise CannotMarshal(f"{name}: {where} ({v.__qualname__}) must itself travel by value")
        if not _plain(v):
            raise CannotMarshal(f"{name}: {where} is a {type(v).__qualname__}, which marshal cannot carry")
        return ("v", v)

    imported = imported_by_value(func, policy)
    if imported:
        raise CannotMarshal(f"{name}: its body imports module {imported[-1][0]!r}, which must travel by value")
    code_names = frozenset(code_globals(func.__code__))
    closure = None
    if func.__closure__ is not None:
        cells = []
        for var, cell in zip(func.__code__.co_freevars, func.__closure__):
            try:
                contents = cell.cell_contents
            except ValueError:
                raise CannotMarshal(f"{name}: closure variable {var!r} is not assigned yet") from None
            cells.append(value(contents, f"closure variable {var!r}"))
        closure = tuple(cells)
    g = func.__globals__
    used = {}
    for gname in dict.fromkeys(code_globals(func.__code__)):
        if gname in g:
            used[gname] = value(g[gname], f"global {gname!r}")
    defaults = None if func.__defaults__ is None else tuple(
        value(v, f"default {i}") for i, v in enumerate(func.__defaults__))
    kwdefaults = None if func.__kwdefaults__ is None else {
        k: value(v, f"keyword default {k!r}") for k, v in func.__kwdefaults__.items()}
    annotations = {k: value(v, f"annotation {k!r}") for k, v in func.__annotations__.items()}
    if vars(func):
        raise CannotMarshal(f"{name}: function attributes {sorted(vars(func))} are not carried")
    return (_FORMAT, func.__code__, func.__name__, func.__qualname__, func.__module__, func.__doc__,
            defaults, kwdefaults, closure, used, annotations)


def used_submodules(package: str, code_names: frozenset) -> list:
    """Imported submodules ``package.a.b`` whose every part ``a``, ``b`` the code names."""
    prefix = package + "."
    return sorted(name for name in list(sys.modules)
                  if name.startswith(prefix) and set(name[len(prefix):].split(".")) <= code_names)


def _plain(v: Any) -> bool:
    t = type(v)
    if v is None or t in (bool, int, float, complex, str, bytes):
        return True
    if t in (tuple, list, set, frozenset):
        return all(_plain(x) for x in v)
    if t is dict:
        return all(_plain(k) and _plain(x) for k, x in v.items())
    return False


def _import(name: str) -> Any:
    # sys.modules first: import_module costs microseconds even for a module already imported.
    module = sys.modules.get(name)
    return module if module is not None else importlib.import_module(name)


def decode_function(record: Any) -> types.FunctionType:
    """Rebuild the function of a record made by :func:`encode_function`."""
    if not (isinstance(record, tuple) and len(record) == 11 and record[0] == _FORMAT):
        raise ValueError("not an anypickle marshal record")
    _, code, name, qualname, module, doc, defaults, kwdefaults, closure, used, annotations = record
    if not isinstance(code, types.CodeType):
        raise ValueError("marshal record holds no code object")
    namespace: dict[str, Any] = {"__name__": module, "__builtins__": builtins}
    cells = None if closure is None else tuple(types.CellType() for _ in closure)
    func = types.FunctionType(code, namespace, name, None, cells)

    def value(tagged: tuple[Any, ...]) -> Any:
        tag = tagged[0]
        if tag == "v":
            return tagged[1]
        if tag == "s":
            return func
        if tag == "m":
            for submodule in tagged[2:]:
                _import(submodule)
            return _import(tagged[1])
        if tag == "r":
            obj: Any = _import(tagged[1])
            for part in tagged[2].split("."):
                obj = getattr(obj, part)
            return obj
        raise ValueError(f"unknown marshal value tag {tag!r}")

    for cell, tagged in zip(cells or (), closure or ()):
        cell.cell_contents = value(tagged)
    namespace.update({k: value(v) for k, v in used.items()})
    func.__defaults__ = None if defaults is None else tuple(value(v) for v in defaults)
    func.__kwdefaults__ = None if kwdefaults is None else {k: value(v) for k, v in kwdefaults.items()}
    func.__annotations__ = {k: value(v) for k, v in annotations.items()}
    func.__qualname__ = qualname
    func.__doc__ = doc
    return func
