"""The package type-checks cleanly with mypy, and a caller with strict settings can use the public API.

Both checks run mypy in a subprocess with the ``[tool.mypy]`` configuration of pyproject.toml and a
cache of their own (so a fresh clone, with no cache, is what is tested). The public API usage they
check is tests/typing_usage.py, which pytest does not collect.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USAGE = Path(__file__).resolve().parent / "typing_usage.py"
# The oldest mypy whose bundled typeshed the package is clean with (older ones disagree on stdlib stubs,
# e.g. codecs.escape_decode returning str): keep in step with the test extra in pyproject.toml.
MIN_MYPY = (2, 1)


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is missing: install the test extra (pip install -e '.[test]')")
    version = importlib.metadata.version("mypy")
    if tuple(int(part) for part in re.findall(r"\d+", version)[:2]) < MIN_MYPY:
        pytest.skip(f"mypy {version} is older than {'.'.join(map(str, MIN_MYPY))}, which the test extra requires")
    return tmp_path_factory.mktemp("mypy_cache")


def run_mypy(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # cwd=ROOT: the configuration's relative paths (files, mypy_path) are relative to the working directory.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache),
         *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


def test_package_type_checks_cleanly(mypy_cache: Path) -> None:
    """`mypy` with the project's configuration reports no error in src/anypickle."""
    done = run_mypy(mypy_cache)
    assert done.returncode == 0, f"mypy found errors in the package:\n{done.stdout}{done.stderr}"
    assert "Success: no issues found" in done.stdout, done.stdout


def test_public_api_usage_passes_strict_mypy(mypy_cache: Path) -> None:
    """Calls of dumps/loads/dump/load/explain/check/wrap/ProcessPoolExecutor and the errors pass `mypy --strict`."""
    # --follow-imports=silent: strict flags apply to anypickle's modules as in a strict caller's run,
    # but only the caller's file reports errors (as for an installed package).
    done = run_mypy(mypy_cache, "--strict", "--follow-imports=silent", str(USAGE))
    assert done.returncode == 0, f"mypy --strict rejects public API usage:\n{done.stdout}{done.stderr}"
    assert "Success: no issues found in 1 source file" in done.stdout, done.stdout
