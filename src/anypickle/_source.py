"""Source extraction for portable mode: find the text that defines a function or class, compile it back.

Both sides use this module. The sender locates the ``def``/``lambda``/``class`` node that produced a code
object (via ``linecache``, which also holds IPython/Jupyter cells) and keeps only that node's text. The
receiver parses the text and wraps it in a synthetic *factory* function whose parameters are the original
free variables, so the compiler emits the same closure-variable accesses (LOAD_DEREF) as in the original;
then it digs the inner code object out of the factory's constants and builds the function or class
around it with the sender's (pickled) cells.
"""

from __future__ import annotations

import __future__
import ast
import linecache
import sys
import types
from functools import lru_cache
from typing import Any, Iterator

__all__ = [
    "ClassSource",
    "FunctionSource",
    "NoSource",
    "class_source",
    "compile_class_body",
    "compile_expression",
    "compile_function",
    "function_source",
]

FACTORY = "__anypickle_factory__"
# CO_NESTED marks code compiled inside another function; our factory always nests, the original might not.
_CO_NESTED = 0x10
_HAS_TYPE_PARAMS = sys.version_info >= (3, 12)


class NoSource(Exception):
    """The defining source text of a function or class cannot be found (raised on the sender only)."""


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


def _future_flags(names: tuple[str, ...]) -> int:
    flags = 0
    for name in names:
        feature = getattr(__future__, name, None)
        if feature is not None:
            flags |= feature.compiler_flag
    return flags


# --------------------------------------------------------------------------------------------- sender


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
                if getattr(child, "returns", None) is not None:
                    yield from _walk_scopes(child.returns, prefix)
                body_nodes = child.body if isinstance(child.body, list) else [child.body]
                yield from _walk_scopes(ast.Module(body=body_nodes, type_ignores=[]), qualname + ".<locals>.")
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
    candidates = []
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
        rebuilt = compile_function(record)
        if rebuilt.co_varnames[:rebuilt.co_argcount] != code.co_varnames[:code.co_argcount]:
            raise NoSource(f"the source of {name!r} at {where} no longer matches its code (edited since it ran?)")
        return node, record
    # Several definitions start on this line (``f = lambda: 1; g = lambda: 2``): keep those that compile
    # to the very same code; if several still match they compute the same thing, and on 3.11+ the
    # instruction columns pick the one that really produced this code.
    same = [(node, r) for node, r in records if _same_code(compile_function(r), code)]
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
        func = _function_of(value)
        if func is not None and func.__qualname__.startswith(cls.__qualname__ + "."):
            if func.__code__.co_filename not in filenames:
                filenames.append(func.__code__.co_filename)
            method_lines.append((func.__code__.co_filename, func.__code__.co_firstlineno))
    module_file = getattr(module, "__file__", None)
    if module_file and module_file not in filenames:
        filenames.append(module_file)
    candidates: list[tuple[ast.AST, str]] = []
    text = filename = ""
    for filename in filenames:
        try:
            text, tree = _file_tree(filename, module_globals)
        except NoSource:
            continue
        candidates = [(node, qualname) for node, qualname in _scopes(tree)
                      if isinstance(node, ast.ClassDef) and qualname == cls.__qualname__]
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
                          if all(c[0].lineno <= ln <= c[0].end_lineno for ln in lines)] or candidates
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
        "decorators": tuple(ast.get_source_segment(text, d) for d in node.decorator_list),
        "bases": tuple(ast.get_source_segment(text, b) for b in node.bases),
        "keywords": tuple((k.arg, ast.get_source_segment(text, k.value)) for k in node.keywords),
        "futures": future_names(_module_futures(tree)),
        # Which names are closure variables of an enclosing function: the methods' closures say. (A
        # name only the class body itself reads from the enclosing function compiles as a global.)
        "freevars": tuple(sorted(_method_freevars(cls) - {"__class__"})),
        # 3.12 ``class C[T]:`` runs inside a type-parameter scope that adds Generic[T] to the bases.
        "type_params": bool(getattr(node, "type_params", None)),
    }
    body = compile_class_body(record)
    record["freevars"] = tuple(body.co_freevars)
    return record


