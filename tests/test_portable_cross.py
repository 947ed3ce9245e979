"""Portable payloads cross Python versions: every case dumped under each installed 3.10-3.13 loads under every other.

One sender process per interpreter runs ``portable_scripts/sender.py`` as ``__main__`` beside a local
helper module and dumps all cases with ``anypickle.dumps(obj, portable=True)``; one receiver process per
(sender, receiver) pair loads them in another temporary folder that lacks the script and the helper, and
exercises each object. A case passes when the receiver's result equals the sender's own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _interpreters import VERSIONS, child_env, find_interpreter, venv_python

SCRIPTS = Path(__file__).parent / "portable_scripts"
sys.path.insert(0, str(SCRIPTS))
from exercise import EXERCISES  # noqa: E402

sys.path.remove(str(SCRIPTS))

CASES = sorted(EXERCISES)
PAIRS = [(s, r) for s in VERSIONS for r in VERSIONS]
MISSING = {v: f"Python {v} is not installed (looked in pyenv and on PATH)" for v in VERSIONS if find_interpreter(v) is None}


def _run(python: str, script: Path, arg: str, cwd: Path) -> str:
    proc = subprocess.run([python, str(script), arg], cwd=cwd, env=child_env(python), capture_output=True, text=True,
                          timeout=300, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{python} {script.name} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


@pytest.fixture(scope="session")
def cross_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run every sender, then every (sender, receiver) pair; two child processes at a time."""
    available = [v for v in VERSIONS if v not in MISSING]
    pythons = {v: venv_python(v) for v in available}
    sent: dict[str, dict] = {}
    senders_dir = tmp_path_factory.mktemp("senders")

    def send(version: str) -> None:
        folder = senders_dir / f"py{version}"
        folder.mkdir()
        for name in ("sender.py", "portable_helper.py", "exercise.py"):
            shutil.copy(SCRIPTS / name, folder / name)
        out = folder / "sent.json"
        _run(pythons[version], folder / "sender.py", str(out), folder)
        sent[version] = json.loads(out.read_text())

    receivers_dir = tmp_path_factory.mktemp("receivers")  # a different folder: no helper module here
    shutil.copy(SCRIPTS / "receiver.py", receivers_dir / "receiver.py")
    shutil.copy(SCRIPTS / "exercise.py", receivers_dir / "exercise.py")
    received: dict[tuple[str, str], dict] = {}

    def receive(pair: tuple[str, str]) -> None:
        s, r = pair
        out = _run(pythons[r], receivers_dir / "receiver.py", str(senders_dir / f"py{s}" / "sent.json"), receivers_dir)
        received[pair] = json.loads(out)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(send, available))
        list(pool.map(receive, [(s, r) for s in available for r in available]))
    return {"sent": sent, "received": received}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("sender,receiver", PAIRS, ids=[f"{s}-to-{r}" for s, r in PAIRS])
def test_portable_case_behaves_the_same_in_another_version(cross_results, sender, receiver, case, request):
    """The object loaded under ``receiver`` behaves as the original did under ``sender``."""
    for v in (sender, receiver):
        if v in MISSING:
            pytest.skip(MISSING[v])
    sent = cross_results["sent"][sender]
    got = cross_results["received"][(sender, receiver)]
    assert got["python"] == receiver and sent["python"] == sender
    assert got["results"]["_helper_importable"] is False, "the receiver must not see the sender's helper module"
    assert sent["payloads"][case] is not None, sent.get("dump_errors", {}).get(case)
    expected = sent["expected"][case]
    actual = got["results"][case]
    ok = actual == expected
    # The compatibility matrix's cell (cross-version mode, portable column); recorded, then asserted.
    request.node.user_properties.append(("matrix_cell", {"mode": "cross-version", "column": "portable", "case": case,
                                    "sender": sender, "receiver": receiver, "outcome": "ok" if ok else "fail"}))
    assert "ok" in expected, f"the case itself fails on the sender: {expected}"
    assert actual == expected
