"""anypickle.check(obj): dumps here, loads and compares in a fresh interpreter, returns the outcome."""

from __future__ import annotations

import sys

import pytest

import anypickle
from anypickle.lab._interpreters import find_other_pythons


class Cart:
    """Defined in this test module, which a receiver started in an empty folder cannot import."""

    def __init__(self) -> None:
        self.items = [("apple", 2), ("pear", 3)]

    def total(self) -> int:
        return sum(n for _, n in self.items)


def test_a_test_module_instance_is_ok_with_auto_and_fails_to_load_with_pickle():
    """auto ships the class by value; pickle names a module the fresh receiver lacks."""
    auto = anypickle.check(Cart(), exercise=lambda cart: cart.total())
    assert (auto.outcome, auto.backend, bool(auto)) == ("ok", "cloudpickle", True)
    by_name = anypickle.check(Cart(), backend="pickle")
    assert by_name.outcome == "loads fails" and "test_check" in by_name.detail


def test_a_lambda_that_pickle_cannot_dump_is_dumps_fails():
    """A forced backend that cannot serialize the object reports dumps fails, with its message."""
    result = anypickle.check(lambda x: x + 1, backend="pickle")
    assert (result.outcome, result.backend) == ("dumps fails", None)
    assert "lambda" in result.detail


def test_an_object_that_arrives_as_another_type_is_a_wrong_result():
    """The default structural comparison notices a memoryview that arrives as bytes."""
    result = anypickle.check(memoryview(b"ab"), backend="cloudpickle")
    assert result.outcome == "wrong result" and "memoryview" in result.detail


def test_a_generator_is_refused_with_a_clear_error():
    """auto refuses live execution state with its own error and says why."""
    result = anypickle.check(x for x in range(3))
    assert result.outcome == "clear error" and "generator" in result.detail


def test_a_failing_exercise_on_the_original_is_a_usage_error():
    """The exercise must work on the original object; if not, that is the caller's mistake."""
    with pytest.raises(anypickle.UsageError, match="exercise"):
        anypickle.check(Cart(), exercise=lambda cart: cart.missing())


def test_another_python_refuses_bytecode_and_accepts_data():
    """python=PATH loads in that interpreter: bytecode is refused clearly, plain data is ok."""
    others = [path for path, version in find_other_pythons()[0]]
    if not others:
        pytest.skip("no other Python (3.10 or newer) in pyenv or on PATH")
    refused = anypickle.check(lambda x: x, python=others[-1])
    assert refused.outcome == "clear error" and "InterpreterMismatchError" in refused.detail
    assert anypickle.check({"a": [1, 2.5, None]}, python=others[-1]).ok


# --- the command line: anypickle check module:attr ------------------------------------------------


def _check_cli(tmp_path, *args: str):
    import subprocess
    import sys

    (tmp_path / "mytasks.py").write_text(
        "offset = 10\n"
        "task = lambda x: x * 2 + offset\n"
        "numbers = (i for i in range(3))\n")
    return subprocess.run([sys.executable, "-m", "anypickle", "check", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_cli_check_ok_on_a_lambda_of_a_local_module(tmp_path):
    """`anypickle check mytasks:task` ships a lambda of a module the receiver lacks: exit 0."""
    done = _check_cli(tmp_path, "mytasks:task")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("mytasks:task: ok (written by "), done.stdout


def test_cli_check_fails_on_a_generator_with_the_reason(tmp_path):
    """A generator cannot travel: exit 1, the outcome and anypickle's reason printed."""
    done = _check_cli(tmp_path, "mytasks:numbers")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("mytasks:numbers: clear error"), done.stdout
    assert "reason: EncodeError" in done.stdout and "generator" in done.stdout


def test_cli_check_with_a_forced_backend_names_its_failure(tmp_path):
    """--backend pickle on a lambda: pickle cannot dump it, exit 1."""
    done = _check_cli(tmp_path, "mytasks:task", "--backend", "pickle")
    assert done.returncode == 1 and "mytasks:task: dumps fails" in done.stdout, done.stdout + done.stderr


def test_cli_check_with_backend_portable_ships_source(tmp_path):
    """--backend portable: the lambda travels as source (a pickle payload), exit 0."""
    done = _check_cli(tmp_path, "mytasks:task", "--backend", "portable")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("mytasks:task: ok (written by pickle"), done.stdout


def test_check_with_backend_portable_loads_in_another_python():
    """check(backend="portable") crosses Python versions where a bytecode payload is refused."""
    from anypickle.lab._interpreters import find_other_pythons

    others = [path for path, _ in find_other_pythons()[0]]
    if not others:
        pytest.skip("no other Python (3.10 or newer) in pyenv or on PATH")
    assert anypickle.check(lambda x: x + 1, backend="portable", python=others[-1]).ok
