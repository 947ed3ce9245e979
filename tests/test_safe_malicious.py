"""Every malicious pickle in tests/malicious.py is refused by safe loading in a child process before it
runs (its marker file never appears), is flagged by scan, and is real: plain pickle.loads runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anypickle import UnsafePickleError
from anypickle.safe import safe_loads
from anypickle import scan
from anypickle.lab.runner import run_script
from malicious import build_corpus

# Runs in a child: loads each case (in "safe" or "plain" mode) and writes one outcome per case to a
# JSON file (payloads such as cProfile.run print to stdout, so stdout is not the channel).
CHILD = r"""
import copyreg, json, pickle, sys
mode, cases_path, out_path = sys.argv[1:4]
cases = json.load(open(cases_path))
outcomes = {}
for name, hexdata, setup in cases:
    data = bytes.fromhex(hexdata)
    if setup:
        exec(setup, {})
    outcome = {"loaded": False, "error": None, "anypickle_error": False, "position": None, "global_name": None}
    try:
        if mode.startswith("safe"):
            import anypickle, anypickle.safe._loads
            anypickle.safe._loads.C_FIRST = mode == "safe_c_first"
            anypickle.loads(data, safe=True)
        else:
            result = pickle.loads(data)
            if hasattr(result, "wait"):  # a subprocess.Popen the payload started: let it finish
                result.wait()
        outcome["loaded"] = True
    except BaseException as exc:
        import anypickle
        outcome["error"] = type(exc).__name__ + ": " + str(exc)[:300]
        outcome["anypickle_error"] = isinstance(exc, anypickle.AnyPickleError)
        outcome["position"] = getattr(exc, "position", None)
        outcome["global_name"] = getattr(exc, "global_name", None)
    finally:
        copyreg._extension_registry.clear()
        copyreg._inverted_registry.clear()
        copyreg._extension_cache.clear()
    outcomes[name] = outcome
json.dump(outcomes, open(out_path, "w"))
print(json.dumps(len(outcomes)))
"""


def _run_child(mode: str, corpus: dict, workdir: Path) -> dict:
    cases_path = workdir / f"cases-{mode}.json"
    out_path = workdir / f"out-{mode}.json"
    cases_path.write_text(json.dumps([[n, c.data.hex(), c.setup] for n, c in corpus.items()]))
    count = run_script(workdir / f"child-{mode}", CHILD, args=[mode, str(cases_path), str(out_path)], timeout=180)
    assert count == len(corpus)
    return json.loads(out_path.read_text())


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Load the whole corpus once safely (markers in safe/) and once plainly (markers in plain/)."""
    root = tmp_path_factory.mktemp("malicious")
    results = {}
    for mode in ("safe", "safe_c_first", "plain"):
        marker_dir = root / mode
        marker_dir.mkdir()
        corpus = build_corpus(marker_dir)
        results[mode] = (marker_dir, corpus, _run_child(mode, corpus, root))
    return results


CASE_NAMES = sorted(build_corpus(Path("/nonexistent")))


@pytest.mark.parametrize("mode", ["safe", "safe_c_first"])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_safe_load_refuses_before_running(outcomes, name, mode):
    """loads(safe=True) raises an anypickle error and the payload's marker file never appears
    (also with the optional C-first path, see anypickle.safe._loads.C_FIRST)."""
    marker_dir, corpus, results = outcomes[mode]
    outcome = results[name]
    assert not outcome["loaded"], f"{name} ({corpus[name].technique}) loaded under safe=True"
    assert outcome["anypickle_error"], outcome["error"]
    assert outcome["error"].startswith("UnsafePickleError"), outcome["error"]
    assert isinstance(outcome["position"], int)
    assert not (marker_dir / name).exists(), f"{name} ran under safe=True: {corpus[name].technique}"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_payload_is_real_under_plain_pickle(outcomes, name):
    """Sanity: plain pickle.loads does run the payload, so the refusal above is meaningful."""
    marker_dir, corpus, results = outcomes["plain"]
    assert (marker_dir / name).exists(), f"{name} did not run under pickle.loads: {results[name]['error']}"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_scan_flags_every_malicious_pickle(tmp_path, name):
    """The static scanner marks every case unsafe, with at least one finding at a byte position."""
    corpus = build_corpus(tmp_path)
    report = scan(corpus[name].data)
    assert not report.safe
    assert report.unsafe_findings
    assert all(0 <= f.position < len(corpus[name].data) for f in report.unsafe_findings)
    assert not (tmp_path / name).exists()


def test_error_names_global_and_position(tmp_path):
    """The refusal of os.system names the global and the byte offset of its GLOBAL opcode."""
    data = build_corpus(tmp_path)["os_system"].data
    with pytest.raises(UnsafePickleError) as info:
        safe_loads(data)
    assert info.value.global_name == "os.system"
    assert info.value.position == 0
    assert "os.system" in str(info.value) and "byte 0" in str(info.value)


def test_dotted_name_through_allowed_module_is_named_exactly(tmp_path):
    """uuid + "os.system" is refused as uuid.os.system: modules never match by prefix."""
    data = build_corpus(tmp_path)["dotted_through_allowed_module"].data
    with pytest.raises(UnsafePickleError) as info:
        safe_loads(data)
    assert info.value.global_name == "uuid.os.system"


def test_memo_overwrite_is_seen_through(tmp_path):
    """The scanner resolves the overwritten memo entry: it reports os.system, not datetime.system."""
    report = scan(build_corpus(tmp_path)["memo_overwrite"].data)
    assert ("os.system", "os.system") in report.globals
    assert any("overwritten" in f.message for f in report.unsafe_findings)


def test_computed_name_is_reported_as_computed(tmp_path):
    """A STACK_GLOBAL operand made by REDUCE is unsafe even though every named global is allowed."""
    report = scan(build_corpus(tmp_path)["computed_name"].data)
    assert any("computed at load time" in f.message for f in report.unsafe_findings)
