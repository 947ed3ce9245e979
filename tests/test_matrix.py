"""The compatibility matrix, asserted cell by cell, plus the hard guarantees of anypickle auto.

One session-scoped run ships every catalogue case through every backend (batched child processes);
each parametrized test then looks up its cell, records it for the plugin that writes
``compat-matrix.json``, and asserts the outcome the catalogue recorded. A backend upgrade that changes
behaviour fails here instead of silently changing the published matrix.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap

import pytest

from anypickle.lab import runner
from anypickle.lab._interpreters import find_other_pythons
from anypickle.lab.render import render_markdown
from anypickle.lab.pytest_plugin import set_matrix_run
from anypickle.lab.catalogue import BACKENDS, CLEAR, LOADS, OK, WRONG, Case, all_cases, exp
from anypickle.lab import CASE_ERROR
from anypickle.lab.matrix import run_matrix

CASES = all_cases()
OTHER_PYTHONS, _ = find_other_pythons()
OTHER_MODES = [f"py{v[0]}.{v[1]}" for _, v in OTHER_PYTHONS]
MODES = ["same", "fresh"] + (OTHER_MODES or ["other"])
RAW = ["pickle", "marshal", "cloudpickle", "dill"]  # the bare libraries; auto and portable are anypickle
NO_OTHER_PYTHON = ("no other Python (3.10 or newer) found in pyenv's versions or as python3.X on PATH: "
                   "the cross-version mode needs one")


class Matrix:
    """The session's matrix document, indexed by (case, backend, mode)."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.cells = {(c["case"], c["backend"], c["mode"]): c for c in doc["cells"]}
        self.kinds = {m["id"]: m["kind"] for m in doc["modes"]}

    def cell(self, case: str, backend: str, mode: str) -> dict:
        return self.cells[(case, backend, mode)]

    def modes_of_kind(self, kind: str) -> list:
        return [mode for mode, k in self.kinds.items() if k == kind]


@pytest.fixture(scope="session")
def matrix(pytestconfig) -> Matrix:
    doc = run_matrix(CASES)
    set_matrix_run(pytestconfig, doc)
    return Matrix(doc)


def _case_id(case: Case) -> str:
    return case.name.replace(" ", "_")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_cell_has_the_recorded_outcome(matrix, record_property, case, backend, mode):
    """Each (case, backend, mode) cell shows the outcome the catalogue records for it."""
    if mode == "other":
        pytest.skip(NO_OTHER_PYTHON)
    if mode not in matrix.kinds:
        skipped = [s["reason"] for s in matrix.doc["skipped_modes"] if s["mode"] == mode]
        pytest.skip(f"{mode} receiver unavailable: {'; '.join(skipped) or 'not prepared'}")
    cell = matrix.cell(case.name, backend, mode)
    if cell["outcome"] == "skipped":
        pytest.skip(f"{mode}: {cell['detail']}")  # a receiver without numpy
    receiver = tuple(int(part) for part in mode[2:].split(".")) if mode.startswith("py") else None
    expected = case.expected(backend, matrix.kinds[mode], receiver)
    record_property("matrix_cell", {**cell, "expected": expected})
    assert cell["outcome"] == expected, f"{case.name} / {backend} / {mode}: {cell['detail']}"


# --- the hard assertions on anypickle auto ---------------------------------------------------------


def _rows_failing(matrix: Matrix, mode: str, predicate) -> list:
    failing = []
    for case in CASES:
        outcomes = {b: matrix.cell(case.name, b, mode)["outcome"] for b in BACKENDS}
        if predicate(outcomes):
            auto = matrix.cell(case.name, "auto", mode)
            failing.append(f"{case.name}: auto {auto['outcome']} ({auto['detail'][:160]})")
    return failing


def test_auto_is_ok_in_a_fresh_process_wherever_any_backend_is(matrix):
    """Fresh process: in every row where some backend ships the object intact, auto does too."""
    failing = _rows_failing(matrix, "fresh", lambda o: any(o[b] == OK for b in RAW) and o["auto"] != OK)
    assert not failing, "\n".join(failing)


def test_auto_ships_or_refuses_clearly_where_no_backend_can(matrix):
    """Fresh process: where no backend ships the object, auto ships it anyway or raises its own error.

    Except where the object's own ``__reduce__`` raises (``raises_own``): that exception reaches the
    caller unchanged, as with every raw library (see the next test).
    """
    own = {case.name for case in CASES if case.raises_own}
    failing = _rows_failing(matrix, "fresh",
                            lambda o: not any(o[b] == OK for b in RAW) and o["auto"] not in (OK, CLEAR))
    assert not [row for row in failing if row.split(": auto ")[0] not in own], "\n".join(failing)


