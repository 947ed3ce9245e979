"""Run as __main__ beside portable_helper.py: define every case, dump each portably, write JSON.

argv: output path. The JSON holds, per case, the base64 payload (or the dump error) and the result of
exercising the original object here, which every receiver must reproduce.
"""

import abc
import base64
import collections
import contextlib
import dataclasses
import enum
import fractions
import functools
import json
import linecache
import sys
import threading
import types
import typing
import xml.dom.minidom

import anypickle
import exercise
import portable_helper
from portable_helper import Shape, hypot_plus

FACTOR = 3


def module_function(x):
    return x * FACTOR + portable_helper.OFFSET


square = lambda x: x * x  # noqa: E731

inc, dec = (lambda x: x + 1), (lambda x: x - 1)
same_a, same_b = lambda v: v * 7, lambda v: v * 7


def make_adder(n):
    def add(x):
        return x + n
    return add


def make_factorial():
    def fact(k):
        return 1 if k <= 1 else k * fact(k - 1)
    return fact


def make_counter():
    count = 0

    def increment():
        nonlocal count
        count += 1
        return count

    def current():
        return count

    return increment, current


def twice_result(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return 2 * fn(*args)
    return wrapper


@twice_result
def plus_one(x):
    return x + 1


@functools.lru_cache(maxsize=128)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def repeat(times):
    def decorate(fn):
        @functools.wraps(fn)
        def run(s):
            return [fn(s) for _ in range(times)]
        return run
    return decorate


@repeat(3)
def shout(s):
    return s.upper()


def tag(fn):
    fn.tagged = "yes"
    return fn


@tag
def tagged_square(x):
    return x * x


@contextlib.contextmanager
def managed(n):
    yield n * 10


@twice_result
@functools.lru_cache(maxsize=None)
def stacked(x):
    return x + 10


def with_hello(cls):
    cls.hello = lambda self: "hello from " + cls.__name__
    return cls


@with_hello
class Greeter:
    pass


@functools.total_ordering
class Version:
    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return self.n == other.n

    def __lt__(self, other):
        return self.n < other.n


class Outer:
    class Inner:
        def hi(self):
            return "inner says hi"

    class Deeper:
        def deep(self):
            return Outer.Inner().hi() + "!"


Outer.Inner.Deeper = Outer.Deeper


class Vault:
    def __init__(self):
        self.__secret = 42

    def reveal(self):
        return self.__secret


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0

    def norm2(self):
        return self.x ** 2 + self.y ** 2


class Level(enum.Enum):
    LOW = 1
    HIGH = 2

    def label(self):
        return self.name.lower() + "!"


class Pair(typing.NamedTuple):
    a: int
    b: str = "b"

    def total(self):
        return self.a * 2


Coord = collections.namedtuple("Coord", "x y", defaults=[0])
Mood = enum.IntEnum("Mood", "HAPPY SAD")


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def total(self):
        return self.a + self.b


class Registry(type):
    def __new__(mcs, name, bases, ns):
        cls = super().__new__(mcs, name, bases, ns)
        cls.registry_name = "reg:" + name
        return cls


class Plugin(metaclass=Registry):
    def ping(self):
        return "pong"


class Kinds:
    counter = 0

    def __init__(self, v):
        self.v = v

    @classmethod
    def make(cls, v):
        return cls(v)

    @staticmethod
    def unit():
        return "unit"

    @property
    def doubled(self):
        return self.v * 2


Kinds.counter = 5


class Base:
    def greet(self):
        return "base"


class Child(Base):
    def greet(self):
        return "child+" + super().greet()


class Shape2D(abc.ABC):
    @abc.abstractmethod
    def area(self):
        ...


class Square(Shape2D):
    def area(self):
        return 9


class Triangle(Shape):
    sides = 3

    def corner(self):
        return f"{self.size}-corner"


def uses_helper_module(x):
    return portable_helper.twice(x)


class Account:
    created = 0

    def __init__(self):
        self.value = 0
        self.history = []
        Account.created += 1

    def bump(self):
        self.value += 1
        return self.value


def is_even(n):
    return n == 0 or is_odd(n - 1)


def is_odd(n):
    return n != 0 and is_even(n - 1)


def make_class(base, scale):
    class Scaled(base):
        def scaled(self):
            return self.n * scale

    def init(self, n):
        self.n = n

    Scaled.__init__ = init
    return Scaled


def countdown(n):
    while n:
        yield n
        n -= 1


async def async_double(x):
    return x * 2


def kwonly(a: int, *, k: int = 2) -> int:
    return a * k


class Aliased:
    def original(self):
        return "orig"

    inside = original
    key = lambda self: "lam"  # noqa: E731


Aliased.after = Aliased.original


class Sorter:
    key = lambda self: "key"  # noqa: E731
    sort_key = staticmethod(lambda t: sorted(t))


Dynamic = type("Dynamic", (), {"hello": lambda self: "dyn", "flag": True})

# A notebook cell: IPython compiles each cell under a made-up file name and registers its text in linecache.
_CELL = "<ipython-input-7-deadbeef>"
_cell_text = "def cell_fn(x):\n    return x ** 3 + FACTOR\n"
linecache.cache[_CELL] = (len(_cell_text), None, _cell_text.splitlines(True), _CELL)
exec(compile(_cell_text, _CELL, "exec"), globals())
# A later cell: a dataclass with no method of its own (its __init__ is generated), so only the cell's
# text in linecache says where it is.
_CELL2 = "/tmp/ipykernel_4242/2718281828.py"
_cell2_text = "@dataclasses.dataclass\nclass CellPoint:\n    x: int\n    y: int = 5\n"
linecache.cache[_CELL2] = (len(_cell2_text), None, _cell2_text.splitlines(True), _CELL2)
exec(compile(_cell2_text, _CELL2, "exec"), globals())

exec(compile(
    "from __future__ import annotations\n"
    "def future_fn(x: Point) -> int:\n"
    "    return x * 2\n", __file__ + ".future", "exec"), globals())
linecache.cache[__file__ + ".future"] = (0, None, [
    "from __future__ import annotations\n", "def future_fn(x: Point) -> int:\n", "    return x * 2\n"],
    __file__ + ".future")


if __name__ == "__main__":
    def in_if_block(x):
        return [x - 1, FACTOR]

multi_line_lambda = (lambda x,
                     y=2:
                     x * y
                     + FACTOR)


def multiline():
    text = """line one
    line two (indented inside the string)
"""
    return text


class Animal:
    def __init_subclass__(cls, kind="?", **kw):
        super().__init_subclass__(**kw)
        cls.kind = kind


class Dog(Animal, kind="dog"):
    pass


class Speaker:
    def __init__(self, name):
        self.name = name

    def speak(self):
        return f"I am {self.name}"


def _shout(self):
    return self.speak().upper() + "!"


def _whisper(self):
    return f"({self.name.lower()})"


class HTTPError(Exception):
    def __init__(self, status, reason):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclasses.dataclass(slots=True)
class Pixel:
    x: int
    y: int

    def shift(self):
        return Pixel(self.x + 1, self.y)


def root_tag(text):
    return xml.dom.minidom.parseString(text).documentElement.tagName


def _fraction_text(self):
    return f"{self.numerator} over {self.denominator}"


fractions.Fraction.as_text = _fraction_text


@functools.singledispatch
def describe(x):
    return "thing"


@describe.register
def _(x: int):
    return f"int {x}"


@describe.register(list)
def _(x):
    return f"list of {len(x)}"


def build_cases():
    speaker = Speaker("Ann")
    speaker.shout = types.MethodType(_shout, speaker)  # a new name
    speaker.speak = types.MethodType(_whisper, speaker)  # the class's own name
    lock = threading.Lock()
    lock.acquire()
    account = Account()
    account.bump()
    account.history.append("opened")
    counter = make_counter()
    counter[0]()
    return {
        "module_function": module_function,
        "lambda": square,
        "two_lambdas_one_line": (inc, dec),
        "two_same_lambdas_one_line": (same_a, same_b),
        "closure": make_adder(5),
        "recursive_closure": make_factorial(),
        "shared_cell": counter,
        "decorated_wraps": plus_one,
        "decorated_lru_cache": fib,
        "decorated_with_args": shout,
        "decorated_attribute": tagged_square,
        "decorated_contextmanager": managed,
        "decorated_stacked": stacked,
        "class_decorator_main": Greeter,
        "class_total_ordering": Version,
        "nested_class": Outer.Inner,
        "private_names": Vault(),
        "dataclass_frozen": Point(3, 4),
        "enum": Level.HIGH,
        "namedtuple_typing": Pair(1),
        "namedtuple_functional": Coord(1, 2),
        "enum_functional": Mood.SAD,
        "slots": Slotted(1, 2),
        "metaclass": Plugin,
        "class_methods_kinds": Kinds,
        "super_call": Child(),
        "abc": Square,
        "main_subclass_of_helper_class": Triangle(2),
        "helper_function": hypot_plus,
        "helper_module_global": uses_helper_module,
        "partial_of_lambda": functools.partial(lambda a, b: a * 10 + b, 4),
        "instance_after_state_change": account,
        "mutual_recursion": (is_even, is_odd),
        "local_class": make_class(Base, 10),
        "generator_function": countdown,
        "async_function": async_double,
        "kwonly_defaults_annotations": kwonly,
        "lambda_in_class_body": Sorter,
        "method_aliases": Aliased,
        "dynamic_type_class": Dynamic,
        "notebook_cell": cell_fn,  # noqa: F821 - defined by the exec above
        "notebook_dataclass": CellPoint(1),  # noqa: F821
        "future_annotations": future_fn,  # noqa: F821
        "multiline_string": multiline,
        "def_in_if_block": in_if_block,  # noqa: F821 - defined under the __main__ guard
        "multiline_lambda": multi_line_lambda,
        "init_subclass": Dog,
        "patched_instance_methods": speaker,
        "exception_custom_init": HTTPError(404, "Not Found"),
        "dataclass_slots_self_reference": Pixel(1, 2),
        "helper_module_object": portable_helper,
        "submodule_through_package": root_tag,
        "patched_installed_class": fractions.Fraction(3, 4),
        "singledispatch": describe,
        "lock_and_memoryview": (lock, threading.RLock(), memoryview(b"abc").cast("c")),
    }


def main(out_path):
    cases = build_cases()
    missing = set(exercise.EXERCISES) ^ set(cases)
    assert not missing, missing
    out = {"python": "%d.%d" % sys.version_info[:2], "payloads": {}, "expected": {}}
    for name, obj in cases.items():
        try:
            payload = anypickle.dumps(obj, portable=True)
            out["payloads"][name] = base64.b64encode(payload).decode()
        except Exception as exc:  # noqa: BLE001 - recorded, the test asserts on it
            out["payloads"][name] = None
            out.setdefault("dump_errors", {})[name] = f"{type(exc).__name__}: {exc}"
    # Exercise after dumping: some exercises change state, and the payloads hold the state at dump time.
    for name, obj in cases.items():
        out["expected"][name] = exercise.run(name, obj)
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1])
