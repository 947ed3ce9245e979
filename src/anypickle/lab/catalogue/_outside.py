"""Objects found outside the catalogue: by the peers' own test suites and by real libraries' objects.

Each raw backend gets these silently wrong (a copy instead of a view, a value instead of a descriptor,
a truncated file) or fails at call time; anypickle auto ships them faithfully or refuses them with
``EncodeError``, never a half-copy.
"""

from . import CLEAR, DUMPS, LOADS, OK, WRONG, Case, exp

G = "found outside"

# A local package the script writes beside itself (the receiver, in another folder, lacks it).
_PACKAGE = '''
import importlib, os
os.makedirs("lazylib", exist_ok=True)
with open(os.path.join("lazylib", "__init__.py"), "w") as handle:
    handle.write("VERSION = 1\\n")
with open(os.path.join("lazylib", "kernels.py"), "w") as handle:
    handle.write("def fast_sum(xs):\\n    return sum(xs) * 10\\n")
with open(os.path.join("lazylib", "core.py"), "w") as handle:
    handle.write(
        "def compute(xs):\\n"
        "    from .kernels import fast_sum\\n"
        "    return fast_sum(xs) + 1\\n"
        "\\n"
        "def make_scaled(k):\\n"
        "    def scaled(xs):\\n"
        "        from . import kernels\\n"
        "        return kernels.fast_sum(xs) * k\\n"
        "    return scaled\\n"
        "\\n"
        "def absolute(xs):\\n"
        "    import lazylib.kernels\\n"
        "    return lazylib.kernels.fast_sum(xs) + 2\\n"
    )
importlib.invalidate_caches()
'''

