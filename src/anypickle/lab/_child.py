"""The child side of the lab's runner (:mod:`anypickle.lab.runner`): a fork server that sends or receives catalogue cells.

Started as ``python -c "from anypickle.lab._child import serve; serve()"`` with a fresh temporary folder as
working directory. It reads one JSON job per line on stdin and answers one JSON line per job on the
file descriptor that was stdout when it started; the jobs' own prints go to stderr, so a case script
that prints cannot corrupt the protocol. Every job runs in a fork (see :func:`anypickle.lab.runner.run_isolated`).

Jobs:

- ``hello``: this interpreter's version and the versions of the backends it can import.
- ``send``: run a case script as ``__main__``, build the object, dump it with every backend into files,
  run the check on the original object (the expected value) and, per backend, load it back in this
  same process and check it (the *same process* mode).
- ``receive``: load one payload file and check the object (the *fresh process* and *other Python*
  modes). This interpreter never ran the case script and its ``sys.path`` lacks the script's folder.

Stdlib only at import time: receivers of other Python versions import this module from a copy of the
package.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import traceback
import types
from typing import Any

from . import CLEAR_ERROR, DUMPS_FAILS, LOADS_FAILS, OK, WRONG_RESULT
from ._check import receive_check
from .runner import Isolated, run_isolated

__all__ = ["serve"]

NOT_AVAILABLE = "n/a"

_DETAIL_LIMIT = 300


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 3] + "..."


def _short_value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


# --- backends -------------------------------------------------------------------------------------


def _api():
    """The anypickle facade if this checkout has it (``anypickle.dumps``), else None."""
    try:
        import anypickle
    except ImportError:
        return None
    return anypickle if hasattr(anypickle, "dumps") and hasattr(anypickle, "loads") else None


def _is_own_error(exc: "BaseException | None") -> bool:
    try:
        from anypickle.errors import AnyPickleError
    except ImportError:  # pragma: no cover - the package is always importable in a matrix child
        return False
    return isinstance(exc, AnyPickleError)


def classify(exc: BaseException, stage: str, backend: str) -> str:
    """The outcome for an exception raised by dumps (``stage="dumps"``) or loads.

    anypickle translates a backend's own failure into its error tree (``raise EncodeError(...) from
    exc``), so the type alone does not say who failed. A *clear error* is anypickle refusing on its
    own: auto finding no way to ship an object, or loads refusing bytecode from another interpreter
    before unpickling. An anypickle error that wraps the backend's exception is that backend failing:
    *dumps fails* for a forced backend, *loads fails* for any column (the load was attempted).
    """
    failed = DUMPS_FAILS if stage == "dumps" else LOADS_FAILS
    if not _is_own_error(exc):
        return failed
    wraps_backend = exc.__cause__ is not None and not _is_own_error(exc.__cause__)
    if stage == "dumps" and backend in ("auto", "portable"):
        return CLEAR_ERROR
    return failed if wraps_backend else CLEAR_ERROR


class Unavailable(Exception):
    """This column cannot run here (e.g. the auto facade is not in this checkout yet)."""


def _column(backend: str, raw: bool) -> "tuple[str, bool]":
    """``"cloudpickle:raw"`` is the bare-library column of ``cloudpickle``: (name, raw)."""
    name, _, flag = backend.partition(":")
    return name, raw or flag == "raw"


def _dumps(obj: Any, backend: str, raw: bool = False) -> bytes:
    """Column ``backend``: ``anypickle.dumps(obj, backend=...)``, or the bare library when ``raw``."""
    backend, raw = _column(backend, raw)
    api = _api()
    if backend == "portable":
        if api is None:
            raise Unavailable("the portable column needs anypickle.dumps(..., backend=\"portable\")")
        return api.dumps(obj, backend="portable")
    if api is not None and not (raw and backend != "auto"):
        return api.dumps(obj, backend=backend)
    if backend == "pickle":
        import pickle

        return pickle.dumps(obj, protocol=5)
    if backend == "cloudpickle":
        import cloudpickle

        return cloudpickle.dumps(obj)
    if backend == "dill":
        import dill

        return dill.dumps(obj)
    if backend == "marshal" and api is not None:
        import marshal

        from anypickle.analysis._modules import ModulePolicy
        from anypickle.backends._marshal import encode_function

        return marshal.dumps(encode_function(obj, ModulePolicy((), ())), 4)
    raise Unavailable(f"backend {backend!r} needs anypickle.dumps")


def _loads(data: bytes, backend: str, raw: bool = False) -> Any:
    backend, raw = _column(backend, raw)
    api = _api()
    if api is not None and (backend == "portable" or not (raw and backend != "auto")):
        return api.loads(data)
    if backend == "pickle":
        import pickle

        return pickle.loads(data)
    if backend == "cloudpickle":
        import cloudpickle

        return cloudpickle.loads(data)
    if backend == "dill":
        import dill

        return dill.loads(data)
    if backend == "marshal" and api is not None:
        import marshal

        from anypickle.backends._marshal import decode_function

        return decode_function(marshal.loads(data))
    raise Unavailable(f"backend {backend!r} needs anypickle.loads")


def _written_by(data: bytes) -> "str | None":
    """The backend named in an anypickle envelope header, plus "+bytecode" / "+portable" when flagged."""
    try:
        from anypickle import _envelope
    except ImportError:
        return None
    view = memoryview(data)
    if not _envelope.is_envelope(view):
        return None
    header = _envelope.parse(view)
    return (header.backend.label + ("+bytecode" if header.flags & _envelope.BYTECODE else "")
            + ("+portable" if header.flags & _envelope.PORTABLE else ""))


def _preimport() -> None:
    for name in ("pickle", "cloudpickle", "dill", "anypickle"):
        try:
            __import__(name)
        except ImportError:
            pass
    _api()


def _versions() -> dict:
    import marshal
    import pickle
    import platform

    found: dict[str, str | bool | None] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "pickle": f"protocol {pickle.HIGHEST_PROTOCOL}",
        "marshal": f"version {marshal.version}",
    }
    for name in ("cloudpickle", "dill", "anypickle"):
        try:
            module = __import__(name)
        except ImportError:
            found[name] = None
        else:
            found[name] = getattr(module, "__version__", "?")
    # numpy is looked up, not imported: the server's forks must start without it.
    import importlib.metadata
    import importlib.util

    try:
        found["numpy"] = (
            importlib.metadata.version("numpy") if importlib.util.find_spec("numpy") else None
        )
    except importlib.metadata.PackageNotFoundError:
        found["numpy"] = "?"
    found["anypickle_facade"] = _api() is not None
    return found


# --- checks ---------------------------------------------------------------------------------------


def _load_check(source: str):
    namespace: dict = {"__name__": "anypickle_matrix_check"}
    exec(compile(source, "<check>", "exec"), namespace)
    return namespace["check"]


def _normalize(value: Any) -> Any:
    # Expected and observed values are compared after a JSON round trip, so tuples and lists compare
    # equal and a check that returns something JSON cannot hold is a catalogue bug, caught early.
    return json.loads(json.dumps(value, sort_keys=True))


def _normalize_quietly(value: Any) -> Any:
    """Like :func:`_normalize`, but values JSON cannot hold are compared as they are."""
    try:
        return _normalize(value)
    except (TypeError, ValueError):
        return value


def _exercise(obj: Any, check_source: str, expected: Any, emit) -> dict:
    """Run the check on a loaded object and compare with the sender's value."""
    emit({"stage": "loaded"})
    try:
        got = _normalize(_load_check(check_source)(obj))
    except BaseException as exc:
        return {"outcome": WRONG_RESULT, "detail": f"check raised {_short(exc)}"}
    if got == expected:
        return {"outcome": OK, "detail": ""}
    return {
        "outcome": WRONG_RESULT,
        "detail": f"expected {_short_value(expected)}, got {_short_value(got)}",
    }


