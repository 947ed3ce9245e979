"""anypickle.check(obj): dumps here, loads and compares in a fresh interpreter, returns the outcome."""

from __future__ import annotations

import sys

import pytest

import anypickle
from anypickle._interpreters import find_other_pythons


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
