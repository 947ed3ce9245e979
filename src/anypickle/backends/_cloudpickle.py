"""cloudpickle, raw when forced, and :class:`AnyPickler` (cloudpickle plus fixes) for auto."""

from __future__ import annotations

import types
import typing
from typing import TYPE_CHECKING, Any

import cloudpickle
from cloudpickle import cloudpickle as _cp

from .. import _reducers
from . import PicklerBackend
from ._id import Backend
from ..analysis._modules import MAIN_NAMES, ModulePolicy
from ..analysis._needs import (
    FILE_TYPES,
    LOCK_TYPES,
    _LRU_WRAPPER,
    definition_need,
    patched_attributes,
    _plain_instance_types,
    exception_needs_own_reducer,
    gap_reduce,
    has_gap,
    code_imports,
    imported_by_value,
    refuse_unshippable,
)

if TYPE_CHECKING:
    from ._lines import LineCollector
    from . import Writer

PROTOCOL = 5
# Position of co_filename among types.CodeType's constructor arguments (3.8 to 3.14).
_CO_FILENAME = 10
# Types whose instances AnyPickler.reducer_override never handles itself (not a function, class,
# cell, module, TypeVar, lock, memoryview...): a fact about the type alone, so it is cached across calls.
_passthrough_types: set[type] = set()