def test_auto_lets_the_objects_own_exception_through(matrix):
    """Rows whose object raises in its own ``__reduce__``: auto and portable raise that very exception,
    not an anypickle error, exactly as pickle, cloudpickle and dill do (users catch it by its type)."""
    rows = [case for case in CASES if case.raises_own]
    assert rows
    for case in rows:
        for backend in ("pickle", "cloudpickle", "dill", "auto", "portable"):
            cell = matrix.cell(case.name, backend, "fresh")
            assert cell["outcome"] == "dumps fails" and cell["detail"].startswith("ValueError"), (backend, cell)


def test_the_measured_needs_of_every_case_are_the_ones_explain_uses(matrix):
    """explain's per-backend verdicts come from the catalogue's cases and the needs measured in them
    (catalogue/_measured.py): those must be what the analysis finds in each case's object now."""
    from anypickle.lab.catalogue._measured import NEEDS

    measured = {c["name"]: c["needs"] for c in matrix.doc["cases"] if c.get("needs") is not None}
    stale = {name: (list(NEEDS.get(name, ["<missing>"])), needs)
             for name, needs in measured.items() if list(NEEDS.get(name, ["<missing>"])) != needs}
    assert not stale, f"rerun scripts/update_case_needs.py: {stale}"


def test_explain_vouches_for_a_raw_backend_only_where_the_matrix_shows_it_shipping(matrix):
    """Per case with needs: a raw backend explain says ships was measured "ok" in the fresh process."""
    from anypickle import Backend
    from anypickle.analysis._explain import recorded_verdict

    wrong = []
    for c in matrix.doc["cases"]:
        if not c.get("needs"):
            continue
        for backend in RAW:
            ships, reason = recorded_verdict(Backend[backend.upper()], frozenset(c["needs"]))
            outcome = matrix.cell(c["name"], backend, "fresh")["outcome"]
            if ships and outcome != OK and outcome != "dumps fails":
                wrong.append(f"{c['name']} / {backend}: explain says ships ({reason}), the matrix: {outcome}")
    assert not wrong, "\n".join(wrong)


def test_auto_never_fails_to_load_nor_loads_something_wrong(matrix):
    """In every mode auto is never "loads fails" nor "wrong result"."""
    bad = [f"{c['mode']}: {c['case']}: {c['outcome']} ({c['detail'][:160]})"
           for c in matrix.doc["cells"] if c["backend"] == "auto" and c["outcome"] in (LOADS, WRONG)]
    assert not bad, "\n".join(bad)


def test_bytecode_is_refused_with_a_clear_error_on_another_python(matrix):
    """Any payload flagged as carrying bytecode is refused by another Python version, never run."""
    others = matrix.modes_of_kind("other")
    if not others:
        pytest.skip(NO_OTHER_PYTHON)
    cells = [c for c in matrix.doc["cells"] if c["mode"] in others and "+bytecode" in c.get("written_by", "")]
    assert cells, "no bytecode payload reached another interpreter"
    bad = [f"{c['mode']}: {c['case']} / {c['backend']}: {c['outcome']} ({c['detail'][:120]})"
           for c in cells if c["outcome"] != CLEAR or "InterpreterMismatchError" not in c["detail"]]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", [
    "function: singledispatch",
    "class: functools.cached_property",
    "class: exception with custom __init__",
])
def test_auto_goes_beyond_the_raw_backends(matrix, name):
    """The rows no raw backend ships intact to a fresh process; auto ships them."""
    raw_ok = [b for b in RAW if matrix.cell(name, b, "fresh")["outcome"] == OK]
    auto = matrix.cell(name, "auto", "fresh")
    assert auto["outcome"] == OK, f"auto: {auto['outcome']}: {auto['detail']} (raw backends ok: {raw_ok})"


def test_markdown_is_sorted_and_has_no_timestamp(matrix):
    """The Markdown is a pure function of the JSON: same input, same text; rows sorted; no date."""
    doc = json.loads(json.dumps(matrix.doc))
    first = render_markdown(doc)
    doc["cells"].reverse()
    assert render_markdown(doc) == first
    fresh_table = first.split("\n## fresh process")[1].split("\n## ")[0]
    rows = [line for line in fresh_table.splitlines() if line.startswith("| functions |")]
    assert rows == sorted(rows) and len(rows) == sum(c.group == "functions" for c in CASES)
    assert "2026" not in first and "UTC" not in first


