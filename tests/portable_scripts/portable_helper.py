"""A local helper module: beside the sender script, absent on the receiver."""

import math

OFFSET = 100


def hypot_plus(a, b):
    """Uses a stdlib module and a global of this module."""
    return math.hypot(a, b) + OFFSET


def twice(x):
    return 2 * _inner(x)


def _inner(x):
    return x


class Shape:
    sides = 0

    def __init__(self, size):
        self.size = size

    def describe(self):
        return f"{type(self).__name__} with {self.sides} sides of {self.size}"

    def perimeter(self):
        return self.sides * self.size