def _load_and_exercise(data: bytes, backend: str, check_source: str, expected: Any, emit,
                       raw: bool = False) -> dict:
    try:
        obj = _loads(data, backend, raw)
    except Unavailable as exc:
        return {"outcome": NOT_AVAILABLE, "detail": str(exc)}
    except BaseException as exc:
        return {"outcome": classify(exc, "loads", backend), "detail": _short(exc)}
    return _exercise(obj, check_source, expected, emit)


def cell_from_isolated(run: Isolated) -> dict:
    """Turn an isolated load-and-check into a cell, also when the child died."""
    if run.final is not None:
        return run.final
    for message in run.messages:
        if "internal_error" in message:
            return {"outcome": LOADS_FAILS, "detail": f"receiver error: {message['internal_error']}"}
    loaded = any(m.get("stage") == "loaded" for m in run.messages)
    death = run.describe_death()
    if loaded:
        return {"outcome": WRONG_RESULT, "detail": f"{death} while exercising the loaded object"}
    return {"outcome": LOADS_FAILS, "detail": death}


# --- jobs -----------------------------------------------------------------------------------------


def _install_main(script: str) -> types.ModuleType:
    """Make a fresh module ``__main__`` for ``script``, as ``python script.py`` would."""
    folder = os.path.dirname(os.path.abspath(script))
    os.chdir(folder)
    sys.argv = [script]
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path[0] = folder
    else:
        sys.path.insert(0, folder)
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = builtins  # type: ignore[attr-defined]  # a module global typeshed's ModuleType lacks
    sys.modules["__main__"] = main
    # dill binds ``import __main__ as _main_module`` at import time and compares against it to decide
    # what is "__main__"; this server imported dill before this job's __main__ existed.
    dill_impl = sys.modules.get("dill._dill")
    if dill_impl is not None:
        dill_impl._main_module = main  # type: ignore[attr-defined]  # dill's own module global
    return main


