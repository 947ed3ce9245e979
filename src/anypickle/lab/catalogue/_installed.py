"""Installed things (stdlib, numpy) that every backend should send by reference, never by value."""

from . import DUMPS, OK, Case, exp

G = "installed by reference"

BY_NAME = exp(pickle=OK, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK)

CASES = [
    Case(
        "installed: json.dumps", G,
        "import json\n",
        "json.dumps",
        """
        def check(f):
            return [f({"b": 1, "a": [1, 2]}, sort_keys=True), f.__module__]
        """,
        BY_NAME, carries_code=False,
    ),
    Case(
        "installed: builtin function math.sqrt", G,
        "import math\n",
        "math.sqrt",
        """
        def check(f):
            return [f(16.0), f.__name__]
        """,
        BY_NAME, carries_code=False,
    ),
    Case(
        "installed: operator.itemgetter", G,
        "import operator\n",
        "operator.itemgetter(2, 0)",
        """
        def check(g):
            return [g("abc"), g([10, 20, 30])]
        """,
        BY_NAME, carries_code=False,
    ),
    Case(
        "installed: method descriptor str.upper", G,
        "",
        "str.upper",
        """
        def check(f):
            return [f("abc")]
        """,
        BY_NAME, carries_code=False,
    ),
    Case(
        "installed: compiled regular expression", G,
        "import re\n",
        "re.compile(r'(\\d+)-(\\w+)', re.IGNORECASE)",
        """
        def check(p):
            return [p.match("12-ab").groups(), p.flags & 2, p.pattern]
        """,
        BY_NAME, carries_code=False,
    ),
    Case(
        "installed: decimal, fraction, datetime values", G,
        "import datetime, decimal, fractions\n",
        "[decimal.Decimal('1.10'), fractions.Fraction(1, 3), datetime.datetime(2024, 2, 29, 12, 30),"
        " datetime.timedelta(days=2)]",
        """
        def check(v):
            d, f, dt, td = v
            return [str(d * 3), str(f * 3), (dt + td).isoformat(), type(dt).__module__]
        """,
        BY_NAME, carries_code=False,
    ),
    Case(
        "installed: defaultdict(list) and OrderedDict", G,
        "import collections\nd = collections.defaultdict(list)\nd['a'].append(1)\n",
        "[d, collections.OrderedDict([('z', 1), ('a', 2)])]",
        """
        def check(v):
            d, od = v
            d["new"].append(5)
            od.move_to_end("z")
            return [dict(d), list(od), type(d).__name__]
        """,
        BY_NAME, carries_code=False,
    ),
    Case(
        "installed: numpy array", G,
        "import numpy as np\n",
        "np.arange(12, dtype=np.int32).reshape(3, 4)",
        """
        def check(a):
            return [a.shape, str(a.dtype), int(a.sum()), a[1].tolist(), a.T.flags["C_CONTIGUOUS"]]
        """,
        BY_NAME, carries_code=False, requires=("numpy",),
    ),
    Case(
        "installed: numpy structured array", G,
        "import numpy as np\n",
        "np.array([(1, 2.5), (2, 3.5)], dtype=[('id', 'i4'), ('w', 'f8')])",
        """
        def check(a):
            return [a["id"].tolist(), float(a["w"].sum()), list(a.dtype.names)]
        """,
        BY_NAME, carries_code=False, requires=("numpy",),
    ),
    Case(
        "installed: numpy ufunc", G,
        "import numpy as np\n",
        "np.add",
        """
        def check(u):
            import numpy as np
            return [u(2, 3).item(), u.reduce(np.arange(5)).item(), u.nin, u.__name__]
        """,
        BY_NAME, carries_code=False, requires=("numpy",),
    ),
    Case(
        "installed: __main__ lambda over numpy", G,
        "import numpy as np\nnormalize = lambda a: (a - a.mean()) / a.std()\n",
        "normalize",
        """
        def check(f):
            import numpy as np
            return [round(float(x), 6) for x in f(np.array([1.0, 2.0, 3.0]))]
        """,
        exp(pickle=DUMPS, marshal=OK, cloudpickle=OK, dill=OK, auto=OK), requires=("numpy",),
    ),
]
