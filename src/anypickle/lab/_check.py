"""``anypickle.check(obj)``: will this object survive a trip to a fresh process? Find out by doing it.

The object is dumped here and loaded in a new interpreter started in an empty temporary folder: it
has neither this process's ``__main__`` nor any module that is not installed. That interpreter is a
fork server of the matrix lab (:mod:`.runner`, :mod:`._child`): the one runner the matrix and
``check()`` share, which also reports a crash or a hang of the receiver as the cell's detail. There it is compared
with the original, by default through a structural fingerprint (types, data, object state, function
code and defaults, recursively), or through ``exercise``, a callable that is itself shipped with
anypickle and run on both sides (``exercise=lambda o: o.total()``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

from . import LOADS_FAILS, OK, WRONG_RESULT
from .runner import Pool
from ..errors import UsageError

__all__ = ["CheckResult", "check", "fingerprint"]


@dataclass(frozen=True)
class CheckResult:
    """How ``obj`` fared: ``outcome`` is one of ``"ok"``, ``"dumps fails"``, ``"loads fails"``,
    ``"wrong result"``, ``"clear error"``; ``backend`` is the backend that wrote the payload (``None``
    when dumps failed); ``detail`` says what went wrong, empty when ok."""

    outcome: str
    backend: "str | None"
    detail: str

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    def __bool__(self) -> bool:
        return self.ok


def check(
    obj: Any,
    *,
    backend: str = "auto",
    python: "str | None" = None,
    exercise: "Callable[[Any], Any] | None" = None,
    timeout: float = 60.0,
) -> CheckResult:
    """Dump ``obj`` here, load it in a fresh interpreter, and compare; never raises for the object's sake.

    ``backend`` is passed to :func:`anypickle.dumps`. ``python`` is the receiving interpreter (default:
    this one); another version gets cloudpickle and dill installed into anypickle's cache on first use.
    ``exercise(obj)`` must return a value that pickles and compares with ``==``; without it the
    receiver compares :func:`fingerprint` of both objects.
    """
    from .. import _api
    from ._child import classify
    from .._envelope import is_envelope, parse

    try:
        data = _api.dumps(obj, backend=backend)
    except UsageError:
        raise
    except Exception as exc:
        return CheckResult(classify(exc, "dumps", str(backend)), None, _describe(exc))
    view = memoryview(data)
    written_by = parse(view).backend.label if is_envelope(view) else None
    try:
        expected = exercise(obj) if exercise is not None else fingerprint(obj)
    except Exception as exc:
        raise UsageError(f"exercise(obj) failed on the original object: {_describe(exc)}") from exc
    probe = _api.dumps((exercise, expected))  # the exercise travels like any other code

    workdir = tempfile.mkdtemp(prefix="anypickle-check-")
    try:
        with open(os.path.join(workdir, "payload.bin"), "wb") as handle:
            handle.write(data)
        with open(os.path.join(workdir, "probe.bin"), "wb") as handle:
            handle.write(probe)
        receiver = _receiver(python, workdir)
        pool = Pool(os.path.join(workdir, "servers"))
        try:
            # The server's guard covers its start (interpreter, backends' imports) and the job, whose
            # fork has ``timeout`` seconds: a hang is then reported by the server, not as a dead one.
            answer = pool.call(receiver, {"kind": "check", "workdir": workdir, "backend": str(backend),
                                          "timeout": timeout}, timeout + 60)
        finally:
            pool.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if "result" not in answer:
        return CheckResult(LOADS_FAILS, written_by, answer.get("error", "no answer from the receiver"))
    return CheckResult(answer["result"]["outcome"], written_by, answer["result"]["detail"])


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _receiver(python: "str | None", workdir: str):
    from . import _interpreters

    here = _interpreters.same_interpreter()
    if python is None:
        return here
    version = _interpreters._probe_version(python)
    if version is None:
        raise UsageError(f"python={python!r} is not a working interpreter")
    if tuple(version[:2]) == tuple(sys.version_info[:2]):
        return _interpreters.Receiver(python, version, here.pythonpath)
    try:
        return _interpreters.prepare_receiver(
            python, version, _interpreters.copy_package(os.path.join(workdir, "lib")))
    except RuntimeError as exc:
        raise UsageError(str(exc)) from exc


def receive_check(job: dict, emit: Callable[[dict], None]) -> dict:
    """The receiving side of ``check()``: the ``"check"`` job of a fork server (see :mod:`._child`),
    run in a fork in an empty folder; loads ``payload.bin``, exercises it, compares."""
    from .. import _api
    from ._child import _normalize_quietly, classify

    workdir, backend = job["workdir"], job["backend"]
    with open(os.path.join(workdir, "payload.bin"), "rb") as handle:
        data = handle.read()
    try:
        obj = _api.loads(data)
    except Exception as exc:
        return {"outcome": classify(exc, "loads", backend), "detail": _describe(exc)}
    emit({"stage": "loaded"})
    with open(os.path.join(workdir, "probe.bin"), "rb") as handle:
        exercise, expected = _api.loads(handle.read())
    try:
        got = exercise(obj) if exercise is not None else fingerprint(obj)
    except Exception as exc:
        return {"outcome": WRONG_RESULT, "detail": f"exercising the loaded object raised {_describe(exc)}"}
    same = _normalize_quietly(got) == _normalize_quietly(expected)
    return {"outcome": OK if same else WRONG_RESULT,
            "detail": "" if same else f"expected {expected!r:.200}, got {got!r:.200}"}


_MAX_DEPTH = 24


def fingerprint(obj: Any) -> Any:
    """A JSON-able description of ``obj`` that two interpreters can compare.

    Data by value; instances by type name and state (``__dict__``, slots, or ``__reduce_ex__``);
    functions by qualified name, bytecode, defaults and closure contents; classes by name and the
    names of what they define. Shared and recursive references become back-references.
    """
    return _Fingerprinter().walk(obj, 0)


class _Fingerprinter:
    def __init__(self) -> None:
        self.seen: dict = {}

    def walk(self, obj: Any, depth: int) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, complex, str)):
            return [type(obj).__name__, repr(obj)]
        if isinstance(obj, (bytes, bytearray)):
            return [type(obj).__name__, bytes(obj).hex()]
        if depth > _MAX_DEPTH:
            return ["...", type(obj).__qualname__]
        key = id(obj)
        if key in self.seen:
            return ["ref", self.seen[key]]
        self.seen[key] = len(self.seen)
        kind = type(obj).__qualname__
        if isinstance(obj, (list, tuple)):
            return [kind, [self.walk(item, depth + 1) for item in obj]]
        if isinstance(obj, dict):
            items = [[self.walk(k, depth + 1), self.walk(v, depth + 1)] for k, v in obj.items()]
            return [kind, sorted(items, key=json.dumps)]
        if isinstance(obj, (set, frozenset)):
            return [kind, sorted((self.walk(item, depth + 1) for item in obj), key=json.dumps)]
        if isinstance(obj, type):
            names = sorted(n for n in vars(obj) if n not in ("__dict__", "__weakref__", "__module__", "__doc__"))
            return ["class", obj.__qualname__, names, [b.__qualname__ for b in obj.__mro__]]
        code = getattr(obj, "__code__", None)
        if code is not None and hasattr(obj, "__defaults__"):
            cells = [self.walk(cell.cell_contents, depth + 1) if _cell_filled(cell) else ["empty cell"]
                     for cell in (obj.__closure__ or ())]
            # Not co_code: bytecode differs between Python versions even for the same source.
            signature = [code.co_argcount, code.co_kwonlyargcount, sorted(code.co_names)]
            return ["function", obj.__qualname__, signature, self.walk(obj.__defaults__, depth + 1),
                    self.walk(obj.__kwdefaults__, depth + 1), cells, self.walk(dict(vars(obj)), depth + 1)]
        if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy arrays and scalars
            return [kind, str(obj.dtype), list(getattr(obj, "shape", ())), self.walk(obj.tolist(), depth + 1)]
        state = self._state(obj)
        return [kind, self.walk(state, depth + 1)]

    @staticmethod
    def _state(obj: Any) -> Any:
        state: dict = {}
        if hasattr(obj, "__dict__"):
            state.update(vars(obj))
        for klass in type(obj).__mro__:
            for name in getattr(klass, "__slots__", ()) if isinstance(getattr(klass, "__slots__", ()), (tuple, list)) else ():
                if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                    state["slot:" + name] = getattr(obj, name)
        if state:
            return state
        try:
            reduced = obj.__reduce_ex__(4)
        except Exception:
            return repr(type(obj))
        if isinstance(reduced, str):  # a global, pickled by name
            return reduced
        return list(reduced[1:3]) if len(reduced) > 1 else []


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True
