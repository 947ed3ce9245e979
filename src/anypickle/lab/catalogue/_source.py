"""Code whose *source* is awkward to recover: the rows that test how portable finds and rebuilds it.

Portable ships code as source text, so it must find the exact text of a lambda sharing its line with
another, a decorator's arguments, a class decorated or patched after its body, a notebook cell that
only ``linecache`` knows, a definition under ``if __name__ == "__main__":``. These rows were the
portable cross-version suite's own cases (tests/test_portable_cross.py runs every portable-ok row of
the catalogue between every pair of installed Pythons); here every backend meets them.
"""

from . import CLEAR, DUMPS, LOADS, OK, WRONG, Case, exp

G = "code as source"

CASES = [
    Case(
        "source: two lambdas on one line", G,
        "inc, dec = (lambda x: x + 1), (lambda x: x - 1)\n",
        "(inc, dec)",
        """
        def check(pair):
            return [pair[0](10), pair[1](10)]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: two identical lambdas on one line", G,
        "same_a, same_b = lambda v: v * 7, lambda v: v * 7\n",
        "(same_a, same_b)",
        """
        def check(pair):
            return [pair[0](3), pair[1](3), pair[0] is pair[1]]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: decorator with arguments", G,
        """
        import functools
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
        """,
        "shout",
        """
        def check(f):
            return [f("ab"), f.__name__]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: decorator setting an attribute", G,
        """
        def tag(fn):
            fn.tagged = "yes"
            return fn
        @tag
        def tagged_square(x):
            return x * x
        """,
        "tagged_square",
        """
        def check(f):
            return [f(2), f.tagged]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: contextmanager function", G,
        """
        import contextlib
        @contextlib.contextmanager
        def managed(n):
            yield n * 10
        """,
        "managed",
        """
        def check(factory):
            with factory(5) as value:
                inside = value
            return inside
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: stacked decorators", G,
        """
        import functools
        def twice_result(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                return 2 * fn(*args)
            return wrapper
        @twice_result
        @functools.lru_cache(maxsize=None)
        def stacked(x):
            return x + 10
        """,
        "stacked",
        """
        def check(f):
            return [f(1), f.__wrapped__.cache_info().maxsize, f.__name__]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=DUMPS, dill=OK, auto=OK),
    ),
    Case(
        "source: class decorator adding a lambda", G,
        """
        def with_hello(cls):
            cls.hello = lambda self: "hello from " + cls.__name__
            return cls
        @with_hello
        class Greeter:
            pass
        """,
        "Greeter",
        """
        def check(c):
            return c().hello()
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: functools.total_ordering class", G,
        """
        import functools
        @functools.total_ordering
        class Version:
            def __init__(self, n):
                self.n = n
            def __eq__(self, other):
                return self.n == other.n
            def __lt__(self, other):
                return self.n < other.n
        """,
        "Version",
        """
        def check(c):
            return [c(1) <= c(2), c(3) >= c(2), c(1) > c(2)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: nested class object with an alias", G,
        """
        class Outer:
            class Inner:
                def hi(self):
                    return "inner says hi"
            class Deeper:
                def deep(self):
                    return Outer.Inner().hi() + "!"
        Outer.Inner.Deeper = Outer.Deeper
        """,
        "Outer.Inner",
        """
        def check(c):
            return [c().hi(), c.__qualname__, c.Deeper().deep()]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=WRONG, dill=WRONG, auto=OK),
    ),
    Case(
        "source: private (name-mangled) attributes", G,
        """
        class Vault:
            def __init__(self):
                self.__secret = 42
            def reveal(self):
                return self.__secret
        """,
        "Vault()",
        """
        def check(o):
            return [o.reveal(), sorted(vars(o))]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: IntEnum made by the functional API", G,
        """
        import enum
        Mood = enum.IntEnum("Mood", "HAPPY SAD")
        """,
        "Mood.SAD",
        """
        def check(m):
            return [m.name, int(m) + 1, [x.name for x in type(m)], type(m).__qualname__]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=LOADS, auto=OK),
        expect_same={"dill": LOADS},
    ),
    Case(
        "source: functools.partial of a lambda", G,
        """
        import functools
        p = functools.partial(lambda a, b: a * 10 + b, 4)
        """,
        "p",
        """
        def check(p):
            return p(5)
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: instance and class state changed after creation", G,
        """
        class Account:
            created = 0
            def __init__(self):
                self.value = 0
                self.history = []
                Account.created += 1
            def bump(self):
                self.value += 1
                return self.value
        account = Account()
        account.bump()
        account.history.append("opened")
        """,
        "account",
        """
        def check(o):
            return [o.value, o.history, type(o).created, o.bump()]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: class made in a function, subclassing a __main__ class", G,
        """
        class Base:
            def greet(self):
                return "base"
        def make_class(base, scale):
            class Scaled(base):
                def scaled(self):
                    return self.n * scale
            def init(self, n):
                self.n = n
            Scaled.__init__ = init
            return Scaled
        """,
        "make_class(Base, 10)",
        """
        def check(c):
            return [c(2).scaled(), c.__qualname__, type(c(1)).__bases__[0].__name__]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=WRONG, dill=OK, auto=OK),
    ),
    Case(
        "source: method aliases", G,
        """
        class Aliased:
            def original(self):
                return "orig"
            inside = original
            key = lambda self: "lam"
        Aliased.after = Aliased.original
        """,
        "Aliased",
        """
        def check(c):
            return [c().inside(), c().after(), c().key(), c.after is c.original]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: lambdas in a class body", G,
        """
        class Sorter:
            key = lambda self: "key"
            sort_key = staticmethod(lambda t: sorted(t))
        """,
        "Sorter",
        """
        def check(c):
            return [c().key(), c.sort_key((3, 1))]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: class made by type()", G,
        'Dynamic = type("Dynamic", (), {"hello": lambda self: "dyn", "flag": True})\n',
        "Dynamic",
        """
        def check(c):
            return [c().hello(), c.__name__, c.flag]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: notebook cell function", G,
        """
        import linecache
        FACTOR = 3
        # IPython compiles each cell under a made-up file name and registers its text in linecache.
        _CELL = "<ipython-input-7-deadbeef>"
        _text = "def cell_fn(x):\\n    return x ** 3 + FACTOR\\n"
        linecache.cache[_CELL] = (len(_text), None, _text.splitlines(True), _CELL)
        exec(compile(_text, _CELL, "exec"), globals())
        """,
        "cell_fn",
        """
        def check(f):
            return f(4)
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
    Case(
        "source: notebook cell dataclass", G,
        """
        import dataclasses, linecache
        # A dataclass with no method of its own (its __init__ is generated): only the cell's text in
        # linecache says where it is.
        _CELL = "/tmp/ipykernel_4242/2718281828.py"
        _text = "@dataclasses.dataclass\\nclass CellPoint:\\n    x: int\\n    y: int = 5\\n"
        linecache.cache[_CELL] = (len(_text), None, _text.splitlines(True), _CELL)
        exec(compile(_text, _CELL, "exec"), globals())
        """,
        "CellPoint(1)",
        """
        def check(p):
            return [repr(p), p == type(p)(1, 5)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: from __future__ import annotations", G,
        """
        import linecache
        _FILE = __file__ + ".future"
        _lines = ["from __future__ import annotations\\n", "def future_fn(x: Point) -> int:\\n",
                  "    return x * 2\\n"]
        exec(compile("".join(_lines), _FILE, "exec"), globals())
        linecache.cache[_FILE] = (0, None, _lines, _FILE)
        """,
        "future_fn",
        """
        def check(f):
            return [f(2), f.__annotations__["x"]]
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: multi-line string literal", G,
        '''
        def multiline():
            text = """line one
            line two (indented inside the string)
        """
            return text
        ''',
        "multiline",
        """
        def check(f):
            return f()
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "source: def under if __name__ == '__main__'", G,
        """
        FACTOR = 3
        if __name__ == "__main__":
            def in_if_block(x):
                return [x - 1, FACTOR]
        """,
        "in_if_block",
        """
        def check(f):
            return f(10)
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
    Case(
        "source: lambda over several lines", G,
        """
        FACTOR = 3
        multi_line_lambda = (lambda x,
                             y=2:
                             x * y
                             + FACTOR)
        """,
        "multi_line_lambda",
        """
        def check(f):
            return [f(3), f(3, 4)]
        """,
        exp(pickle=DUMPS, marshal=OK, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
]
