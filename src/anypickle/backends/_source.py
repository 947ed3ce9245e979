"""Source extraction for portable mode (sender side): find the text that defines a function or class.

The sender locates the ``def``/``lambda``/``class`` node that produced a code object (via ``linecache``,
which also holds IPython/Jupyter cells) and keeps only that node's text, in a record of plain data that
any Python version unpickles. :mod:`anypickle.backends._recompile` turns a record back into code.
"""

from __future__ import annotations

import __future__
import ast
import linecache
import sys
import types
from functools import lru_cache
from typing import Callable, Iterator

from . import _recompile
from ._recompile import _future_flags

__all__ = [
    "ClassSource",
    "FunctionSource",
    "NoSource",
    "Unshippable",
    "class_source",
    "decorators_source",
    "function_source",
    "function_of",
]

# CO_NESTED marks code compiled inside another function; our factory always nests, the original might not.
_CO_NESTED = 0x10


class NoSource(Exception):
    """The defining source text of a function or class cannot be found (raised on the sender only)."""


class Unshippable(Exception):
    """Raised inside the portable pickler for an object portable mode cannot ship; turned into EncodeError."""

    def __init__(self, obj: object, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.obj = obj
        self.reason = reason
        self.hint = hint


# A record is plain data (str, int, tuples) so that any Python version unpickles it without our classes.
FunctionSource = dict  # keys: kind, name, qualname, text, filename, lineno, freevars, futures
ClassSource = dict  # keys: name, qualname, text, filename, lineno, decorators, bases, keywords, futures, freevars


def future_names(flags: int) -> tuple[str, ...]:
    """The ``from __future__`` features a code object was compiled with, by name.

    Names, not flag bits: the bit values are an implementation detail that may change between versions.
    """
    names = []
    for name in __future__.all_feature_names:
        flag = getattr(__future__, name).compiler_flag
        if flag and flags & flag:
            names.append(name)
    return tuple(names)


@lru_cache(maxsize=64)
def _parse_text(text: str) -> ast.Module:
    return ast.parse(text)


def _file_tree(filename: str, module_globals: dict | None) -> tuple[str, ast.Module]:
    lines = linecache.getlines(filename, module_globals)
    if not lines:
        raise NoSource(f"no source text is available for file {filename!r}")
    text = "".join(lines)
    try:
        return text, _parse_text(text)
    except (SyntaxError, ValueError) as exc:
        raise NoSource(f"the source of {filename!r} does not parse ({exc})") from None


def _first_line(node: ast.AST) -> int:
    """The line CPython records as ``co_firstlineno``: the first decorator's line for a decorated def."""
    decorators = getattr(node, "decorator_list", None)
    return decorators[0].lineno if decorators else node.lineno  # type: ignore[attr-defined]


def _walk_scopes(tree: ast.AST, prefix: str = "") -> Iterator[tuple[ast.AST, str]]:
    """Yield ``(node, qualname)`` for every def, lambda and class.

    The qualname lets the receiver rebuild the enclosing scopes: the compiler mangles ``__private``
    names with the nearest enclosing class, and ``__qualname__`` is derived from the scope chain.
    """
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            name = child.name if not isinstance(child, ast.Lambda) else "<lambda>"
            qualname = prefix + name
            yield child, qualname
            if isinstance(child, ast.ClassDef):
                # Decorators, bases and keywords run in the enclosing scope; only the body is inside.
                for part in child.decorator_list + child.bases + [k.value for k in child.keywords]:
                    yield from _walk_scopes(part, prefix)
                body = ast.Module(body=child.body, type_ignores=[])
                yield from _walk_scopes(body, qualname + ".")
            else:
                outer = child.decorator_list if not isinstance(child, ast.Lambda) else []
                args = child.args
                for part in outer + args.defaults + [d for d in args.kw_defaults if d is not None]:
                    yield from _walk_scopes(part, prefix)
                for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                    if a is not None and a.annotation is not None:
                        yield from _walk_scopes(a.annotation, prefix)
                returns = getattr(child, "returns", None)  # a lambda has none
                if returns is not None:
                    yield from _walk_scopes(returns, prefix)
                body_nodes = child.body if isinstance(child.body, list) else [child.body]
                # A lambda's body is an expression, not a statement: this Module is never compiled, it only
                # holds the body for iter_child_nodes.
                body = ast.Module(body=body_nodes, type_ignores=[])  # type: ignore[arg-type]
                yield from _walk_scopes(body, qualname + ".<locals>.")
        else:
            yield from _walk_scopes(child, prefix)


@lru_cache(maxsize=64)
def _scopes(tree: ast.Module) -> tuple[tuple[ast.AST, str], ...]:
    return tuple(_walk_scopes(tree))


def _segment(text: str, node: ast.AST) -> str:
    segment = ast.get_source_segment(text, node, padded=True)
    if segment is None:  # pragma: no cover - nodes from ast.parse always carry positions
        raise NoSource("the source positions of the definition are missing")
    return segment


def _last_line(node: ast.stmt) -> int:
    if node.end_lineno is None:  # pragma: no cover - nodes from ast.parse always carry positions
        raise NoSource("the source positions of the definition are missing")
    return node.end_lineno


def _compiled(compile_: Callable[[dict], types.CodeType], record: dict) -> types.CodeType:
    try:
        return compile_(record)
    except (LookupError, SyntaxError) as exc:
        raise NoSource(f"the source of {record['qualname']!r} does not compile back into its code ({exc})") from None


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    """True when two code objects compute the same thing (line numbers and CO_NESTED aside)."""
    if (a.co_code, a.co_names, a.co_varnames, a.co_freevars, a.co_cellvars, a.co_argcount,
            a.co_posonlyargcount, a.co_kwonlyargcount, a.co_flags | _CO_NESTED) != (
            b.co_code, b.co_names, b.co_varnames, b.co_freevars, b.co_cellvars, b.co_argcount,
            b.co_posonlyargcount, b.co_kwonlyargcount, b.co_flags | _CO_NESTED):
        return False
    if len(a.co_consts) != len(b.co_consts):
        return False
    for x, y in zip(a.co_consts, b.co_consts):
        if isinstance(x, types.CodeType) and isinstance(y, types.CodeType):
            if not _same_code(x, y):
                return False
        elif type(x) is not type(y) or repr(x) != repr(y):
            return False
    return True


def _positions_inside(code: types.CodeType, node: ast.AST) -> bool:
    """True when every located instruction of ``code`` lies inside ``node`` (3.11+ has columns)."""
    start = (node.lineno, node.col_offset)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
    for line, _end_line, col, _end_col in code.co_positions():  # type: ignore[attr-defined]
        if line is None or col is None:
            continue
        if not start <= (line, col) <= end:
            return False
    return True


def function_source(func: types.FunctionType) -> FunctionSource:
    """The record that lets :func:`compile_function` rebuild ``func.__code__`` on any Python 3.10+.

    Decorators are left out: the record rebuilds the undecorated function, and whatever the decorators
    made of it travels as its own object (a wrapper function, an ``lru_cache`` wrapper...).
    """
    return _locate_function(func)[1]


def decorators_source(func: types.FunctionType) -> dict:
    """The decorator expressions written above the ``def`` of ``func``, outermost first."""
    node, record = _locate_function(func)
    text, _tree = _file_tree(record["filename"], func.__globals__)
    decorators = getattr(node, "decorator_list", [])
    if not decorators:
        raise NoSource(f"{func.__qualname__!r} has no decorators in its source")
    return {
        "qualname": record["qualname"],
        "filename": record["filename"],
        "lineno": decorators[0].lineno,
        "futures": record["futures"],
        "decorators": tuple(ast.get_source_segment(text, d) for d in decorators),
    }


def _locate_function(func: types.FunctionType) -> tuple[ast.AST, FunctionSource]:
    code = func.__code__
    name = code.co_name
    text, tree = _file_tree(code.co_filename, func.__globals__)
    is_lambda = name == "<lambda>"
    candidates: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, str]] = []
    for node, qualname in _scopes(tree):
        if is_lambda:
            if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno:
                candidates.append((node, qualname))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name \
                and _first_line(node) == code.co_firstlineno:
            candidates.append((node, qualname))
    where = f"{code.co_filename}:{code.co_firstlineno}"
    if not candidates:
        raise NoSource(f"no definition of {name!r} at {where} (the file changed since it ran, or the code "
                       "was made by exec/compile from a string that is not kept in linecache)")
    futures = future_names(code.co_flags)
    records = []
    for node, qualname in candidates:
        if is_lambda:
            seg = ast.get_source_segment(text, node)
            lineno = node.lineno
        else:
            seg = _segment(text, node)
            lineno = node.lineno
        records.append((node, {
            "kind": "lambda" if is_lambda else "def",
            "name": name,
            "text": seg,
            "filename": code.co_filename,
            "lineno": lineno,
            "qualname": qualname,
            "freevars": tuple(code.co_freevars),
            "futures": futures,
        }))
    if len(records) == 1:
        node, record = records[0]
        rebuilt = _compiled(_recompile.compile_function, record)
        if rebuilt.co_varnames[:rebuilt.co_argcount] != code.co_varnames[:code.co_argcount]:
            raise NoSource(f"the source of {name!r} at {where} no longer matches its code (edited since it ran?)")
        return node, record
    # Several definitions start on this line (``f = lambda: 1; g = lambda: 2``): keep those that compile
    # to the very same code; if several still match they compute the same thing, and on 3.11+ the
    # instruction columns pick the one that really produced this code.
    same = [(node, r) for node, r in records if _same_code(_compiled(_recompile.compile_function, r), code)]
    if not same:
        raise NoSource(f"none of the {len(records)} definitions on {where} matches the code of {name!r}")
    if len(same) > 1 and hasattr(code, "co_positions"):
        inside = [(node, r) for node, r in same if _positions_inside(code, node)]
        same = inside or same
    return same[0]