def _method_freevars(cls: type) -> set[str]:
    names: set[str] = set()
    prefix = cls.__qualname__ + "."
    for value in vars(cls).values():
        func = _function_of(value)
        if func is not None and func.__qualname__.startswith(prefix):
            names.update(func.__code__.co_freevars)
        elif isinstance(value, type) and value.__qualname__.startswith(prefix):
            names |= _method_freevars(value)
    return names


def _module_futures(tree: ast.Module) -> int:
    flags = 0
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            flags |= _future_flags(tuple(a.name for a in stmt.names))
    return flags


def _function_of(value: object) -> types.FunctionType | None:
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    elif isinstance(value, property):
        value = value.fget
    return value if isinstance(value, types.FunctionType) else None


# ------------------------------------------------------------------------------------------ both sides


def _parse_statement(record: dict) -> ast.stmt:
    text = record["text"]
    # The text keeps its original indentation (re-indenting would change multi-line string literals);
    # an ``if 1:`` header makes an indented block parse on its own.
    indented = text[:1].isspace()
    tree = ast.parse(("if 1:\n" + text) if indented else text, record["filename"])
    stmt = tree.body[0].body[0] if indented else tree.body[0]  # type: ignore[attr-defined]
    ast.increment_lineno(stmt, record["lineno"] - (2 if indented else 1))
    return stmt


def _parse_expression(text: str, filename: str, lineno: int) -> ast.expr:
    # Parentheses let a multi-line lambda or decorator keep its original line breaks and indentation.
    expr = ast.parse("(" + text + ")", filename, mode="eval").body
    ast.increment_lineno(expr, lineno - 1)
    return expr


def _scope_chain(qualname: str) -> list[tuple[str, str]]:
    """The enclosing scopes of a qualified name, outermost first, as ``("def" | "class", name)`` pairs.

    ``make.<locals>.C.m`` gives ``[("def", "make"), ("class", "C")]``: a part followed by ``<locals>``
    is a function, any other enclosing part a class.
    """
    parts = qualname.split(".")[:-1]
    chain = []
    for i, part in enumerate(parts):
        if part == "<locals>":
            continue
        kind = "def" if i + 1 < len(parts) and parts[i + 1] == "<locals>" else "class"
        # <lambda>, <listcomp>... scopes cannot be spelled as a def; any function name does the same job.
        chain.append((kind, part if part.isidentifier() else FACTORY))
    return chain


def _scoped_module(inner: ast.stmt, freevars: tuple[str, ...], qualname: str) -> tuple[ast.Module, list[str]]:
    """Wrap ``inner`` in its original enclosing scopes, the innermost function taking the free variables.

    Rebuilding the scopes reproduces ``__qualname__`` and private-name mangling exactly; making the
    free variables parameters of an enclosing function makes the compiler treat them as closure
    variables, as in the original. Returns the module and the names of the scopes to dig through.
    """
    chain = _scope_chain(qualname)
    implicit = {"__class__"} if any(kind == "class" for kind, _ in chain) else set()
    if any(v not in implicit for v in freevars) and not any(kind == "def" for kind, _ in chain):
        chain.insert(0, ("def", FACTORY))
    innermost_def = max((i for i, (kind, _) in enumerate(chain) if kind == "def"), default=-1)
    node = inner
    for i in range(len(chain) - 1, -1, -1):
        kind, name = chain[i]
        tp = {"type_params": []} if _HAS_TYPE_PARAMS else {}
        if kind == "class":
            node = ast.ClassDef(name=name, bases=[], keywords=[], body=[node], decorator_list=[], **tp)
        else:
            params = [v for v in freevars if v not in implicit] if i == innermost_def else []
            args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=v, annotation=None) for v in params],
                                 vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
            node = ast.FunctionDef(name=name, args=args, body=[node, ast.Pass()], decorator_list=[],
                                   returns=None, type_comment=None, **tp)
        ast.copy_location(node, inner)
    module = ast.Module(body=[node], type_ignores=[])
    return ast.fix_missing_locations(module), [name for _, name in chain]


