"""The adversarial corpus (tests/adversarial.py) against safe loading, each stream loaded in a child
with RLIMIT_AS and a timeout (tests/_safe_child.py): no crash, no hang, no import, no change to
numpy's or uuid's shared objects, and each stream refused (naming the limit, for resource bombs) or,
for the benign controls, loaded. Every path: C-first (the default), static-first, and without the C
extension (the limits then come from anypickle.safe._tracking)."""

from __future__ import annotations

import pytest

from _safe_child import run_streams
from adversarial import build_cases

CASES = build_cases()


@pytest.fixture(scope="module", params=["c_first", "static_first", "no_extension"])
def outcomes(request, tmp_path_factory):
    return run_streams({name: case.data for name, case in CASES.items()},
                       tmp_path_factory.mktemp(request.param), mode=request.param)


@pytest.mark.parametrize("name", sorted(CASES))
def test_adversarial_stream(outcomes, name):
    case = CASES[name]
    got = outcomes[name]
    assert got["outcome"] != "foreign", got["error"]
    assert got["new_modules"] == [], f"the load imported {got['new_modules']}"
    assert not got["state_changed"], "numpy's or uuid's shared objects changed"
    assert got["outcome"] == case.expect, got["error"]
    if case.limit is not None:
        assert got["limit"] == case.limit, got["error"]


def test_corpus_covers_every_class():
    assert {case.klass for case in CASES.values()} == {1, 2, 3, 4}


# Streams whose harm plain pickle.loads shows without crashing: the child's checks see it, so the
# same checks passing under safe=True mean something. (numpy 2.4 ignores a BUILD on its own builtin
# dtype singletons, so the shared-dtype streams do no visible harm there; they are refused anyway.)
HARMFUL_WHEN_PLAIN = {
    "newobj_helper_enum_member_build": "state",
    "newobj_ex_helper_enum_member_build": "state",
    "newobj_helper_bytes_idna": "import",
    "newobj_ex_bytes_encoding_kwarg": "import",
}


@pytest.mark.parametrize("name", sorted(HARMFUL_WHEN_PLAIN))
def test_plain_pickle_does_the_harm(tmp_path, name):
    got = run_streams({name: CASES[name].data}, tmp_path, mode="plain")[name]
    if HARMFUL_WHEN_PLAIN[name] == "state":
        assert got["state_changed"], got
    else:
        assert got["new_modules"], got