def class_source(cls: type) -> ClassSource:
    """The record that lets the receiver rebuild ``cls`` from its ``class`` statement."""
    module = sys.modules.get(cls.__module__)
    module_globals = vars(module) if module is not None else None
    # Methods say which file holds the class (a notebook cell, an exec'd file); machinery-made ones
    # (namedtuple's __new__, dataclass's __init__) say '<string>', which linecache does not know.
    filenames: list[str] = []
    method_lines = []
    for value in vars(cls).values():
        func = function_of(value)
        if func is not None and func.__qualname__.startswith(cls.__qualname__ + "."):
            if func.__code__.co_filename not in filenames:
                filenames.append(func.__code__.co_filename)
            method_lines.append((func.__code__.co_filename, func.__code__.co_firstlineno))
    module_file = getattr(module, "__file__", None)
    if module_file and module_file not in filenames:
        filenames.append(module_file)
    # Last resort, for a class with no method of its own in a notebook: IPython keeps each cell in
    # linecache under a made-up name, newest last; the newest cell defining the class is the one that ran.
    filenames.extend(f for f in reversed(list(linecache.cache)) if _looks_like_a_cell(f) and f not in filenames)
    candidates: list[tuple[ast.ClassDef, str]] = []
    text = filename = ""
    # The methods compiled from a file must appear in the class statement found in that file: that
    # rules out a same-named class of another notebook cell.
    methods = {n: func.__code__.co_filename for n, v in vars(cls).items()
               if (func := function_of(v)) is not None and func.__qualname__ == f"{cls.__qualname__}.{n}"}
    for filename in filenames:
        try:
            text, tree = _file_tree(filename, module_globals)
        except NoSource:
            continue
        own_methods = {n for n, f in methods.items() if f == filename}
        candidates = [(node, qualname) for node, qualname in _scopes(tree)
                      if isinstance(node, ast.ClassDef) and qualname == cls.__qualname__
                      and own_methods <= _defined_names(node)]
        if candidates:
            break
    if not filenames:
        raise NoSource(f"cannot tell which file defines class {cls.__qualname__!r}")
    lines = [ln for f, ln in method_lines if f == filename]
    if len(candidates) > 1:
        first = getattr(cls, "__firstlineno__", None)  # 3.13+ records it
        if first is not None:
            candidates = [c for c in candidates if c[0].lineno == first] or candidates
        elif lines:
            candidates = [c for c in candidates
                          if all(c[0].lineno <= ln <= _last_line(c[0]) for ln in lines)] or candidates
    if not candidates:
        raise NoSource(f"no 'class {cls.__name__}' statement with qualified name {cls.__qualname__!r} in {filename!r}")
    node = candidates[-1][0]  # a redefinition later in the file is the one that ran last
    assert isinstance(node, ast.ClassDef)
    record = {
        "name": node.name,
        "qualname": cls.__qualname__,
        "text": _segment(text, node),
        "filename": filename,
        "lineno": node.lineno,
        "end_lineno": node.end_lineno,
        "decorators": tuple(ast.get_source_segment(text, d) for d in node.decorator_list),
        "bases": tuple(ast.get_source_segment(text, b) for b in node.bases),
        "keywords": tuple((k.arg, ast.get_source_segment(text, k.value)) for k in node.keywords),
        "futures": future_names(_module_futures(tree)),
        # Which names are closure variables of an enclosing function: the methods' closures say. (A
        # name only the class body itself reads from the enclosing function compiles as a global.)
        "freevars": tuple(sorted(_method_freevars(cls, (filename, node.lineno, _last_line(node))) - {"__class__"})),
        # 3.12 ``class C[T]:`` runs inside a type-parameter scope that adds Generic[T] to the bases.
        "type_params": bool(getattr(node, "type_params", None)),
    }
    body = _compiled(_recompile.compile_class_body, record)
    record["freevars"] = tuple(body.co_freevars)
    return record


