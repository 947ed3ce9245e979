"""Objects whose state lives in a running frame: nothing can ship them, auto must say so clearly."""

from . import CLEAR, DUMPS, Case, exp

G = "cannot ship"

NOBODY = exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=DUMPS, auto=CLEAR)

CASES = [
    Case(
        "frames: generator object", G,
        """
        def numbers():
            yield 1
            yield 2
        gen = numbers()
        next(gen)
        """,
        "gen",
        """
        def check(g):
            return list(g)
        """,
        NOBODY,
    ),
    Case(
        "frames: coroutine object", G,
        """
        async def answer():
            return 42
        coro = answer()
        """,
        "coro",
        """
        def check(c):
            import asyncio
            return asyncio.run(c)
        """,
        NOBODY,
    ),
    Case(
        "frames: async generator object", G,
        """
        async def ticks():
            yield 1
        agen = ticks()
        """,
        "agen",
        """
        def check(a):
            import asyncio
            async def drain():
                return [x async for x in a]
            return asyncio.run(drain())
        """,
        NOBODY,
    ),
    Case(
        "frames: instance holding a generator", G,
        """
        class Reader:
            def __init__(self):
                self.lines = (f"line {i}" for i in range(3))
            def read(self):
                return next(self.lines)
        """,
        "Reader()",
        """
        def check(r):
            return [r.read(), r.read()]
        """,
        NOBODY,
    ),
]
