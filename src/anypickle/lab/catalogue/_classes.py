"""Classes and instances defined in the sender's ``__main__``: the class must travel by value."""

from . import DUMPS, LOADS, OK, WRONG, Case, exp

G = "main classes"

# pickle names the class (__main__.X), which a fresh process lacks; marshal cannot hold instances.
BY_VALUE = exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK)
# dill rebuilds __main__ classes by value but binds their methods' globals to the receiver's own
# __main__: a method that names a module-level name of the script raises NameError there.
DILL_GLOBALS = exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=WRONG, auto=OK)

CASES = [
    Case(
        "class: plain instance", G,
        """
        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y
            def norm2(self):
                return self.x ** 2 + self.y ** 2
            def moved(self, dx):
                return Point(self.x + dx, self.y)
        """,
        "Point(3, 4)",
        """
        def check(p):
            return [p.norm2(), p.moved(1).norm2(), type(p).__name__, vars(p)]
        """,
        DILL_GLOBALS,
    ),
    Case(
        "class: the class object itself", G,
        """
        class Greeter:
            greeting = "hello"
            def __init__(self, name):
                self.name = name
            def greet(self):
                return f"{self.greeting}, {self.name}"
        """,
        "Greeter",
        """
        def check(cls):
            return [cls("ann").greet(), cls.__name__, cls.greeting]
        """,
        BY_VALUE,
    ),
    Case(
        "class: dataclass", G,
        """
        from dataclasses import dataclass, field
        @dataclass
        class Item:
            name: str
            qty: int = 1
            tags: list = field(default_factory=list)
            def total(self, price):
                return self.qty * price
        """,
        "Item('bolt', 3, ['m4'])",
        """
        def check(it):
            import dataclasses
            return [it.total(2), dataclasses.asdict(it), repr(it), it == type(it)("bolt", 3, ["m4"]),
                    [f.name for f in dataclasses.fields(it)], type(it)("x").tags]
        """,
        BY_VALUE,
    ),
    Case(
        "class: frozen dataclass", G,
        """
        from dataclasses import dataclass
        @dataclass(frozen=True)
        class Key:
            a: int
            b: str
        """,
        "Key(1, 'x')",
        """
        def check(k):
            import dataclasses
            try:
                k.a = 5
                frozen = False
            except dataclasses.FrozenInstanceError:
                frozen = True
            return [frozen, hash(k) == hash(type(k)(1, "x")), {k: 1}[type(k)(1, "x")], repr(k)]
        """,
        BY_VALUE,
    ),
    Case(
        "class: dataclass with slots", G,
        """
        from dataclasses import dataclass
        @dataclass(slots=True)
        class Pixel:
            x: int
            y: int
            def shift(self):
                return Pixel(self.x + 1, self.y)
        """,
        "Pixel(1, 2)",
        """
        def check(p):
            return [repr(p.shift()), hasattr(p, "__dict__"), list(type(p).__slots__)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=WRONG, dill=WRONG, auto=OK),
        note="cloudpickle rebuilds a class without its slots: instances get a __dict__",
    ),
    Case(
        "class: Enum member", G,
        """
        import enum
        class Color(enum.Enum):
            RED = 1
            GREEN = 2
            def describe(self):
                return f"{self.name.lower()}={self.value}"
        """,
        "Color.GREEN",
        """
        def check(c):
            cls = type(c)
            return [c.describe(), c is cls(2), c is cls["GREEN"], [m.name for m in cls]]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=LOADS, auto=OK),
        expect_same={"dill": LOADS},
        note="dill 0.4 by value cannot rebuild an Enum on 3.11 (`_member_names`), and in a fresh "
             "process it looks the class up in __main__",
    ),
    Case(
        "class: IntEnum member", G,
        """
        import enum
        class Level(enum.IntEnum):
            LOW = 1
            HIGH = 10
        """,
        "Level.HIGH",
        """
        def check(level):
            return [level + 1, level > 5, level is type(level)(10), level.name]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=LOADS, auto=OK),
        expect_same={"dill": LOADS},
    ),
    Case(
        "class: Flag combination", G,
        """
        import enum
        class Perm(enum.Flag):
            R = 4
            W = 2
            X = 1
        """,
        "Perm.R | Perm.W",
        """
        def check(p):
            cls = type(p)
            return [p.value, cls.R in p, cls.X in p, (p | cls.X).value, p == cls.R | cls.W]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=LOADS, auto=OK),
        expect_same={"dill": LOADS},
    ),
    Case(
        "class: collections.namedtuple", G,
        """
        import collections
        Pair = collections.namedtuple("Pair", "left right")
        """,
        "Pair(1, 'b')",
        """
        def check(p):
            return [p.left, p.right, p._asdict(), p._replace(left=5).left, list(p._fields)]
        """,
        BY_VALUE,
    ),
    Case(
        "class: typing.NamedTuple with a method", G,
        """
        from typing import NamedTuple
        class Span(NamedTuple):
            start: int
            stop: int = 10
            def length(self):
                return self.stop - self.start
        """,
        "Span(3)",
        """
        def check(s):
            return [s.length(), s.stop, tuple(s), type(s)._field_defaults]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
    Case(
        "class: TypedDict class", G,
        """
        from typing import TypedDict
        class Movie(TypedDict, total=False):
            title: str
            year: int
        """,
        "Movie",
        """
        def check(cls):
            return [cls(title="x", year=1), sorted(cls.__optional_keys__), sorted(cls.__annotations__)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=WRONG, auto=OK),
        expect_same={"dill": WRONG},
        note="dill drops `__optional_keys__` (total=False)",
    ),
    Case(
        "class: __slots__ instance", G,
        """
        class Slotted:
            __slots__ = ("a", "b")
            def __init__(self, a, b):
                self.a, self.b = a, b
            def total(self):
                return self.a + self.b
        """,
        "Slotted(2, 5)",
        """
        def check(s):
            return [s.total(), hasattr(s, "__dict__"), list(type(s).__slots__)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=WRONG, dill=OK, auto=OK),
        note="cloudpickle rebuilds a class without its slots: instances get a __dict__",
    ),
    Case(
        "class: __getstate__ / __setstate__", G,
        """
        class Conn:
            def __init__(self, host):
                self.host = host
                self.socket = object()  # not meant to travel
                self.opened = 1
            def __getstate__(self):
                return {"host": self.host, "opened": self.opened}
            def __setstate__(self, state):
                self.__dict__.update(state)
                self.socket = None
                self.opened += 1
        """,
        "Conn('db.local')",
        """
        def check(c):
            state = c.__getstate__()
            clone = type(c).__new__(type(c))
            clone.__setstate__(state)
            return [c.host, sorted(state), clone.opened - state["opened"], clone.socket]
        """,
        BY_VALUE,
    ),
    Case(
        "class: property, classmethod, staticmethod", G,
        """
        class Temp:
            scale = "C"
            def __init__(self, c):
                self._c = c
            @property
            def f(self):
                return self._c * 9 / 5 + 32
            @classmethod
            def boiling(cls):
                return cls(100)
            @staticmethod
            def valid(c):
                return c > -273.15
        """,
        "Temp(25)",
        """
        def check(t):
            cls = type(t)
            return [t.f, cls.boiling().f, cls.valid(-300), t.valid(0)]
        """,
        BY_VALUE,
    ),
    Case(
        "class: functools.cached_property", G,
        """
        import functools
        class Report:
            def __init__(self, rows):
                self.rows = rows
                self.computed = 0
            @functools.cached_property
            def total(self):
                self.computed += 1
                return sum(self.rows)
        report = Report([1, 2, 3])
        report.total
        """,
        "report",
        """
        def check(r):
            fresh = type(r)([5, 5])
            return [r.total, r.computed, fresh.total, fresh.total, fresh.computed]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=DUMPS, dill=WRONG, auto=OK),
        expect_from={(3, 12): {"cloudpickle": OK, "dill": OK}},
        note="cached_property holds an RLock before Python 3.12: cloudpickle refuses it, and dill "
             "rebuilds it held, so the first uncached access hangs",
        timeout=2.0,
    ),
    Case(
        "class: builtin subclass (list)", G,
        """
        class Stack(list):
            def push(self, x):
                self.append(x)
                return self
            def peek(self):
                return self[-1]
        s = Stack([1, 2])
        s.label = "main stack"
        """,
        "s",
        """
        def check(s):
            return [s.push(9).peek(), list(s), s.label, isinstance(s, list)]
        """,
        BY_VALUE,
    ),
    Case(
        "class: dict subclass with __missing__", G,
        """
        class Zeros(dict):
            def __missing__(self, key):
                return 0
        z = Zeros(a=1)
        """,
        "z",
        """
        def check(z):
            return [z["a"], z["nope"], dict(z)]
        """,
        BY_VALUE,
    ),
    Case(
        "class: ABC and concrete subclass", G,
        """
        import abc
        class Shape(abc.ABC):
            @abc.abstractmethod
            def area(self): ...
            def describe(self):
                return f"{type(self).__name__} of area {self.area()}"
        class Square(Shape):
            def __init__(self, side):
                self.side = side
            def area(self):
                return self.side ** 2
        """,
        "Square(3)",
        """
        def check(sq):
            base = type(sq).__mro__[1]
            try:
                base()
                abstract = False
            except TypeError:
                abstract = True
            return [sq.describe(), isinstance(sq, base), abstract, sorted(base.__abstractmethods__)]
        """,
        BY_VALUE,
    ),
    Case(
        "class: metaclass", G,
        """
        class Registry(type):
            def __new__(mcls, name, bases, ns):
                cls = super().__new__(mcls, name, bases, ns)
                cls.tag = name.lower()
                return cls
            def make(cls, *args):
                return cls(*args)
        class Plugin(metaclass=Registry):
            def __init__(self, n=1):
                self.n = n
        """,
        "Plugin(4)",
        """
        def check(p):
            cls = type(p)
            return [cls.tag, type(cls).__name__, cls.make(7).n, p.n]
        """,
        BY_VALUE,
    ),
    Case(
        "class: nested class instance", G,
        """
        class Outer:
            class Inner:
                def __init__(self, v):
                    self.v = v
                def twice(self):
                    return self.v * 2
        """,
        "Outer.Inner(21)",
        """
        def check(i):
            return [i.twice(), type(i).__qualname__]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=WRONG, dill=OK, auto=OK),
        note="cloudpickle rebuilds the class with __qualname__ 'Inner'",
    ),
    Case(
        "class: generic class", G,
        """
        from typing import Generic, TypeVar
        T = TypeVar("T")
        class Box(Generic[T]):
            def __init__(self, item: T):
                self.item = item
            def get(self) -> T:
                return self.item
        """,
        "Box[int](5)",
        """
        def check(b):
            cls = type(b)
            return [b.get(), cls[str]("s").get(), len(cls.__parameters__)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=LOADS, auto=OK),
    ),
    Case(
        "class: exception with custom __init__", G,
        """
        class HTTPError(Exception):
            def __init__(self, status, reason):
                super().__init__(f"{status} {reason}")
                self.status = status
                self.reason = reason
        """,
        "HTTPError(404, 'Not Found')",
        """
        def check(e):
            return [str(e), e.status, e.reason, isinstance(e, Exception)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=LOADS, dill=LOADS, auto=OK),
        expect_same={"pickle": LOADS, "cloudpickle": LOADS, "dill": LOADS},
        note="BaseException.__reduce__ replays cls(*args) with the formatted message only",
    ),
    Case(
        "class: inheritance with super()", G,
        """
        class Base:
            def hello(self):
                return "base"
        class Child(Base):
            def hello(self):
                return "child+" + super().hello()
        """,
        "Child()",
        """
        def check(c):
            return [c.hello(), [k.__name__ for k in type(c).__mro__]]
        """,
        BY_VALUE,
    ),
    Case(
        "class: class attribute changed at run time", G,
        """
        class Config:
            retries = 1
            def limit(self):
                return self.retries * 10
        Config.retries = 5
        """,
        "Config()",
        """
        def check(c):
            return [c.limit(), type(c).retries]
        """,
        BY_VALUE,
    ),
    Case(
        "class: operators and dunder methods", G,
        """
        class Money:
            def __init__(self, cents):
                self.cents = cents
            def __add__(self, other):
                return Money(self.cents + other.cents)
            def __eq__(self, other):
                return isinstance(other, Money) and other.cents == self.cents
            def __hash__(self):
                return hash(self.cents)
            def __len__(self):
                return len(str(self.cents))
            def __iter__(self):
                return iter(divmod(self.cents, 100))
        """,
        "Money(1250)",
        """
        def check(m):
            return [(m + m).cents, m == type(m)(1250), len(m), list(m), len({m, type(m)(1250)})]
        """,
        DILL_GLOBALS,
    ),
    Case(
        "class: custom __reduce__ naming a __main__ function", G,
        """
        def rebuild(a, b):
            return Pair(a, b)
        class Pair:
            def __init__(self, a, b):
                self.a, self.b = a, b
            def __reduce__(self):
                return rebuild, (self.a, self.b)
            def swap(self):
                return Pair(self.b, self.a)
        """,
        "Pair(1, 2)",
        """
        def check(p):
            s = p.swap()
            return [s.a, s.b]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=LOADS, auto=OK),
    ),
    Case(
        "class: descriptor", G,
        """
        class Positive:
            def __set_name__(self, owner, name):
                self.name = "_" + name
            def __get__(self, obj, owner=None):
                return getattr(obj, self.name)
            def __set__(self, obj, value):
                if value <= 0:
                    raise ValueError("must be positive")
                setattr(obj, self.name, value)
        class Order:
            qty = Positive()
            def __init__(self, qty):
                self.qty = qty
        """,
        "Order(3)",
        """
        def check(o):
            try:
                o.qty = -1
                refused = False
            except ValueError:
                refused = True
            return [o.qty, refused]
        """,
        BY_VALUE,
    ),
    Case(
        "class: instance holding a __main__ callback", G,
        """
        def on_done(x):
            return f"done {x}"
        class Job:
            def __init__(self, callback):
                self.callback = callback
            def finish(self, v):
                return self.callback(v)
        """,
        "Job(on_done)",
        """
        def check(j):
            return [j.finish(1), j.callback.__name__]
        """,
        BY_VALUE,
    ),
]
