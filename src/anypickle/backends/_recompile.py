"""Compile a shipped definition back into code, on the sender (to check it) and on the receiver.

The record keeps the definition's text with its original indentation (re-indenting would change
multi-line string literals). The text is parsed and wrapped, as an AST, in its original enclosing
scopes rebuilt from the qualified name (``make.<locals>.C.m`` becomes ``def make(<free variables>):
class C: <def m>``): that reproduces ``__qualname__`` and ``__private`` name mangling exactly, and makes
the original free variables closure variables again, so the compiler emits the same closure accesses
(LOAD_DEREF) as in the original. The inner code object is then dug out of the compiled constants.
"""

from __future__ import annotations

import __future__
import ast
import dis
import sys
import types
from functools import lru_cache
from typing import Any

from . import _lines

__all__ = [
    "FACTORY",
    "code_names",
    "compile_class_body",
    "compile_expression",
    "compile_function",
    "construction_names",
    "evaluate",
    "global_names",
]

FACTORY = "__anypickle_factory__"
_HAS_TYPE_PARAMS = sys.version_info >= (3, 12)


def _future_flags(names: tuple[str, ...]) -> int:
    flags = 0
    for name in names:
        feature = getattr(__future__, name, None)
        if feature is not None:
            flags |= feature.compiler_flag
    return flags


def _parse_statement(record: dict) -> ast.stmt:
    text = record["text"]
    # The text keeps its original indentation (re-indenting would change multi-line string literals);
    # an ``if 1:`` header makes an indented block parse on its own.
    indented = text[:1].isspace()
    tree = ast.parse(("if 1:\n" + text) if indented else text, record["filename"])
    stmt = tree.body[0].body[0] if indented else tree.body[0]
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
        tp: dict[str, Any] = {"type_params": []} if _HAS_TYPE_PARAMS else {}
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
    raise LookupError(f"the compiled source holds no code object named {name!r}")


def _compile_scoped(inner: ast.stmt, record: dict, name: str) -> types.CodeType:
    module, chain = _scoped_module(inner, tuple(record["freevars"]), record["qualname"])
    code = compile(module, record["filename"], "exec", flags=_future_flags(tuple(record["futures"])),
                   dont_inherit=True)
    for scope in chain:
        code = _const_code(code, scope)
    return _const_code(code, name)


def compile_function(record: dict) -> types.CodeType:
    """Compile a function record back into the code object of the function it describes."""
    return _compile_function(tuple((k, _frozen(record[k])) for k in _FUNCTION_KEYS))


_FUNCTION_KEYS = ("kind", "name", "qualname", "text", "filename", "lineno", "freevars", "futures")


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@lru_cache(maxsize=512)
def _compile_function(items: tuple) -> types.CodeType:
    # Cached: many closures of one def arrive with one record; code objects are immutable, so sharing is safe.
    record = dict(items)
    _lines.add(record["filename"], record["lineno"], record["text"])  # for tracebacks on this receiver
    if record["kind"] == "lambda":
        value = _parse_expression(record["text"], record["filename"], record["lineno"])
        inner: ast.stmt = ast.Expr(value=value)
        ast.copy_location(inner, value)
    else:
        inner = _parse_statement(record)
    return _compile_scoped(inner, record, record["name"])


def compile_class_body(record: dict) -> types.CodeType:
    """Compile a class record into the code object of its body (decorators and bases are evaluated apart)."""
    stmt = _parse_statement(record)
    _lines.add(record["filename"], record["lineno"], record["text"])
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
    names = {i.argval for i in dis.get_instructions(code) if i.opname in _GLOBAL_OPS}
    if nested:
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                names |= global_names(const)
    return names


def stored_names(code: types.CodeType) -> set[str]:
    """The names a class body (or module code) binds itself, so reading them needs no global."""
    return {i.argval for i in dis.get_instructions(code) if i.opname in ("STORE_NAME", "DELETE_NAME", "IMPORT_NAME")}


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