class AnyPickler(cloudpickle.Pickler):
    """cloudpickle's pickler with a per-call module policy and the fixes cloudpickle lacks.

    * Local modules (neither stdlib nor installed) go by value without touching cloudpickle's global
      ``register_pickle_by_value`` registry, so concurrent calls and threads cannot leak into each other.
    * Closure cells travel as shared objects: two closures over one cell still share it after loading
      (cloudpickle gives each function its own copy, so a ``nonlocal`` rebind in one is lost in the other).
    * Nested classes keep their ``__qualname__`` (cloudpickle rebuilds ``Outer.Inner`` as ``Inner``).
    * Locks are rebuilt in the same state; installed classes patched with by-value code get the patch
      re-applied on the receiver.
    """

    def __init__(
        self, file: Writer, policy: ModulePolicy, protocol: int = PROTOCOL, buffer_callback: Any = None,
        lines: LineCollector | None = None,
    ) -> None:
        super().__init__(file, protocol=protocol, buffer_callback=buffer_callback)
        self._policy = policy
        self._plain = _plain_instance_types if policy.is_default else ()
        self._function_cells: set[int] = set()  # closure cells of functions written: filled by their state
        self._lines = lines
        # Per code object (1k lambdas share one): what FunctionType derives from it, and whether its
        # body imports anything (see _dynamic_function_reduce).
        self._derived: dict[int, tuple[types.CodeType, str, str, str | None, bool]] = {}

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        if t is types.FunctionType:  # first: the hot path of code (1k lambdas, every method of a class)
            if obj.__module__ not in MAIN_NAMES and definition_need(obj, self._policy) is None:
                return NotImplemented  # (a __main__ function always goes by value: no need to ask)
            if obj.__dict__ and _reducers.is_singledispatch(obj):  # (most functions: an empty __dict__)
                return _reducers.reduce_singledispatch(obj)
            return self._dynamic_function_reduce(obj)
        if t is types.CodeType:
            return self._code_reduce(obj)
        if t is memoryview:
            # cloudpickle turns a memoryview into bytes: the receiver would get another type.
            # (Checked first: the probe pass may have cached memoryview as a plain type.)
            return _reducers.reduce_memoryview(obj)
        if t in _passthrough_types or t in self._plain:
            return NotImplemented
        if has_gap(t):  # objects every serializer gets silently wrong (dict views, descriptors...)
            return gap_reduce(obj, self)
        if t in FILE_TYPES:
            refuse_unshippable(obj)  # cloudpickle refuses a file open for writing; dill would truncate it
        if t is _LRU_WRAPPER:
            if definition_need(obj, self._policy) is None:
                return NotImplemented
            return _reducers.reduce_lru_cache(obj)
        # mypy refuses a class as lru_cache's Hashable argument (python/mypy#20409).
        if isinstance(obj, BaseException) and exception_needs_own_reducer(t):  # type: ignore[arg-type]
            return _reducers.reduce_exception(obj)
        if issubclass(t, type):
            return self._class_reduce(obj)
        if t is types.CellType:
            # An empty cell, memoized by identity; set_function_state fills it once every function
            # that uses it exists (see _dynamic_function_reduce). A cell met on its own, outside any
            # function's closure, carries its value as its state (else it would arrive empty).
            if id(obj) in self._function_cells:
                return _cp._make_empty_cell, ()
            value = _cell_value(obj)
            if value is _reducers.EmptyCell:
                return _cp._make_empty_cell, ()
            return _cp._make_empty_cell, (), value, None, None, _reducers.set_cell
        if t is typing.NewType and self._policy.goes_by_value(obj.__module__):
            return _reducers.make_newtype, (obj.__name__, obj.__supertype__, obj.__module__)
        if t is types.ModuleType:
            return self._module_reduce(obj)
        if t is typing.TypeVar and self._policy.goes_by_value(obj.__module__):
            # cloudpickle decides by its global registry, which never names local modules
            return _cp._make_typevar, _cp._decompose_typevar(obj)
        if t in LOCK_TYPES:
            return _reducers.reduce_lock(obj)
        if t is not typing.TypeVar and t is not typing.NewType and t not in FILE_TYPES:  # every other type handled above returned already
            _passthrough_types.add(t)
        return NotImplemented

    def _dynamic_function_reduce(self, func: types.FunctionType) -> Any:
        state, slotstate = _cp._function_getstate(func)
        # A new FunctionType already has these defaults: leaving them out makes 1k lambdas
        # ~12 bytes each smaller than cloudpickle's payload (__doc__ stays: 3.11+ may take a
        # lambda's first string constant as its docstring).
        if slotstate["__defaults__"] is None:
            del slotstate["__defaults__"]
        if slotstate["__kwdefaults__"] is None:
            del slotstate["__kwdefaults__"]
        if not slotstate["__annotations__"]:
            del slotstate["__annotations__"]
        # Nor the name, qualname and doc the receiver's FunctionType derives from the code itself
        # (the same Python version: the envelope guarantees it). Asked of a real FunctionType, so the
        # rule is the interpreter's own (3.11 takes __qualname__ from co_qualname, 3.10 from co_name).
        code = func.__code__
        derived = self._derived.get(id(code))
        if derived is None or derived[0] is not code:
            fresh = _fresh_function(code)
            derived = self._derived[id(code)] = (code, fresh.__name__, fresh.__qualname__, fresh.__doc__,
                                                 bool(code_imports(code)))
        if slotstate["__name__"] == derived[1]:
            del slotstate["__name__"]
        if slotstate["__qualname__"] == derived[2]:
            del slotstate["__qualname__"]
        if slotstate["__doc__"] == derived[3]:
            del slotstate["__doc__"]
        # Local modules its body imports when it runs (from .kernels import f): the receiver lacks
        # them, so they travel by value and are registered under their names before it can run.
        modules = imported_by_value(func, self._policy) if derived[4] else []
        if func.__closure__ is None and not modules:  # no cells to share: cloudpickle's own reconstruction
            return (_cp._make_function, self._function_getnewargs(func), (state, slotstate),
                    None, None, _cp._function_setstate)
        code, base_globals, _, _, _ = self._function_getnewargs(func)
        cells = func.__closure__
        values = None
        if cells is not None:
            self._function_cells.update(id(c) for c in cells)  # func keeps them alive for the whole dump
            slotstate["__closure__"] = None  # the cells themselves travel in the constructor arguments
            values = tuple(_cell_value(c) for c in cells)
        return (
            _cp._make_function,
            (code, base_globals, None, None, cells),
            (state, slotstate, values) if not modules else (state, slotstate, values, modules),
            None,
            None,
            _reducers.set_function_state,
        )

    def _code_reduce(self, code: types.CodeType) -> Any:
        """cloudpickle's reduction of a code object, with the code's own file name.

        cloudpickle 3.1.3 writes ``"<dynamic-code>"`` instead (for byte-identical payloads wherever a
        script lives): tracebacks on the receiver then name no file, and its lines cannot be found.
        """
        if self._lines is not None:
            self._lines.add(code)
        rv = _cp._code_reduce(code)
        args = rv[1]
        if args[_CO_FILENAME] != code.co_filename and args[_CO_FILENAME] == "<dynamic-code>":
            rv = (rv[0], (*args[:_CO_FILENAME], code.co_filename, *args[_CO_FILENAME + 1:]), *rv[2:])
        return rv

    def _class_reduce(self, obj: type) -> Any:
        if definition_need(obj, self._policy) is None:
            patched = patched_attributes(obj, self._policy)
            if patched:
                return _reducers.reduce_patched_class(obj, patched)
            return _cp._class_reduce(obj)
        rv = _cp._dynamic_class_reduce(obj)
        # cloudpickle rebuilds the class with __name__ only; keep the full dotted name of nested classes.
        if obj.__qualname__ != obj.__name__:  # the skeleton class already has qualname == name
            rv[2][0]["__qualname__"] = obj.__qualname__
        if "__slots__" in vars(obj) and typing.NamedTuple not in getattr(obj, "__orig_bases__", ()):
            # cloudpickle sets __slots__ after creating the class, where it creates no slots: the
            # rebuilt instances would get a __dict__. Slots only exist if passed to type() itself.
            # (typing.NamedTuple's base refuses a __slots__ entry and makes its own.)
            rv[1][3]["__slots__"] = obj.__slots__  # type: ignore[attr-defined]  # in vars(obj): checked above
        # Creating the class again runs __init_subclass__ of its bases; those shipped by value carry the
        # hook's effects already (a registry holding this very class): silence them while it is made.
        quiet = tuple(b for b in obj.__mro__[1:-1]
                      if "__init_subclass__" in vars(b) and definition_need(b, self._policy) is not None)
        if quiet:
            rv = (_reducers.make_class_quietly, (rv[0], rv[1], quiet)) + tuple(rv[2:])
        return rv

    def _module_reduce(self, module: types.ModuleType) -> Any:
        name = module.__name__
        if name in MAIN_NAMES or not self._policy.module_by_value(module):
            return _cp.subimport, (name,)
        state = dict(vars(module))
        state.pop("__builtins__", None)
        return _cp.dynamic_subimport, (name, state)


