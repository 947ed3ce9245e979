"""ScanReport's shape, files and zip containers, envelopes, and the ``anypickle scan`` command."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict

import pytest

import anypickle
from anypickle.cli import main
from anypickle import ScanFinding, Severity, scan
from malicious import build_corpus


def test_report_fields_dict_and_text(tmp_path):
    """An unsafe report has a verdict, raw+mapped globals, positioned findings, a JSON dict and text."""
    data = build_corpus(tmp_path)["os_system"].data
    report = scan(data)
    assert report.safe is False
    assert report.globals == [("os.system", "os.system")]
    finding = report.findings[0]
    assert isinstance(finding, ScanFinding)
    assert (finding.severity, finding.opcode, finding.position, finding.global_name) == ("unsafe", "GLOBAL", 0, "os.system")
    with pytest.raises(AttributeError):
        finding.severity = "info"  # frozen
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["safe"] is False and as_dict["findings"][0]["position"] == 0
    text = str(report)
    assert "UNSAFE" in text and "os.system" in text and "@0" in text
    assert as_dict["findings"][0]["severity"] == "unsafe"


def test_top_level_scan_and_ordered_severity():
    """``anypickle.scan`` is the function (no subpackage in the way); severities compare by rank."""
    import anypickle

    assert anypickle.scan is scan and callable(anypickle.scan)
    assert anypickle.safe_loads(pickle.dumps({"a": [1, 2]})) == {"a": [1, 2]}
    assert Severity.INFO < Severity.WARNING < Severity.UNSAFE and max(Severity) is Severity.UNSAFE
    assert sorted([Severity.UNSAFE, Severity.INFO, Severity.WARNING]) == [Severity.INFO, Severity.WARNING, Severity.UNSAFE]
    assert Severity.UNSAFE == "unsafe" and str(Severity.WARNING) == "warning"
    report = anypickle.scan(pickle.dumps(print))
    assert max(f.severity for f in report.findings) is Severity.UNSAFE and not report.safe


def test_scan_reads_paths(tmp_path):
    """A str or PathLike is read as a file; a missing one is a UsageError."""
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    assert scan(path).safe and scan(str(path)).source == str(path)
    with pytest.raises(anypickle.UsageError, match="no such file"):
        scan(tmp_path / "missing.pkl")
    with pytest.raises(anypickle.UsageError):
        scan(12)


def _torch_like_zip(data_pkl: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data/0", bytes(range(256)) * 4)
        zf.writestr("archive/extra/notes.bin", pickle.dumps("hidden", 4))  # no .pkl suffix, still a pickle
    return buf.getvalue()


def test_zip_members_are_scanned_with_positions(tmp_path):
    """A PyTorch-style zip is scanned member by member; findings name the member and its offset."""
    evil = build_corpus(tmp_path)["stack_global_exec"].data
    report = scan(_torch_like_zip(evil))
    assert not report.safe
    assert report.members == ["archive/data.pkl", "archive/extra/notes.bin"]
    assert {f.member for f in report.unsafe_findings} == {"archive/data.pkl"}
    assert "archive/data.pkl@" in str(report)
    clean = scan(_torch_like_zip(pickle.dumps(OrderedDict(w=[1.0]), 2)))
    assert clean.safe and clean.globals == [("collections.OrderedDict", "collections.OrderedDict")]


def test_corrupt_zip_is_unsafe():
    """A zip header with a broken body is a finding, not an exception."""
    report = scan(b"PK\x03\x04" + b"\x00" * 40)
    assert not report.safe


def test_envelopes_are_scanned_with_absolute_positions():
    """An anypickle envelope's payload is scanned; code-carrying backends are unsafe by design."""
    plain = anypickle.dumps({"a": [1, 2]}, backend="pickle")
    assert scan(plain).safe
    code = anypickle.dumps(lambda x: x + 1)
    report = scan(code)
    assert not report.safe and report.findings[0].opcode == "ENVELOPE"
    signed = anypickle.dumps([1], key=b"k" * 32, key_id="2024")
    report = scan(signed)
    assert report.safe and any(f.severity == "info" and "2024" in f.message for f in report.findings)


def test_cli_exit_codes_and_json(tmp_path, capsys):
    """anypickle scan: 0 when all files are safe, 1 when any is unsafe, 2 for a missing file."""
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"x": 1}))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(build_corpus(tmp_path)["os_system"].data)
    assert main(["scan", str(good)]) == 0
    assert main(["scan", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "SAFE" in out and "UNSAFE" in out
    assert main(["scan", "--json", str(bad)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["safe"] is False and doc["files"][0]["findings"][0]["global_name"] == "os.system"
    assert main(["scan", str(good), str(tmp_path / "missing.pkl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["scan", "--allow", "os.system", str(bad)]) == 0


def test_cli_usage_error_exits_2():
    """Calling the installed entry point without files is an argparse usage error (exit 2)."""
    proc = subprocess.run([sys.executable, "-m", "anypickle", "scan"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "FILE" in proc.stderr