# --- the runner's isolation ------------------------------------------------------------------------

_EXPLOSIVE = """
import ctypes, time

class Segfault:
    def __reduce__(self):
        return ctypes.string_at, (0,)      # reading address 0 kills the loading process

class Hang:
    def __reduce__(self):
        return time.sleep, (120,)

class Fine:
    value = 7
"""


def test_a_crashing_or_hanging_load_costs_one_cell():
    """A load that segfaults or hangs becomes that cell's outcome; the other cells still run."""
    pickle_only = exp(pickle=LOADS, marshal=LOADS, cloudpickle=LOADS, dill=LOADS, auto=LOADS)
    cases = [
        Case("boom: segfault on load", "test", _EXPLOSIVE, "Segfault()", "def check(o):\n    return 1\n", pickle_only),
        Case("boom: hang on load", "test", _EXPLOSIVE, "Hang()", "def check(o):\n    return 1\n", pickle_only),
        Case("boom: data", "test", "", "[1, 2]", "def check(o):\n    return o\n", pickle_only),
    ]
    doc = run_matrix(cases, backends=["pickle"], modes=["same", "fresh"], timeout=1.5)
    got = {(c["case"], c["mode"]): c for c in doc["cells"]}
    for mode in ("same", "fresh"):
        crash = got[("boom: segfault on load", mode)]
        assert crash["outcome"] == LOADS and "signal 11" in crash["detail"]
        hang = got[("boom: hang on load", mode)]
        assert hang["outcome"] == LOADS and hang["detail"].startswith("hang")
        assert got[("boom: data", mode)]["outcome"] == OK