def _fresh_function(code: types.CodeType) -> types.FunctionType:
    """The function ``types.FunctionType`` makes of ``code`` with nothing else given (as cloudpickle's
    ``_make_function`` does on the receiver)."""
    cells = tuple(types.CellType() for _ in code.co_freevars) if code.co_freevars else None
    return types.FunctionType(code, {}, None, None, cells)


def _cell_value(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # the enclosing scope has not assigned the name yet
        return _reducers.EmptyCell


class CloudpickleBackend(PicklerBackend):
    """Raw ``cloudpickle.Pickler``: what ``backend="cloudpickle"`` forces. Its payloads are plain pickle
    streams: the stdlib unpickler reads them."""

    id = Backend.CLOUDPICKLE
    name = "cloudpickle"
    library_version: str | None = cloudpickle.__version__

    def make_pickler(
        self, file: Writer, policy: ModulePolicy, *, buffer_callback: Any, lines: LineCollector | None,
    ) -> Any:
        return cloudpickle.Pickler(file, protocol=PROTOCOL, buffer_callback=buffer_callback)


class AnyCloudpickleBackend(CloudpickleBackend):
    """cloudpickle as auto picks it: anypickle's :class:`AnyPickler`, read back by the same unpickler."""

    name = "cloudpickle+anypickle"

    def make_pickler(
        self, file: Writer, policy: ModulePolicy, *, buffer_callback: Any, lines: LineCollector | None,
    ) -> Any:
        return AnyPickler(file, policy, buffer_callback=buffer_callback, lines=lines)
