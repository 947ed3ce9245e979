"""Functions defined in the sender's ``__main__``: the code must travel by value."""

from . import CLEAR, DUMPS, LOADS, OK, WRONG, Case, exp

G = "functions"

CASES = [
    Case(
        "function: module-level def", G,
        """
        def add(a, b):
            return a + b
        """,
        "add",
        """
        def check(f):
            return [f(2, 3), f("a", "b"), f.__name__]
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: lambda", G,
        "square = lambda x: x * x\n",
        "square",
        """
        def check(f):
            return [f(7), f.__name__]
        """,
        exp(pickle=DUMPS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: closure", G,
        """
        def make_adder(n):
            def add(x):
                return x + n
            return add
        """,
        "make_adder(10)",
        """
        def check(f):
            return [f(1), f(-10), f.__closure__[0].cell_contents]
        """,
        exp(pickle=DUMPS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: nested closure", G,
        """
        def outer(a):
            def middle(b):
                def inner(c):
                    return a * 100 + b * 10 + c
                return inner
            return middle
        """,
        "outer(1)(2)",
        """
        def check(f):
            return [f(3), f(0)]
        """,
        exp(pickle=DUMPS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: recursive closure", G,
        """
        def make_fact():
            def fact(n):
                return 1 if n <= 1 else n * fact(n - 1)
            return fact
        """,
        "make_fact()",
        """
        def check(f):
            return [f(1), f(10)]
        """,
        exp(pickle=DUMPS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: closures sharing a cell", G,
        """
        def make_counter():
            count = 0
            def bump():
                nonlocal count
                count += 1
                return count
            def read():
                return count
            return bump, read
        """,
        "make_counter()",
        """
        def check(pair):
            bump, read = pair
            bump(); bump()
            return [read(), bump()]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=WRONG, dill=OK, auto=OK),
        expect_same={"cloudpickle": WRONG},
        note="the two closures must still share one cell after loading; cloudpickle 3.1 gives each "
             "function its own copy of the cell (anypickle's pickler memoizes cells)",
    ),
    Case(
        "function: late-binding lambdas", G,
        "callbacks = [lambda: i * 10 for i in range(3)]\n",
        "callbacks",
        """
        def check(fs):
            return [f() for f in fs]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        note="all three lambdas close over the same comprehension cell: [20, 20, 20]",
    ),
    Case(
        "function: stateful nonlocal counter", G,
        """
        def make_counter(start):
            n = start
            def step():
                nonlocal n
                n += 1
                return n
            return step
        counter = make_counter(5)
        counter(); counter()
        """,
        "counter",
        """
        def check(f):
            return [f(), f()]
        """,
        exp(pickle=DUMPS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: functools.partial of a __main__ function", G,
        """
        import functools
        def power(base, exp):
            return base ** exp
        square = functools.partial(power, exp=2)
        """,
        "square",
        """
        def check(p):
            return [p(9), p.keywords, p.func(2, 5)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: functools.wraps decorator", G,
        """
        import functools
        calls = []
        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args):
                calls.append(fn.__name__)
                return fn(*args)
            return wrapper
        @logged
        def mul(a, b):
            "Multiply."
            return a * b
        """,
        "mul",
        """
        def check(f):
            return [f(6, 7), f.__name__, f.__doc__, f.__wrapped__(2, 3)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
    Case(
        "function: lru_cache", G,
        """
        import functools
        @functools.lru_cache(maxsize=None)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        fib(10)
        """,
        "fib",
        """
        def check(f):
            f.cache_clear()
            value = f(30)
            return [value, f.cache_info().misses, f.__wrapped__(5)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=LOADS, dill=WRONG, auto=OK),
        expect_same={"dill": WRONG},
        note="the wrapper pickles by qualified name; dill rebuilds the wrapped function by value, but "
             "its recursive calls look `fib` up in the receiver's __main__",
    ),
    Case(
        "function: singledispatch", G,
        """
        import functools
        @functools.singledispatch
        def describe(x):
            return "thing"
        @describe.register
        def _(x: int):
            return f"int {x}"
        @describe.register(list)
        def _(x):
            return f"list of {len(x)}"
        """,
        "describe",
        """
        def check(f):
            return [f(3), f([1, 2]), f("s"), f(True), sorted(c.__name__ for c in f.registry)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=DUMPS, dill=OK, auto=OK),
        note="the dispatch cache is a WeakKeyDictionary, which cloudpickle cannot pickle",
    ),
    Case(
        "function: generator function", G,
        """
        def countdown(n):
            while n > 0:
                yield n
                n -= 1
        """,
        "countdown",
        """
        def check(f):
            import inspect
            return [list(f(4)), inspect.isgeneratorfunction(f)]
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: async function", G,
        """
        import asyncio
        async def double_later(x):
            await asyncio.sleep(0)
            return 2 * x
        """,
        "double_later",
        """
        def check(f):
            import asyncio, inspect
            return [asyncio.run(f(21)), inspect.iscoroutinefunction(f)]
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
    Case(
        "function: uses __main__ globals", G,
        """
        FACTOR = 3
        OFFSET = {"base": 100}
        def scale(x):
            return x * FACTOR + OFFSET["base"]
        """,
        "scale",
        """
        def check(f):
            return [f(1), f(10)]
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
    Case(
        "function: uses an imported module", G,
        """
        import math
        def hypot(a, b):
            return math.sqrt(a * a + b * b)
        """,
        "hypot",
        """
        def check(f):
            return [f(3, 4), f(5, 12)]
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
    Case(
        "function: uses an imported submodule", G,
        """
        import xml.dom.minidom
        def root_tag(text):
            return xml.dom.minidom.parseString(text).documentElement.tagName
        """,
        "root_tag",
        """
        def check(f):
            return [f("<a><b/></a>"), f("<zzz/>")]
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=WRONG, auto=OK),
        note="the receiver has `xml` but has not imported `xml.dom.minidom`",
    ),
    Case(
        "function: defaults and keyword-only arguments", G,
        """
        def fmt(value, width=6, *, fill="*", upper=False):
            text = str(value).rjust(width, fill)
            return text.upper() if upper else text
        """,
        "fmt",
        """
        def check(f):
            return [f("ab"), f("ab", 3, fill="-"), f("ab", upper=True),
                    list(f.__defaults__), f.__kwdefaults__]
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: annotations, docstring and __dict__", G,
        """
        def area(width: float, height: float = 1.0) -> float:
            "Area of a rectangle."
            return width * height
        area.unit = "m2"
        area.calls = [1, 2]
        """,
        "area",
        """
        def check(f):
            ann = {k: getattr(v, "__name__", str(v)) for k, v in f.__annotations__.items()}
            return [f(2.0, 3.0), ann, f.__doc__, f.unit, f.calls, f.__qualname__]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "function: made by exec", G,
        """
        namespace = {}
        exec("def made(x):\\n    return [x] * 2\\n", namespace)
        made = namespace["made"]
        """,
        "made",
        """
        def check(f):
            return [f(1), f("a")]
        """,
        exp(pickle=LOADS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK),
        note="its __module__ is None; pickle's whichmodule() finds it in __main__ and names it there. "
             "portable: clear error, the code has no source text (linecache holds none for '<string>')",
        portable=CLEAR,
    ),
    Case(
        "function: mutually recursive", G,
        """
        def is_even(n):
            return True if n == 0 else is_odd(n - 1)
        def is_odd(n):
            return False if n == 0 else is_even(n - 1)
        """,
        "is_even",
        """
        def check(f):
            return [f(10), f(7)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
    Case(
        "function: calls a __main__ class", G,
        """
        class Vec:
            def __init__(self, x, y):
                self.x, self.y = x, y
            def dot(self, other):
                return self.x * other.x + self.y * other.y
        def dot(a, b):
            return Vec(*a).dot(Vec(*b))
        """,
        "dot",
        """
        def check(f):
            return [f((1, 2), (3, 4)), f((0, 1), (1, 0))]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=WRONG, auto=OK),
    ),
    Case(
        "function: bound method of a __main__ instance", G,
        """
        class Account:
            def __init__(self, balance):
                self.balance = balance
            def deposit(self, amount):
                self.balance += amount
                return self.balance
        account = Account(100)
        """,
        "account.deposit",
        """
        def check(m):
            return [m(5), m(10), m.__self__.balance]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
]
