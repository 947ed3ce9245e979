"""Code the benchmarks treat as a user's script: every definition claims ``__module__ == "__main__"``.

A receiver never has the sender's ``__main__``, so cloudpickle, dill and anypickle all ship these
by value, exactly as they would for a class or function defined in the script being run.
"""

from __future__ import annotations

import math


class Point:
    """A small user class with a method, as a script would define it."""

    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y

    def norm(self) -> float:
        return math.hypot(self.x, self.y)


SCALE = 3


def module_function(x: float) -> float:
    """A top-level function of the script that uses a module and a global."""
    return math.sqrt(x) * SCALE


def make_lambda():
    return lambda x: x * SCALE + 1


def make_closure(offset: int):
    def shifted(x: int) -> int:
        return x + offset

    return shifted


def make_lambdas(n: int):
    return [lambda x, i=i: x + i for i in range(n)]


def _claim_main(obj):
    obj.__module__ = "__main__"
    return obj


for _obj in (Point, Point.__init__, Point.norm, module_function):
    _claim_main(_obj)
_make = {name: globals()[name] for name in ("make_lambda", "make_closure", "make_lambdas")}


def lambda_() :
    return _claim_main(make_lambda())


def closure():
    return _claim_main(make_closure(7))


def lambdas(n: int):
    return [_claim_main(f) for f in make_lambdas(n)]