_PROBE = Case(
    "probe: receiver environment", "test",
    "import example_helper\n",
    "example_helper.probe",
    textwrap.dedent("""
        def check(probe):
            return probe()
    """),
    exp(pickle=OK, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    helper=textwrap.dedent("""
        def probe():
            import os, sys, importlib.util
            main = sys.modules["__main__"]
            return [importlib.util.find_spec("example_helper") is not None,
                    hasattr(main, "example_helper"), os.path.basename(os.getcwd()) == "probe-receiver-environment"]
    """),
)


def test_the_receiver_lacks_the_senders_main_and_folder():
    """A fresh-process receiver cannot import the sender's helper module nor see its __main__."""
    doc = run_matrix([_PROBE], backends=["auto"], modes=["same", "fresh"])
    got = {c["mode"]: c for c in doc["cells"]}
    assert got["same"]["outcome"] == OK  # the sender: module importable, __main__ imported it, cwd = its folder
    assert got["fresh"]["outcome"] == WRONG
    assert "got [false, false, false]" in got["fresh"]["detail"]


def test_without_fork_every_job_gets_a_new_interpreter_and_the_cells_stay_the_same(monkeypatch):
    """Windows has no fork(): the runner then starts one interpreter per job, which runs it inline and
    ends. ANYPICKLE_NO_FORK=1 takes that path here (in the parent and, inherited, in the children).
    Every cell must be what the catalogue records (what the fork servers measure), a crash must still
    cost one case only, and the receiver still must not see the sender's __main__ or folder."""
    monkeypatch.setenv("ANYPICKLE_NO_FORK", "1")
    monkeypatch.setattr(runner, "HAS_FORK", False)
    by_group: dict = {}
    for case in CASES:  # the first two cases of every group
        by_group.setdefault(case.group, [])
        if len(by_group[case.group]) < 2 and not case.requires:
            by_group[case.group].append(case)
    picked = [case for cases in by_group.values() for case in cases]
    segfault = Case("boom: segfault on load", "test", _EXPLOSIVE, "Segfault()", "def check(o):\n    return 1\n",
                    exp(pickle=LOADS, marshal=LOADS, cloudpickle=LOADS, dill=LOADS, auto=LOADS))
    doc = run_matrix(picked + [segfault], modes=["same", "fresh"])
    kinds = {m["id"]: m["kind"] for m in doc["modes"]}
    checked = 0
    for cell in doc["cells"]:
        if cell["case"] == segfault.name:
            # The sender loads in its own process, which the crash ends: the whole case is an error
            # naming the signal, and no other case is touched.
            assert cell["outcome"] == CASE_ERROR and "signal 11" in cell["detail"], cell
            continue
        case = next(c for c in picked if c.name == cell["case"])
        assert cell["outcome"] == case.expected(cell["backend"], kinds[cell["mode"]], None), cell
        checked += 1
    assert checked == len(picked) * len(BACKENDS) * 2

    probe = run_matrix([_PROBE], backends=["auto"], modes=["fresh"])
    assert probe["cells"][0]["outcome"] == WRONG and "got [false, false, false]" in probe["cells"][0]["detail"]


# --- the command line ------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "anypickle", "matrix", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_the_selected_cases_as_csv():
    """`anypickle matrix ... --format csv --output -` streams one row per cell to stdout, no report folder."""
    done = _cli("--cases", "function: lambda", "--modes", "same,fresh", "--backends", "pickle,auto",
                "--format", "csv", "--output", "-")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    got = {(r["mode"], r["backend"]): r["outcome"] for r in rows}
    assert got == {("same", "pickle"): "dumps fails", ("same", "auto"): OK,
                   ("fresh", "pickle"): "dumps fails", ("fresh", "auto"): OK}


def test_cli_writes_json_to_output(tmp_path):
    """`--format json --output PATH` writes the document, with versions, and prints nothing else."""
    out = tmp_path / "m.json"
    done = _cli("--cases", "installed: json.dumps", "--modes", "fresh", "--format", "json", "--output", str(out))
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["sender"]["cloudpickle"] and doc["sender"]["dill"]
    assert {c["outcome"] for c in doc["cells"] if c["backend"] != "marshal"} == {OK}
    assert done.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["--backends", "pickle,yaml"], "unknown backend"),
    (["--cases", "no such case"], "no catalogue case matches"),
    (["--modes", "remote"], "unknown mode"),
    (["--versions", "numpy=1.26,2.0"], "'numpy' is not one of cloudpickle, dill"),
    (["--versions", "cloudpickle"], "expected LIBRARY=V1,V2"),
])
def test_cli_rejects_bad_options_with_a_clear_message(args, message):
    """Bad options exit with status 2 and one line naming the problem, not a traceback."""
    done = _cli(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_raw_columns_skip_the_envelope_and_its_interpreter_check():
    """--raw runs the bare libraries: another Python gets the bytecode and is not protected."""
    if not OTHER_PYTHONS:
        pytest.skip(NO_OTHER_PYTHON)
    lam = [c for c in CASES if c.name == "function: lambda"]
    guarded = run_matrix(lam, backends=["cloudpickle", "auto"], modes=["other"])
    bare = run_matrix(lam, backends=["cloudpickle", "auto"], modes=["other"], raw=True)
    assert {c["outcome"] for c in guarded["cells"] if c["backend"] in ("cloudpickle", "auto")} == {CLEAR}
    # Beside the envelope's refusal, the other-Python modes show what the bare library does there.
    beside = [c for c in guarded["cells"] if c["backend"] == "cloudpickle:raw"]
    assert len(beside) == len(OTHER_PYTHONS) and all(c["outcome"] != CLEAR for c in beside)
    assert all(m["columns"] == ["cloudpickle", "auto", "cloudpickle:raw"] for m in guarded["modes"])
    assert {c["outcome"] for c in bare["cells"] if c["backend"] == "auto"} == {CLEAR}
    raw_cells = [c for c in bare["cells"] if c["backend"] == "cloudpickle"]
    assert raw_cells and all(c["outcome"] != CLEAR and "written_by" not in c for c in raw_cells)


def test_rows_needing_a_package_the_sender_lacks_are_skipped_with_the_reason():
    """A row that requires a missing package is reported as skipped, naming the package."""
    case = Case("needs: a missing package", "test", "", "1", "def check(o):\n    return o\n",
                exp(pickle=OK, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
                requires=("no_such_package_anypickle",))
    doc = run_matrix([case], backends=["pickle"], modes=["same", "fresh"])
    assert [(c["outcome"], c["detail"]) for c in doc["cells"]] == [
        ("skipped", "the sender lacks no_such_package_anypickle "
                    "(pip install no_such_package_anypickle to run this row)")] * 2


# --- the report folder, --check, and the backend-version mode --------------------------------------


def test_cli_writes_the_report_folder_and_prints_only_the_summary(tmp_path):
    """Without --format, `anypickle matrix` writes md/json/csv and a heatmap per mode, and prints the summary."""
    report = tmp_path / "report"
    done = _cli("--cases", "function: lambda,class: plain instance", "--modes", "same,fresh",
                "--report", str(report))
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in report.iterdir())
    assert names == ["heatmap-fresh.png", "heatmap-same.png", "matrix.csv", "matrix.json", "matrix.md"]
    for picture in ("heatmap-fresh.png", "heatmap-same.png"):
        assert (report / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((report / "matrix.json").read_text())
    assert {c["outcome"] for c in doc["cells"] if c["backend"] == "auto"} == {OK}
    assert "| fresh process |" in done.stdout and "## fresh process" not in done.stdout
    assert f"report: {report}" in done.stdout
    assert len(done.stdout.splitlines()) < 20


def test_check_names_the_cells_that_differ_from_the_catalogue(tmp_path, monkeypatch, capsys):
    """--check exits 1 and names a cell whose expected outcome was doctored; 0 when all agree."""
    import dataclasses

    from anypickle import cli
    from anypickle.lab import matrix as matrix_module

    lam = next(c for c in CASES if c.name == "function: lambda")
    doctored = dataclasses.replace(lam, expect={**lam.expect, "pickle": OK})  # pickle really cannot dump it
    monkeypatch.setattr(matrix_module, "select_cases", lambda pattern=None: [doctored])
    status = cli.main(["matrix", "--modes", "fresh", "--backends", "pickle,auto", "--check",
                       "--report", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert status == 1
    assert "fresh / function: lambda / pickle: dumps fails (expected ok)" in err
    monkeypatch.setattr(matrix_module, "select_cases", lambda pattern=None: [lam])
    assert cli.main(["matrix", "--modes", "fresh", "--backends", "pickle,auto", "--check",
                     "--report", str(tmp_path / "r2")]) == 0
    assert "all 2 cells with an expected outcome agree" in capsys.readouterr().err


def test_numpy_rows_say_why_they_are_skipped():
    """A row the sender cannot run is skipped, and the summary says which rows and why."""
    from anypickle.lab.render import render_summary

    case = Case("needs: a missing package", "test", "", "1", "def check(o):\n    return o\n",
                exp(pickle=OK, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
                requires=("no_such_package_anypickle",))
    doc = run_matrix([case], backends=["pickle"], modes=["fresh"])
    summary = render_summary(doc)
    assert "| fresh process | — |" in summary
    assert ("Skipped, not counted: 1 row(s) (needs: a missing package): the sender lacks "
            "no_such_package_anypickle (pip install no_such_package_anypickle to run this row).") in summary


def test_backend_version_mode_runs_a_skewed_pair_through_a_cached_environment():
    """Sender with cloudpickle 3.1.2, receiver with the installed release (and back), in real
    environments installed by pip into anypickle's cache; the bare library column runs beside."""
    import cloudpickle

    installed = cloudpickle.__version__
    other = "3.1.2" if installed != "3.1.2" else "3.1.3"
    picked = [c for c in CASES if c.name in ("function: lambda", "class: plain instance")]
    doc = run_matrix(picked, modes=["versions"], versions={"cloudpickle": [installed, other]})
    cannot = [s["reason"] for s in doc["skipped_modes"] if "cannot install" in s["reason"]]
    if cannot:
        pytest.skip(f"pip cannot install cloudpickle {other}: {cannot[0][:200]}")
    modes = {m["id"]: m for m in doc["modes"]}
    skewed = modes[f"cloudpickle {other} -> {installed}"]
    assert skewed["versions"]["cloudpickle"] == installed and skewed["columns"] == ["cloudpickle:raw", "cloudpickle", "auto"]
    assert modes[f"cloudpickle {installed} -> {other}"]["versions"]["cloudpickle"] == other
    cells = [c for c in doc["cells"] if c["mode"] == skewed["id"]]
    assert len(cells) == 2 * 3
    assert all(c["outcome"] == OK for c in cells), cells
    # The envelope cells were written by the sender's library, the bare ones carry no envelope.
    assert {c.get("written_by", "").split("+")[0] for c in cells if c["backend"] == "cloudpickle"} == {"cloudpickle"}
    assert not any("written_by" in c for c in cells if c["backend"] == "cloudpickle:raw")


def test_report_without_matplotlib_has_the_text_formats_and_says_why(tmp_path, monkeypatch):
    """No matplotlib: Markdown, JSON and CSV are written, and the note names the extra to install."""
    from anypickle.lab.render import write_report

    lam = [c for c in CASES if c.name == "function: lambda"]
    doc = run_matrix(lam, backends=["pickle", "auto"], modes=["fresh"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.delitem(sys.modules, "anypickle.lab.plot", raising=False)
    written, note = write_report(doc, str(tmp_path))
    assert written == ["matrix.md", "matrix.json", "matrix.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrix.csv", "matrix.json", "matrix.md"]
    assert note == "no heatmap: matplotlib is not installed (pip install 'anypickle[report]' for the pictures)"
