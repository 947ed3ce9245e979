"""Receiver interpreters for the matrix: find other Pythons and give each the backends it needs.

A receiver of another Python version needs cloudpickle and dill (the same versions as the sender, so
the column measures the Python version and nothing else), optionally numpy, and this anypickle. The
third-party packages are installed once with that interpreter's own pip into a cache folder
(``pip install --target``); anypickle is copied from this process's package for every run, so the
receiver always runs the code under test. Both go on the receiver's ``PYTHONPATH``.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

__all__ = ["Receiver", "cache_dir", "find_other_pythons", "prepare_receiver", "prepare_versions", "same_interpreter"]

MIN_VERSION = (3, 10)


@dataclass
class Receiver:
    """One interpreter that loads payloads, with the environment it needs."""

    python: str
    version: tuple  # (major, minor, micro)
    pythonpath: list = field(default_factory=list)
    note: str = ""
    name: str = ""  # e.g. "cloudpickle 3.1.2" for a backend-version environment; default: the version

    @property
    def label(self) -> str:
        return self.name or ".".join(map(str, self.version[:2]))

    @property
    def key(self) -> str:
        """Identifies the environment: the interpreter and what is on its path."""
        return os.pathsep.join([self.python, *self.pythonpath])

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = os.pathsep.join(self.pythonpath)
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONHASHSEED"] = "0"
        return env


def cache_dir() -> str:
    """Where per-interpreter package folders live: ``$ANYPICKLE_CACHE_DIR`` or ``~/.cache/anypickle``."""
    configured = os.environ.get("ANYPICKLE_CACHE_DIR")
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "anypickle")


def _package_parent(name: str) -> "str | None":
    try:
        module = __import__(name)
    except ImportError:
        return None
    if module.__file__ is None:
        # A namespace package (a folder without __init__.py on sys.path) has no file to start from.
        raise RuntimeError(f"cannot locate {name}: it was imported without a __file__ (a namespace package?)")
    return os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))


def same_interpreter() -> Receiver:
    """This interpreter as a receiver: it already has the backends, wherever they were installed."""
    paths: list = []
    for name in ("anypickle", "cloudpickle", "dill"):
        parent = _package_parent(name)
        if parent and parent not in paths:
            paths.append(parent)
    # The caller's own PYTHONPATH stays: it is part of this interpreter's installed environment
    # (the catalogue's scripts and helper modules live in temporary folders that are never on it).
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry and entry not in paths:
            paths.append(entry)
    return Receiver(sys.executable, tuple(sys.version_info[:3]), paths)


def _probe_version(python: str) -> "tuple | None":
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
        return tuple(int(part) for part in out.split())
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _pyenv_pythons() -> list:
    root = os.environ.get("PYENV_ROOT") or os.path.join(os.path.expanduser("~"), ".pyenv")
    return sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python")))


def find_other_pythons(extra: "list | tuple" = (), *, search: bool = True) -> "tuple[list, list]":
    """Interpreters of other minor versions (pyenv's and ``python3.X`` on PATH), plus ``extra``.

    Returns ``(found, notes)``: one ``(path, version)`` per minor version, newest patch release, and
    human-readable notes on what was passed over.
    """
    here = tuple(sys.version_info[:2])
    candidates: list = []
    if search:
        candidates += _pyenv_pythons()
        for minor in range(MIN_VERSION[1], 20):
            on_path = shutil.which(f"python3.{minor}")
            if on_path:
                candidates.append(on_path)
    best: dict = {}
    notes: list = []
    for python in candidates:
        version = _probe_version(python)
        if version is None or version[:2] == here or version[:2] < MIN_VERSION:
            continue
        if version[:2] not in best or version > best[version[:2]][1]:
            best[version[:2]] = (python, version)
    found = [best[key] for key in sorted(best)]
    for python in extra:
        version = _probe_version(python)
        if version is None:
            notes.append(f"--python {python}: not a working interpreter")
        elif version[:2] < MIN_VERSION:
            notes.append(f"--python {python}: Python {version[0]}.{version[1]} is older than 3.10")
        else:
            found = [item for item in found if item[1][:2] != version[:2]] + [(python, version)]
    return found, notes


def _installed_version(name: str) -> "str | None":
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pip_target(python: str, target: str, requirements: list) -> "str | None":
    """Install into ``target`` with ``python -m pip``; return an error message or None."""
    try:
        done = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-warn-script-location", "--target", target, *requirements],
            capture_output=True, text=True, timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if not line.startswith("WARNING")]
        return " ".join(lines[-3:]) or f"pip exited with {done.returncode}"
    return None


def prepare_receiver(python: str, version: tuple, package_copy: str) -> Receiver:
    """Give ``python`` cloudpickle, dill (this process's versions) and, if possible, numpy.

    Raises ``RuntimeError`` with pip's message when the backends cannot be installed.
    """
    pins = [f"{name}=={_installed_version(name)}" if _installed_version(name) else name
            for name in ("cloudpickle", "dill")]
    key = hashlib.sha256(f"{os.path.realpath(python)} {version} {pins}".encode()).hexdigest()[:12]
    label = f"py{version[0]}.{version[1]}-{key}"
    final = os.path.join(cache_dir(), "receivers", label)
    if not os.path.isdir(final):
        os.makedirs(os.path.dirname(final), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=label + ".", dir=os.path.dirname(final))
        error = _pip_target(python, staging, pins)
        if error is not None:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"cannot install {' '.join(pins)} for Python {version[0]}.{version[1]}: {error}")
        numpy_error = _pip_target(python, os.path.join(staging, "_numpy"), ["numpy"])
        if numpy_error is not None:
            shutil.rmtree(os.path.join(staging, "_numpy"), ignore_errors=True)
        try:
            os.rename(staging, final)  # atomic: a concurrent run either sees all of it or none
        except OSError:  # another run finished first
            shutil.rmtree(staging, ignore_errors=True)
    paths = [package_copy, final]
    note = ""
    if os.path.isdir(os.path.join(final, "_numpy")):
        paths.append(os.path.join(final, "_numpy"))
    else:
        note = "numpy could not be installed for this interpreter"
    return Receiver(python, tuple(version), paths, note)


def prepare_versions(pins: dict) -> Receiver:
    """This interpreter with other releases of cloudpickle and/or dill: ``{"cloudpickle": "3.1.2"}``.

    The pinned packages are installed once into ``<cache>/versions/<name>-<version>-<key>`` and put
    first on ``PYTHONPATH``, ahead of this environment's own site-packages (which still provide
    anypickle, the other backend and numpy). Raises ``RuntimeError`` with pip's message when pip
    cannot install them (no network, unknown release).
    """
    version = tuple(sys.version_info[:3])
    paths: list = []
    for name, release in sorted(pins.items()):
        key = hashlib.sha256(f"{os.path.realpath(sys.executable)} {version} {name}=={release}".encode()).hexdigest()[:12]
        final = os.path.join(cache_dir(), "versions", f"{name}-{release}-py{version[0]}.{version[1]}-{key}")
        if not os.path.isdir(final):
            os.makedirs(os.path.dirname(final), exist_ok=True)
            staging = tempfile.mkdtemp(prefix=os.path.basename(final) + ".", dir=os.path.dirname(final))
            error = _pip_target(sys.executable, staging, [f"{name}=={release}", "--no-deps"])
            if error is not None:
                shutil.rmtree(staging, ignore_errors=True)
                raise RuntimeError(f"cannot install {name}=={release}: {error}")
            try:
                os.rename(staging, final)
            except OSError:  # another run finished first
                shutil.rmtree(staging, ignore_errors=True)
        paths.append(final)
    here = same_interpreter()
    # This environment's anypickle (and the other backend) stay importable: the caller's PYTHONPATH
    # entries follow the pinned folders; site-packages comes after both.
    paths += [p for p in here.pythonpath if p not in paths]
    label = ", ".join(f"{name} {release}" for name, release in sorted(pins.items()))
    return Receiver(sys.executable, version, paths, name=label)


def copy_package(destination: str) -> str:
    """Copy this anypickle package (sources only) under ``destination``; return the folder to add to a path."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package, above lab/
    shutil.copytree(here, os.path.join(destination, "anypickle"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination
