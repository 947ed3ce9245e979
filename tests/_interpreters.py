"""Find the installed CPython 3.10-3.13 interpreters and give each a cached venv with cloudpickle and dill.

The venvs live in ``<repo>/.anypickle-cache/venvs/py3X`` and are made on first use (``python -m venv``,
then ``pip install cloudpickle dill``); anypickle itself comes from ``<repo>/src`` on ``PYTHONPATH``, so
a venv never holds a stale copy of the code under test.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
CACHE = REPO / ".anypickle-cache" / "venvs"
VERSIONS = ("3.10", "3.11", "3.12", "3.13")


def _pyenv_root() -> Path | None:
    root = os.environ.get("PYENV_ROOT")
    if root:
        return Path(root)
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            return Path(out)
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _version_key(path: str) -> tuple[int, ...]:
    m = re.search(r"/(\d+)\.(\d+)\.(\d+)[^/]*/bin/python$", path)
    return tuple(int(x) for x in m.groups()) if m else (0,)


def find_interpreter(version: str) -> str | None:
    """The newest installed CPython ``version`` (e.g. ``"3.12"``): pyenv first, then ``python3.X`` on PATH."""
    root = _pyenv_root()
    if root is not None:
        found = [p for p in glob.glob(str(root / "versions" / f"{version}.*" / "bin" / "python"))
                 if re.search(rf"/{re.escape(version)}\.\d+/bin/python$", p)]
        if found:
            return max(found, key=_version_key)
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable
    return shutil.which(f"python{version}")


def venv_python(version: str) -> str:
    """The python of a venv for ``version`` that can import cloudpickle and dill (made once, then reused)."""
    base = find_interpreter(version)
    if base is None:
        raise LookupError(f"Python {version} is not installed")
    target = CACHE / f"py{version.replace('.', '')}"
    python = target / "bin" / "python"
    ready = target / ".ready"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".lock-{version}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other test sessions may be making the same venv
        if not ready.exists():
            shutil.rmtree(target, ignore_errors=True)
            subprocess.run([base, "-m", "venv", str(target)], check=True, capture_output=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "cloudpickle>=3.1", "dill>=0.4"],
                           check=True, capture_output=True)
            ready.write_text(base + "\n")
    return str(python)


def child_env() -> dict[str, str]:
    """Environment for child interpreters: anypickle from this checkout, nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(SRC)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env
