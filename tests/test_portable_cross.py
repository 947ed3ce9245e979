"""Portable payloads cross Python versions: every catalogue case whose code portable ships, dumped under each
installed 3.10-3.13, loads under every other and behaves as the original did.

The lab's runner does the work (:mod:`anypickle.lab.runner`), as for the matrix: one fork server per
interpreter runs each case's script as ``__main__`` beside its helper module and dumps the object with
``portable``; fork servers of every interpreter then load each payload in an empty folder that lacks the
script and the helper, and run the case's check. A cell passes when it has the outcome the catalogue
records for that (sender, receiver) pair (``Case.expected(..., sender=...)``): for these cases, ``ok``
unless a ``portable_to`` entry says the receiver's Python changes the result.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from _interpreters import VERSIONS, find_interpreter, receiver_for
from anypickle.lab import OK, WRONG_RESULT
from anypickle.lab.catalogue import Case, all_cases
from anypickle.lab.runner import Pool, receive_case, receive_job, send_case, slug, write_case_files

# Every case whose code travels (auto's payload carries code) and whose portable column is ok in a fresh
# process of the sender's own version; rows of plain data and installed objects travel by reference and
# rows that need a package (numpy) stay with the matrix (its "other" mode runs them from this Python).
CASES = {case.name: case for case in all_cases()
         if case.expect["portable"] == OK and case.carries_code and not case.requires}

# The receiver must not see the sender's helper module: a check that looks for it is true on the
# sender, so a receiver that has it would report "ok", one that lacks it "wrong result".
HELPER_PROBE = Case(
    "probe: the helper module stays behind", "probe",
    "import example_helper\n",
    "example_helper.answer",
    """
    def check(f):
        import sys
        return [f(), "example_helper" in sys.modules]
    """,
    {column: OK for column in ("pickle", "marshal", "cloudpickle", "dill", "auto", "portable")},
    helper="def answer():\n    return 42\n",
)
PAIRS = [(s, r) for s in VERSIONS for r in VERSIONS]
MISSING = {v: f"Python {v} is not installed (looked in pyenv and on PATH)" for v in VERSIONS if find_interpreter(v) is None}
TIMEOUT = 20.0


@pytest.fixture(scope="session")
def cross_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Send every case from every interpreter, then load every payload in every interpreter (two at a time)."""
    available = [v for v in VERSIONS if v not in MISSING]
    receivers = {v: receiver_for(v) for v in available}
    workdir = tmp_path_factory.mktemp("cross")
    cases = [*CASES.values(), HELPER_PROBE]
    files = {case.name: write_case_files(case, str(workdir)) for case in cases}
    pool = Pool(str(workdir / "servers"))
    sent: dict = {}

    def send(item: tuple) -> None:
        version, case = item
        payload_dir = workdir / "payloads" / slug(case.name) / version
        payload_dir.mkdir(parents=True)
        sent[(version, case.name)] = send_case(
            pool, receivers[version], {"script": files[case.name]["script"], "payload_dir": str(payload_dir)},
            case, ["portable"], timeout=TIMEOUT, same=False)

    received: dict = {}

    def receive(item: tuple) -> None:
        sender, receiver, case = item
        result = sent[(sender, case.name)]
        if "error" in result or "portable" not in result.get("dumped", {}):
            received[(sender, receiver, case.name)] = {"outcome": "not sent", "detail": str(result)[:500]}
            return
        job = receive_job(case, result, "portable", files[case.name]["extra_path"], timeout=TIMEOUT)
        received[(sender, receiver, case.name)] = receive_case(pool, receivers[receiver], job, timeout=TIMEOUT)

    try:
        with ThreadPoolExecutor(max_workers=2) as executor:
            list(executor.map(send, [(v, case) for v in available for case in cases]))
            list(executor.map(receive, [(s, r, case) for s in available for r in available for case in cases]))
    finally:
        pool.close()
    return received


def _version(label: str) -> tuple:
    return tuple(int(part) for part in label.split("."))


def _skip_missing(*versions: str) -> None:
    for v in versions:
        if v in MISSING:
            pytest.skip(MISSING[v])


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("sender,receiver", PAIRS, ids=[f"{s}-to-{r}" for s, r in PAIRS])
def test_portable_case_behaves_the_same_in_another_version(cross_results, sender, receiver, case, request):
    """The object loaded under ``receiver`` behaves as the original did under ``sender``."""
    _skip_missing(sender, receiver)
    cell = cross_results[(sender, receiver, case)]
    mode = "fresh" if sender == receiver else "other"
    expected = CASES[case].expected("portable", mode, _version(receiver), sender=_version(sender))
    # The compatibility matrix's cell (cross-version mode, portable column); recorded, then asserted.
    request.node.user_properties.append(("matrix_cell", {"mode": "cross-version", "column": "portable", "case": case,
                                                         "sender": sender, "receiver": receiver,
                                                         "outcome": "ok" if cell["outcome"] == OK else "fail"}))
    assert cell["outcome"] == expected, cell["detail"]


@pytest.mark.parametrize("sender,receiver", PAIRS, ids=[f"{s}-to-{r}" for s, r in PAIRS])
def test_the_receiver_lacks_the_senders_helper_module(cross_results, sender, receiver):
    """The sender imported its helper module; the receiver (another folder) must not have it."""
    _skip_missing(sender, receiver)
    cell = cross_results[(sender, receiver, HELPER_PROBE.name)]
    assert cell["outcome"] == WRONG_RESULT, cell
    assert cell["detail"] == "expected [42, true], got [42, false]", cell