def _send(job: dict, emit) -> dict:
    main = _install_main(job["script"])
    with open(job["script"], encoding="utf-8") as handle:
        source = handle.read()
    try:
        exec(compile(source, job["script"], "exec"), main.__dict__)
        obj = eval(job["build"], main.__dict__)
        check = _load_check(job["check"])
    except BaseException:
        return {"error": "case script failed:\n" + traceback.format_exc(limit=5)}

    needs = _needs_of(obj)
    cells: dict = {}
    dumped: dict = {}
    for backend in job["backends"]:
        try:
            data = _dumps(obj, backend, job.get("raw", False))
        except Unavailable as exc:
            cells[backend] = {"outcome": NOT_AVAILABLE, "detail": str(exc)}
            continue
        except BaseException as exc:
            cells[backend] = {"outcome": classify(exc, "dumps", backend), "detail": _short(exc)}
            continue
        path = os.path.join(job["payload_dir"], f"{backend.replace(':', '-')}.bin")
        with open(path, "wb") as handle:
            handle.write(data)
        dumped[backend] = {"path": path, "size": len(data), "written_by": _written_by(data)}

    # The check may mutate the object or global state, so the expected value and every same-process
    # load run in their own fork of this post-dumps state.
    expected_run = run_isolated(lambda emit: _normalize(check(obj)), job["timeout"])
    if expected_run.final is None:
        detail = next((m["internal_error"] for m in expected_run.messages if "internal_error" in m),
                      expected_run.describe_death())
        return {"error": f"check failed on the original object: {detail}"}
    expected = expected_run.final

    same: dict = {}
    for backend, info in dumped.items() if job.get("same", True) else ():
        with open(info["path"], "rb") as handle:
            data = handle.read()
        run = run_isolated(
            # mypy cannot type a lambda with default arguments (python/mypy#15459).
            lambda emit, data=data, backend=backend: _load_and_exercise(  # type: ignore[misc]
                data, backend, job["check"], expected, emit, job.get("raw", False)
            ),
            job["timeout"],
        )
        same[backend] = cell_from_isolated(run)
    return {"expected": expected, "dumps": cells, "dumped": dumped, "same": same, "needs": needs}


def _needs_of(obj: Any) -> "list | None":
    """The kinds of need anypickle's analysis finds in ``obj`` (sorted), or None without the analysis."""
    try:
        from anypickle.analysis._modules import ModulePolicy
        from anypickle.analysis._needs import find_needs
    except ImportError:
        return None
    try:
        return sorted({f.key for f in find_needs(obj, ModulePolicy())})
    except Exception as exc:  # noqa: BLE001 - a hostile object: the cells still run
        return [f"error: {type(exc).__name__}"]


def _receive(job: dict, emit) -> dict:
    for entry in reversed(job.get("extra_path", [])):
        sys.path.insert(0, entry)
    with open(job["payload"], "rb") as handle:
        data = handle.read()
    return _load_and_exercise(data, job["backend"], job["check"], job["expected"], emit,
                              job.get("raw", False))


def _run_job(job: dict) -> dict:
    kind = job["kind"]
    if kind == "hello":
        return {"result": _versions()}
    timeout = float(job.get("timeout", 5.0))
    if kind == "send":
        run = run_isolated(lambda emit: _send(job, emit), timeout * (2 + len(job["backends"])))
        if run.final is not None:
            return {"result": run.final}
        detail = next((m["internal_error"] for m in run.messages if "internal_error" in m),
                      run.describe_death())
        return {"result": {"error": f"sender: {detail}"}}
    if kind == "receive":
        return {"result": cell_from_isolated(run_isolated(lambda emit: _receive(job, emit), timeout))}
    if kind == "check":  # anypickle.check(): the same runner as the matrix' cells
        return {"result": cell_from_isolated(run_isolated(lambda emit: receive_check(job, emit), timeout))}
    return {"error": f"unknown job kind {kind!r}"}


def serve() -> None:
    """Answer jobs from stdin until it closes."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints from case scripts and checks go to stderr, never into the protocol
    try:
        import resource

        # Bytecode from another Python version segfaults on purpose in this matrix: no core files.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass
    _preimport()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = _run_job(json.loads(line))
        except Exception as exc:  # a malformed job is answered, never fatal to the server
            answer = {"error": _short(exc)}
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()