def _const_code(code: types.CodeType, name: str) -> types.CodeType:
    """The code object called ``name`` nested in ``code``, nearest first.

    Usually a direct constant; with 3.12 type parameters (``def f[T]()``, ``class C[T]:``) it sits one
    level down, inside the ``<generic parameters of ...>`` scope.
    """
    queue = [code]
    while queue:
        current = queue.pop(0)
        for const in current.co_consts:
            if isinstance(const, types.CodeType):
                if const.co_name == name:
                    return const
                if const.co_name.startswith("<generic parameters of"):
                    queue.append(const)
    raise NoSource(f"compiled source holds no code object named {name!r}")


def _compile_scoped(inner: ast.stmt, record: dict, name: str) -> types.CodeType:
    module, chain = _scoped_module(inner, tuple(record["freevars"]), record["qualname"])
    code = compile(module, record["filename"], "exec", flags=_future_flags(tuple(record["futures"])),
                   dont_inherit=True)
    for scope in chain:
        code = _const_code(code, scope)
    return _const_code(code, name)


def compile_function(record: FunctionSource) -> types.CodeType:
    """Compile a function record back into the code object of the function it describes."""
    if record["kind"] == "lambda":
        inner: ast.stmt = ast.Expr(value=_parse_expression(record["text"], record["filename"], record["lineno"]))
        ast.copy_location(inner, inner.value)
    else:
        inner = _parse_statement(record)
    return _compile_scoped(inner, record, record["name"])


def compile_class_body(record: ClassSource) -> types.CodeType:
    """Compile a class record into the code object of its body (decorators and bases are evaluated apart)."""
    stmt = _parse_statement(record)
    assert isinstance(stmt, ast.ClassDef)
    stmt.decorator_list = []
    stmt.bases = []
    stmt.keywords = []
    return _compile_scoped(stmt, record, record["name"])


def compile_expression(text: str, record: dict, lineno: int | None = None) -> types.CodeType:
    """Compile a decorator, base or keyword expression of a definition for ``eval``."""
    expr = _parse_expression(text, record["filename"], lineno or record["lineno"])
    return compile(ast.Expression(body=expr), record["filename"], "eval",
                   flags=_future_flags(tuple(record["futures"])), dont_inherit=True)


def code_names(code: types.CodeType, *, nested: bool = True) -> set[str]:
    """Every name a code object (and, with ``nested``, the code nested in it) looks up as a global or attribute."""
    names = set(code.co_names)
    if nested:
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                names |= code_names(const)
    return names


_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_FROM_DICT_OR_GLOBALS"})


def global_names(code: types.CodeType, *, nested: bool = True) -> set[str]:
    """The names a code object (and, with ``nested``, code nested in it) reads or writes as globals.

    Attribute names are left out (``self.lock`` must not drag a global ``lock`` along), unlike
    :func:`code_names`, which is the over-approximation used for attributes of by-value modules.
    """
    import dis

    names = {i.argval for i in dis.get_instructions(code) if i.opname in _GLOBAL_OPS}
    if nested:
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                names |= global_names(const)
    return names


def construction_names(body: types.CodeType) -> set[str]:
    """The globals a class body looks up while the class statement runs.

    That is the body's own names plus those of nested class bodies and comprehensions (which run at
    once), but not those of methods, which run later.
    """
    names = global_names(body, nested=False)
    for const in body.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_flags & 0x2 == 0:  # CO_NEWLOCALS unset: a nested class body
                names |= construction_names(const)
            elif const.co_name.startswith("<") and const.co_name != "<lambda>":  # <listcomp>, <genexpr>...
                names |= global_names(const)
    return names


def evaluate(text: str, record: dict, namespace: dict, local_values: dict[str, Any]) -> Any:
    """Evaluate one decorator/base/keyword expression in the rebuilt module namespace."""
    return eval(compile_expression(text, record), namespace, dict(local_values))  # noqa: S307 - the source is the payload
