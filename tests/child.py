"""Run a script as ``__main__`` in a child interpreter, with helper modules beside it, and read its JSON.

The task-shipping tests use it: the script builds lambdas, closures and ``__main__`` classes, ships
them to worker processes (multiprocessing, the executor, Dask) and prints one JSON line of outcomes.
Scripts remove their own folder from ``sys.path`` before starting workers, so spawn / forkserver
workers (which inherit the parent's ``sys.path``) cannot import the helper modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent


def run_script(
    folder: Path,
    script: str,
    helpers: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    *,
    timeout: float = 120,
) -> Any:
    """Write ``main.py`` (and helpers) into ``folder``, run it there, return the JSON of its last line."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in (helpers or {}).items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    (folder / "main.py").write_text(textwrap.dedent(script))
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run(
        [sys.executable, "main.py", *args], cwd=folder, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"child script failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(f"child script printed nothing:\n{proc.stderr}")
    return json.loads(lines[-1])
