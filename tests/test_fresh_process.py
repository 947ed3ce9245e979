"""Auto selection, proven where it matters: dumped by a script, loaded by a fresh interpreter elsewhere."""

from __future__ import annotations

import pytest

from anypickle.lab.runner import receive, send

EXAMPLE = """
def triple(x):
    return 3 * x + OFFSET

OFFSET = 1

class Turret:
    def __init__(self):
        self.shots = 0
    def hi(self):
        return "original hi"
    def fire(self):
        self.shots += 1
        return self.shots
"""

# (id, sender script binding obj, receiver expression over obj, expected result, backend auto must pick)
CASES = [
    (
        "star-destroyer-with-fitted-numpy-model",
        """
        import numpy as np
        class Star_Destroyer:
            def __init__(self):
                self.ammo = 100
                x = np.arange(10.0)
                self.cls = np.polynomial.Polynomial.fit(x, 2 * x + 1, 1)
            def shoot_laser(self):
                self.ammo -= 1
            def predict(self, v):
                return round(float(self.cls(v)), 6)
        obj = Star_Destroyer()
        obj.shoot_laser()
        """,
        "(obj.shoot_laser(), obj.ammo, obj.predict(4.0), type(obj).__name__)",
        [None, 98, 9.0, "Star_Destroyer"],
        "cloudpickle",
    ),
    (
        "builder-inner-closure",
        """
        def builder():
            base = 40
            def inner(x):
                return base + x
            return inner
        obj = builder()
        """,
        "obj(2)",
        42,
        "marshal",
    ),
    (
        "partial-of-lambda",
        """
        import functools
        obj = functools.partial(lambda a, b: a * b, 6)
        """,
        "obj(7)",
        42,
        "cloudpickle",
    ),
    (
        "helper-module-function",
        """
        from example import triple
        obj = triple
        """,
        "obj(2)",
        7,
        "marshal",
    ),
    (
        "lambda-deep-in-containers",
        """
        obj = {"jobs": [1, {"run": lambda x: x * 3}]}
        """,
        "obj['jobs'][1]['run'](5)",
        15,
        "cloudpickle",
    ),
    (
        "closures-sharing-a-rebound-cell",
        """
        def make():
            count = 0
            def get():
                return count
            def bump():
                nonlocal count
                count += 1
                return count
            return get, bump
        obj = make()
        obj[1]()
        """,
        "(obj[1](), obj[1](), obj[0]())",
        [2, 3, 3],
        "cloudpickle",
    ),
    (
        "cell-rebound-after-closure-creation",
        """
        def make():
            x = 1
            def g():
                return x
            x = 2
            return g
        obj = make()
        """,
        "obj()",
        2,
        "marshal",
    ),
    (
        "recursive-main-function-with-globals",
        """
        SCALE = 10
        def helper(n):
            return n * SCALE
        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)
        def task(n):
            return helper(fact(n))
        obj = task
        """,
        "obj(4)",
        240,
        "cloudpickle",
    ),
    (
        "instance-method-patched-under-new-name",
        """
        import types
        from example import Turret
        def hi2(self):
            return "patched hi2 after %d shots" % self.shots
        obj = Turret()
        obj.fire()
        obj.hi2 = types.MethodType(hi2, obj)
        """,
        "obj.hi2()",
        "patched hi2 after 1 shots",
        "cloudpickle",
    ),
    (
        "instance-method-patched-under-same-name",
        """
        import types
        from example import Turret
        def hi(self):
            return "patched hi"
        obj = Turret()
        obj.hi = types.MethodType(hi, obj)
        """,
        "(obj.hi(), obj.fire())",
        ["patched hi", 1],
        "cloudpickle",
    ),
    (
        "installed-class-patched-after-definition",
        """
        import fractions
        fractions.Fraction.describe = lambda self: "%d over %d" % (self.numerator, self.denominator)
        obj = fractions.Fraction(1, 3)
        """,
        "obj.describe()",
        "1 over 3",
        "cloudpickle",
    ),
    (
        "main-class-attribute-replaced",
        """
        class Greeter:
            def greet(self):
                return "hello"
        Greeter.greet = lambda self: "patched hello"
        obj = Greeter()
        """,
        "obj.greet()",
        "patched hello",
        "cloudpickle",
    ),
    (
        "class-made-by-type",
        """
        Point = type("Point", (), {"norm1": lambda self: abs(self.x) + abs(self.y)})
        obj = Point()
        obj.x, obj.y = 3, -4
        """,
        "obj.norm1()",
        7,
        "cloudpickle",
    ),
    (
        "main-enum",
        """
        import enum
        class Color(enum.Enum):
            RED = 1
            GREEN = 2
        obj = [Color.GREEN, Color]
        """,
        "(obj[0].name, obj[0].value, obj[0] is obj[1].GREEN, [c.name for c in obj[1]])",
        ["GREEN", 2, True, ["RED", "GREEN"]],
        "cloudpickle",
    ),
    (
        "frozen-slots-dataclass",
        """
        import dataclasses
        @dataclasses.dataclass(frozen=True, slots=True)
        class P:
            x: int
            y: int = 5
            def total(self):
                return self.x + self.y
        obj = P(3)
        """,
        "(obj.total(), repr(obj))",
        [8, "P(x=3, y=5)"],
        "cloudpickle",
    ),
    (
        "namedtuple-and-typing-namedtuple",
        """
        import collections, typing
        Pair = collections.namedtuple("Pair", "a b")
        class Row(typing.NamedTuple):
            name: str
            size: int = 1
        obj = (Pair(1, 2), Row("r"))
        """,
        "(obj[0].b, obj[1].size, obj[1]._fields)",
        [2, 1, ["name", "size"]],
        "cloudpickle",
    ),
    (
        "slots-class",
        """
        class S:
            __slots__ = ("a", "b")
            def __init__(self):
                self.a, self.b = 1, 2
            def total(self):
                return self.a + self.b
        obj = S()
        obj.b = 40
        """,
        "obj.total()",
        41,
        "cloudpickle",
    ),
    (
        "metaclass",
        """
        class Registry(type):
            names = []
            def __new__(mcls, name, bases, ns):
                cls = super().__new__(mcls, name, bases, ns)
                mcls.names.append(name)
                return cls
        class Plugin(metaclass=Registry):
            def run(self):
                return "run " + type(self).__name__
        obj = Plugin()
        """,
        "(obj.run(), type(type(obj)).__name__)",
        ["run Plugin", "Registry"],
        "cloudpickle",
    ),
    (
        "nested-class",
        """
        class Outer:
            class Inner:
                def where(self):
                    return type(self).__qualname__
        obj = Outer.Inner()
        """,
        "obj.where()",
        "Outer.Inner",
        "cloudpickle",
    ),
    (
        "generic-class",
        """
        from typing import Generic, TypeVar
        T = TypeVar("T")
        class Box(Generic[T]):
            def __init__(self, item: T):
                self.item = item
            def get(self) -> T:
                return self.item
        obj = Box[int](5)
        """,
        "obj.get()",
        5,
        "cloudpickle",
    ),
    (
        "main-subclass-of-helper-class",
        """
        from example import Turret
        class Cannon(Turret):
            def fire(self):
                return super().fire() * 100
        obj = Cannon()
        """,
        "(obj.fire(), obj.fire(), obj.hi())",
        [100, 200, "original hi"],
        "cloudpickle",
    ),
    (
        "plain-data-goes-through-pickle",
        """
        import datetime, fractions, collections
        obj = {"when": datetime.date(2024, 1, 2), "q": fractions.Fraction(1, 3), "d": collections.deque([1, 2])}
        """,
        "(obj['when'].isoformat(), str(obj['q']), list(obj['d']))",
        ["2024-01-02", "1/3", [1, 2]],
        "pickle",
    ),
    (
        "installed-function-by-reference",
        """
        import json
        obj = json.dumps
        """,
        "obj([1])",
        "[1]",
        "pickle",
    ),
    (
        "lock-inside-an-object",
        """
        import threading
        class Account:
            def __init__(self):
                self.lock = threading.Lock()
                self.balance = 10
            def deposit(self, n):
                with self.lock:
                    self.balance += n
                return self.balance
        obj = Account()
        """,
        "obj.deposit(5)",
        15,
        "cloudpickle",
    ),
    (
        "singledispatch-function-beyond-raw-cloudpickle",
        """
        import functools
        @functools.singledispatch
        def kind(x):
            return "object"
        @kind.register
        def _(x: int):
            return "int"
        obj = kind
        """,
        "(obj(1), obj('a'), obj(2.5))",
        ["int", "object", "object"],
        "cloudpickle",
    ),
    (
        "cached-property-class-beyond-raw-cloudpickle",
        """
        import functools
        class Circle:
            def __init__(self, r):
                self.r = r
            @functools.cached_property
            def area(self):
                return 3 * self.r ** 2
        obj = Circle(2)
        obj.area
        """,
        "(obj.area, Circle_r := obj.r)",
        [12, 2],
        "cloudpickle",
    ),
    (
        "exception-with-custom-init-beyond-every-raw-backend",
        """
        class JobFailed(Exception):
            def __init__(self, code, message):
                super().__init__(message)
                self.code = code
        obj = JobFailed(3, "disk full")
        """,
        "(obj.code, str(obj), type(obj).__name__, isinstance(obj, Exception))",
        [3, "disk full", "JobFailed", True],
        "cloudpickle",
    ),
    (
        "lru-cached-recursive-main-function",
        """
        import functools
        @functools.lru_cache(maxsize=None)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        obj = fib
        """,
        "(obj(30), obj.cache_info().maxsize)",
        [832040, None],
        "cloudpickle",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_auto_ships_to_a_fresh_interpreter(tmp_path, case):
    """Each need, dumped by a script with auto and exercised in a fresh interpreter that lacks the script."""
    _, script, expression, expected, backend = case
    sent = send(tmp_path, script, {"example": EXAMPLE})
    got = receive(tmp_path, sent.payload, expression)
    assert got == {"result": expected}
    assert sent.backend == backend


def test_pickle_alone_fails_where_auto_succeeds(tmp_path):
    """The control: stdlib pickle writes the helper-module function by reference and the receiver fails."""
    sent = send(tmp_path, "from example import triple\nobj = triple\n", {"example": EXAMPLE}, backend="pickle")
    got = receive(tmp_path, sent.payload, "obj(2)")
    assert got["error"] == "DecodeError"
    assert "example" in got["message"]


def test_pickle_silently_runs_the_receivers_method_for_a_same_name_patch(tmp_path):
    """With the helper module on both sides, pickle loads fine but runs the original method; auto runs the patch."""
    script = """
    import types
    from example import Turret
    def hi(self):
        return "patched hi"
    obj = Turret()
    obj.hi = types.MethodType(hi, obj)
    """
    plain = send(tmp_path / "a", script, {"example": EXAMPLE}, backend="pickle")
    assert receive(tmp_path / "a", plain.payload, "obj.hi()", helpers={"example": EXAMPLE}) == {"result": "original hi"}
    auto = send(tmp_path / "b", script, {"example": EXAMPLE})
    assert receive(tmp_path / "b", auto.payload, "obj.hi()", helpers={"example": EXAMPLE}) == {"result": "patched hi"}


def test_by_reference_keyword_sends_a_local_module_by_name(tmp_path):
    """by_reference=["example"] trusts the receiver to have the module: its own version runs there."""
    sent = send(tmp_path, "from example import triple\nobj = [triple]\n", {"example": EXAMPLE}, by_reference=["example"])
    assert sent.backend == "pickle"
    other = EXAMPLE.replace("OFFSET = 1", "OFFSET = 100")
    assert receive(tmp_path, sent.payload, "obj[0](2)", helpers={"example": other}) == {"result": 106}


def test_by_value_keyword_ships_an_installed_looking_module(tmp_path):
    """by_value=["example"] ships a module's code even when the receiver has a module of that name."""
    sent = send(tmp_path, "from example import triple\nobj = [triple]\n", {"example": EXAMPLE}, by_value=["example"])
    other = EXAMPLE.replace("OFFSET = 1", "OFFSET = 100")
    assert receive(tmp_path, sent.payload, "obj[0](2)", helpers={"example": other}) == {"result": 7}