CASES = [
    Case(
        "file: open for writing", G,
        """
        import os
        path = os.path.abspath("written.txt")
        log = open(path, "w")
        log.write("first line")
        log.flush()
        """,
        "log",
        """
        def check(f):
            with open(f.name) as handle:
                return [f.mode, handle.read()]
        """,
        # dill reopens it with mode "w" on the receiver: the sender's file is emptied
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=WRONG, auto=CLEAR),
        expect_same={"dill": WRONG},
        note="nothing can ship a file open for writing faithfully: auto refuses it (dill would truncate it)",
    ),
    Case(
        "numpy: ndarray subclass with instance attributes", G,
        """
        import numpy as np
        class Tagged(np.ndarray):
            color = "red"
        tagged = np.arange(3.0).view(Tagged)
        tagged.color = "green"
        """,
        "tagged",
        """
        def check(a):
            return [type(a).__name__, a.color, a.tolist()]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=WRONG, dill=OK, auto=OK),
        expect_same={"pickle": WRONG, "cloudpickle": WRONG},
        requires=("numpy",),
        note="cloudpickle and pickle drop an ndarray subclass's instance attributes",
    ),
    Case(
        "descriptors: C-type descriptors from type.__dict__", G,
        "",
        "[(owner, name, owner.__dict__[name]) for owner, name in "
        "[(type, '__name__'), (type, '__dict__'), (type, '__basicsize__'), (type, '__mro__'), "
        "(type, '__abstractmethods__'), (type, '__doc__'), (dict, 'fromkeys'), (str, 'upper')]]",
        """
        def check(items):
            return [[name, owner.__dict__[name] is d, type(d).__name__.endswith("descriptor")]
                    for owner, name, d in items]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=OK, auto=OK),
        carries_code=False,
        note="pickle and cloudpickle refuse some and write getattr(type, '__name__') for others: the value 'type'",
    ),
    Case(
        "data: dict views keep their dict", G,
        "d = {'a': 1}\nviews = (d.keys(), d.values(), d.items(), d)\n",
        "views",
        """
        def check(v):
            keys, values, items, d = v
            d["b"] = 2
            return [len(keys), sorted(keys), sorted(values), len(items)]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=WRONG, dill=OK, auto=OK),
        expect_same={"cloudpickle": WRONG},
        carries_code=False,
        note="cloudpickle rebuilds a view of a detached copy",
    ),
    Case(
        "helper package: relative import inside a function", G,
        _PACKAGE + "from lazylib.core import compute\n",
        "compute",
        """
        def check(f):
            return [f([1, 2]), f([3])]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=LOADS, dill=LOADS, auto=OK),
        note="the module the body imports travels by value and is registered on the receiver",
    ),
    Case(
        "helper package: closure importing a sibling module", G,
        _PACKAGE + "from lazylib.core import make_scaled\nscaled = make_scaled(3)\n",
        "scaled",
        """
        def check(f):
            return [f([1, 2])]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=WRONG, dill=LOADS, auto=OK),
    ),
    Case(
        "helper package: absolute import of itself inside a function", G,
        _PACKAGE + "from lazylib.core import absolute\n",
        "absolute",
        """
        def check(f):
            return [f([1, 2])]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=LOADS, dill=LOADS, auto=OK),
    ),
    Case(
        "module: dynamic module named under an installed package", G,
        "import types\nextra = types.ModuleType('json.extra')\nextra.answer = 42\n"
        "extra.double = lambda x: 2 * x\n",
        "extra",
        """
        def check(m):
            return [m.__name__, m.answer, m.double(4)]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=LOADS, auto=OK),
        expect_same={"dill": LOADS},
        note="dill pickles it by name; cloudpickle ships it by value",
    ),
    Case(
        "weakref: dead proxy", G,
        "import weakref\nclass Gone:\n    pass\ngone = Gone()\nproxy = weakref.proxy(gone)\ndel gone\n",
        "proxy",
        """
        def check(p):
            import weakref
            try:
                p.anything
            except ReferenceError:
                return [type(p) is weakref.ProxyType, "dead"]
            return [type(p) is weakref.ProxyType, "alive"]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=OK, auto=OK),
        carries_code=False,
        note="it arrives dead, as it is",
    ),
    Case(
        "weakref: proxies to a parent the payload holds", G,
        """
        import weakref
        class Node:
            def __init__(self, name, parent=None):
                self.name = name
                self.parent = weakref.proxy(parent) if parent is not None else None
                self.children = []
                if parent is not None:
                    parent.children.append(self)
        root = Node("root")
        Node("a", root)
        Node("b", root)
        """,
        "root",
        """
        def check(root):
            import weakref
            return [[c.parent.name for c in root.children], type(root.children[0].parent) is weakref.ProxyType,
                    root.children[1].parent.children[0].name]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=WRONG, dill=OK, auto=OK),
        expect_same={"pickle": WRONG, "cloudpickle": WRONG},
        note="pickle and cloudpickle ship the referent itself in place of each proxy",
    ),
    Case(
        "weakref: lone callable proxy", G,
        "import weakref\ndef answer():\n    return 42\nproxy = weakref.proxy(answer)\n",
        "proxy",
        """
        def check(p):
            import weakref
            return [p(), type(p) is weakref.CallableProxyType]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=WRONG, dill=WRONG, auto=CLEAR),
        expect_same={"cloudpickle": WRONG, "dill": WRONG},
        note="on the receiver nothing would hold the referent: auto refuses instead of a dead proxy",
    ),
    Case(
        "class: __getattribute__ recursing forever", G,
        """
        class Evil:
            def __getattribute__(self, name):
                return self.__getattribute__(name)
        """,
        "Evil()",
        """
        def check(o):
            return [type(o).__name__]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=DUMPS, auto=CLEAR),
    ),
    Case(
        "class: __reduce__ raising its own ValueError", G,
        """
        class Refuses:
            def __reduce__(self):
                raise ValueError("Refuses cannot be copied")
        """,
        "Refuses()",
        """
        def check(o):
            return [type(o).__name__]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=DUMPS, auto=DUMPS),
        raises_own=True,
        note="the object's own exception reaches the caller unchanged, as with pickle, cloudpickle and dill",
    ),
    Case(
        "class: ABC with a registered virtual subclass", G,
        """
        import abc
        class Shape(abc.ABC):
            @abc.abstractmethod
            def area(self): ...
        class Square:
            def area(self):
                return 4
        Shape.register(Square)
        """,
        "(Shape, Square)",
        """
        def check(pair):
            shape, square = pair
            return [issubclass(square, shape), isinstance(square(), shape), square().area()]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        note="portable mode used to lose the registration (isinstance turned False)",
    ),
    Case(
        "class: property taken from its class", G,
        """
        class Temperature:
            def __init__(self, c):
                self.c = c
            @property
            def fahrenheit(self):
                return self.c * 9 / 5 + 32
        """,
        "(Temperature.__dict__['fahrenheit'], Temperature)",
        """
        def check(pair):
            prop, cls = pair
            return [prop is cls.__dict__["fahrenheit"], cls(100).fahrenheit]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        portable_same=OK,
        note="portable mode used to ship the property as a copy (identity with the class's own lost)",
    ),
]

# Kinds cloudpickle's and dill's documentation, changelogs and test suites name as handled; auto must
# ship each intact to a fresh process.
G_PEERS = "peers' kinds"