def _looks_like_a_cell(filename: str) -> bool:
    """IPython names cells ``<ipython-input-3-...>`` (classic) or ``/tmp/ipykernel_<pid>/<hash>.py`` (Jupyter)."""
    return filename.startswith("<ipython-input-") or "ipykernel_" in filename


def _defined_names(node: ast.AST) -> set[str]:
    """Names of the functions a class body defines, also under ``if``/``try`` (not inside nested scopes)."""
    names = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(child.name)
        elif not isinstance(child, (ast.ClassDef, ast.Lambda)):
            names |= _defined_names(child)
    return names


def _method_freevars(cls: type, span: tuple[str, int, int]) -> set[str]:
    """The free variables of the functions written inside the class statement at ``span`` (file, first, last line).

    Only code written there counts: a wrapper that installed code made and named after a method
    (dataclass's ``__repr__`` is reprlib's ``recursive_repr`` closure, qualname ``C.__repr__``) has
    free variables of its own, and treating them as the class's would wrap the body in a function,
    turning the class's own name into a closure variable of that function.
    """
    names: set[str] = set()
    prefix = cls.__qualname__ + "."
    filename, first, last = span
    for value in vars(cls).values():
        func = function_of(value)
        if func is not None and func.__qualname__.startswith(prefix):
            code = func.__code__
            if code.co_filename == filename and first <= code.co_firstlineno <= last:
                names.update(code.co_freevars)
        elif isinstance(value, type) and value.__qualname__.startswith(prefix):
            names |= _method_freevars(value, span)
    return names


def _module_futures(tree: ast.Module) -> int:
    flags = 0
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            flags |= _future_flags(tuple(a.name for a in stmt.names))
    return flags


def function_of(value: object) -> types.FunctionType | None:
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    elif isinstance(value, property):
        value = value.fget
    return value if isinstance(value, types.FunctionType) else None
