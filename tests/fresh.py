"""Run code the way users hit it: a script as ``__main__`` in one interpreter, the load in another.

The sender runs ``main.py`` in its own folder, with helper modules beside it, and writes the payload.
The receiver runs in a different folder, so neither the sender's ``__main__`` nor its helper modules
are importable there (unless a test copies a module in on purpose).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

SENDER_FOOTER = """
import json as _json, sys as _sys
import anypickle as _anypickle
_options = _json.loads(_sys.argv[2])
_data = _anypickle.dumps(obj, **_options)
open(_sys.argv[1], "wb").write(_data)
print(_json.dumps({"backend": _anypickle.Backend(_data[5]).label}))
"""

RECEIVER = """
import json, sys
import anypickle
data = open(sys.argv[1], "rb").read()
options = json.loads(sys.argv[2])
try:
    obj = anypickle.loads(data, **options)
except anypickle.AnyPickleError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    raise SystemExit(0)
result = eval(sys.argv[3])
print(json.dumps({"result": result}))
"""


@dataclass
class Sent:
    """What the sender produced: the payload and the backend auto (or the forced one) used."""

    payload: bytes
    backend: str


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(args: list[str], cwd: Path, python: str) -> str:
    proc = subprocess.run([python, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=_env())
    if proc.returncode != 0:
        raise AssertionError(f"child {args[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


def send(
    root: Path,
    script: str,
    helpers: Mapping[str, str] | None = None,
    *,
    python: str = sys.executable,
    **options: Any,
) -> Sent:
    """Run ``script`` (which must bind ``obj``) as ``__main__`` and dump ``obj`` with ``options``."""
    folder = root / "sender"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in (helpers or {}).items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    (folder / "main.py").write_text(textwrap.dedent(script) + SENDER_FOOTER)
    out = folder / "payload.bin"
    line = _run(["main.py", str(out), json.dumps(options)], folder, python)
    return Sent(out.read_bytes(), json.loads(line)["backend"])


def receive(
    root: Path,
    payload: bytes,
    expression: str,
    *,
    helpers: Mapping[str, str] | None = None,
    python: str = sys.executable,
    **options: Any,
) -> dict[str, Any]:
    """Load ``payload`` in a fresh interpreter in another folder and evaluate ``expression`` on ``obj``.

    Returns ``{"result": ...}`` or ``{"error": "DecodeError", "message": ...}`` for anypickle errors.
    """
    folder = root / "receiver"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in (helpers or {}).items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    (folder / "receiver.py").write_text(RECEIVER)
    path = folder / "payload.bin"
    path.write_bytes(payload)
    line = _run(["receiver.py", str(path), json.dumps(options), expression], folder, python)
    return json.loads(line)