CASES += [
    Case(
        "peers: typing.NewType defined in __main__", G_PEERS,
        "import typing\nUserId = typing.NewType('UserId', int)\n",
        "UserId",
        """
        def check(t):
            return [t(7), t.__name__, t.__supertype__.__name__]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=LOADS, dill=LOADS, auto=OK),
        note="every raw backend writes a NewType by name; the receiver's __main__ lacks it",
    ),
    Case(
        "peers: closure cell on its own", G_PEERS,
        "import types\ncell = types.CellType([1, 2])\n",
        "cell",
        """
        def check(c):
            return [c.cell_contents]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "peers: code object", G_PEERS,
        "def area(r):\n    return 3 * r * r\ncode = area.__code__\n",
        "code",
        """
        def check(code):
            import types
            return [code.co_name, code.co_varnames, types.FunctionType(code, {})(2)]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        note="bytecode: refused by another Python version (portable refuses it everywhere)",
        portable=CLEAR,
    ),
    Case(
        "peers: mappingproxy of a class's namespace copy", G_PEERS,
        "import types\nproxy = types.MappingProxyType({'a': 1, 'b': [2]})\n",
        "proxy",
        """
        def check(p):
            return [type(p).__name__, dict(p)]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        portable=CLEAR,
        note="portable refuses it clearly (pickle cannot write a mappingproxy)",
    ),
    Case(
        "peers: OrderedDict views", G_PEERS,
        "import collections\nod = collections.OrderedDict(a=1)\nviews = (od.keys(), od.items(), od)\n",
        "views",
        """
        def check(v):
            keys, items, od = v
            od["b"] = 2
            return [list(keys), len(items), type(keys).__name__]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=WRONG, dill=WRONG, auto=OK),
        expect_same={"cloudpickle": WRONG, "dill": WRONG},
        carries_code=False,
        note="cloudpickle and dill rebuild views of a detached copy",
    ),
    Case(
        "peers: __init_subclass__ registry", G_PEERS,
        """
        class Plugin:
            registry = []
            def __init_subclass__(cls, **kw):
                super().__init_subclass__(**kw)
                Plugin.registry.append(cls.__name__)
        class CsvPlugin(Plugin):
            def run(self):
                return "csv"
        """,
        "CsvPlugin",
        """
        def check(cls):
            return [cls().run(), cls.__mro__[1].__name__, list(cls.__mro__[1].registry)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=WRONG, dill=LOADS, auto=OK),
        expect_same={"cloudpickle": WRONG},
        note="rebuilding the class runs the base's __init_subclass__ again: cloudpickle registers it twice",
    ),
    Case(
        "peers: logging.Logger by name", G_PEERS,
        "import logging\nlog = logging.getLogger('anypickle.example')\n",
        "log",
        """
        def check(log):
            import logging
            return [log.name, log is logging.getLogger("anypickle.example")]
        """,
        exp(pickle=OK, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        carries_code=False,
    ),
    Case(
        "peers: iterators part-way through", G_PEERS,
        "import itertools\nits = [itertools.count(5), iter([1, 2, 3]), enumerate('abc'), iter({'a': 1, 'b': 2}.items())]\n"
        "for it in its:\n    next(it)\n",
        "its",
        """
        def check(its):
            count, listed, enumerated, items = its
            return [next(count), list(listed), list(enumerated), list(items)]
        """,
        exp(pickle=OK, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        carries_code=False,
    ),
    Case(
        "peers: io.BytesIO part-way through", G_PEERS,
        "import io\nbuf = io.BytesIO(b'abcdef')\nbuf.read(2)\n",
        "buf",
        """
        def check(b):
            return [b.tell(), b.read().decode()]
        """,
        exp(pickle=OK, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        carries_code=False,
    ),
    Case(
        "peers: subscripted generic of a __main__ class", G_PEERS,
        """
        import typing
        T = typing.TypeVar("T")
        class Box(typing.Generic[T]):
            def __init__(self, item: T):
                self.item = item
        alias = Box[int]
        """,
        "alias",
        """
        def check(a):
            import typing
            return [typing.get_origin(a).__name__, [t.__name__ for t in typing.get_args(a)], a(3).item]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=LOADS, auto=OK),
    ),
]

CASES += [
    Case(
        "weakref: WeakSet whose members the payload does not hold", G,
        "import weakref\nclass Member:\n    pass\nmembers = [Member(), Member()]\nweak = weakref.WeakSet(members)\n",
        "weak",
        """
        def check(w):
            import gc
            gc.collect()
            return [len(w), len(list(w))]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=WRONG, dill=WRONG, auto=CLEAR),
        expect_same={"cloudpickle": WRONG, "dill": WRONG},
        note="its members arrive with nothing holding them: cloudpickle gives an empty set, dill one whose "
             "len() counts dead references",
    ),
    Case(
        "weakref: WeakSet after its members", G,
        "import weakref\nclass Member:\n    pass\nmembers = [Member(), Member()]\npair = (members, weakref.WeakSet(members))\n",
        "pair",
        """
        def check(pair):
            import gc
            members, weak = pair
            gc.collect()
            return [len(weak), all(m in weak for m in members)]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "weakref: lone weakref.ref", G,
        "import weakref\nclass Target:\n    pass\ntarget = Target()\nref = weakref.ref(target)\n",
        "ref",
        """
        def check(r):
            return [r() is not None]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=WRONG, auto=CLEAR),
        expect_same={"dill": WRONG},
        note="dill ships it with its referent, which nothing holds on the receiver: it arrives dead",
    ),
]
