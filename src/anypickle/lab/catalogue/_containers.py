"""Containers: plain data, shared references, recursive structures, objects holding locks."""

from . import DUMPS, LOADS, OK, WRONG, Case, exp

G = "containers and state"

# anypickle's marshal backend ships plain functions only, never data.
DATA = exp(pickle=OK, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK)

CASES = [
    Case(
        "data: nested builtin containers", G,
        "",
        "{'ints': [1, 2, 3], 'nested': {'t': (1, 'two', 3.0), 'b': b'\\x00\\xff'}, 's': {1, 2}, 'n': None}",
        """
        def check(d):
            return [sorted(d), d["ints"], list(d["nested"]["t"]), d["nested"]["b"].hex(), sorted(d["s"]),
                    type(d["nested"]["t"]).__name__, d["n"]]
        """,
        DATA, carries_code=False,
    ),
    Case(
        "data: large flat list", G,
        "",
        "list(range(100_000))",
        """
        def check(v):
            return [len(v), sum(v), v[-1]]
        """,
        DATA, carries_code=False,
    ),
    Case(
        "data: shared references", G,
        "shared = [1]\npair = [shared, shared, {'again': shared}]\n",
        "pair",
        """
        def check(p):
            p[0].append(2)
            return [p[1], p[2]["again"], p[0] is p[1]]
        """,
        DATA, carries_code=False,
    ),
    Case(
        "data: recursive list", G,
        "loop = [1]\nloop.append(loop)\n",
        "loop",
        """
        def check(v):
            return [v[0], v[1] is v, v[1][1][1][0]]
        """,
        DATA, carries_code=False,
    ),
    Case(
        "data: recursive dict", G,
        "node = {'name': 'root'}\nnode['self'] = node\n",
        "node",
        """
        def check(v):
            return [v["self"]["self"]["name"], v["self"] is v]
        """,
        DATA, carries_code=False,
    ),
    Case(
        "data: cycle between __main__ instances", G,
        """
        class Node:
            def __init__(self, name):
                self.name = name
                self.children = []
                self.parent = None
            def add(self, child):
                child.parent = self
                self.children.append(child)
                return child
            def path(self):
                return (self.parent.path() + "/" if self.parent else "") + self.name
        root = Node("root")
        leaf = root.add(Node("a")).add(Node("b"))
        """,
        "leaf",
        """
        def check(n):
            return [n.path(), n.parent.parent.children[0] is n.parent, len(n.parent.parent.children)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "data: memoryview", G,
        "",
        "memoryview(b'abc')",
        """
        def check(m):
            return [m.tobytes().decode(), len(m)]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=WRONG, dill=DUMPS, auto=OK),
        expect_same={"cloudpickle": WRONG},
        note="cloudpickle turns a memoryview into bytes",
    ),
    Case(
        "locks: threading.Lock", G,
        "import threading\nlock = threading.Lock()\n",
        "lock",
        """
        def check(lock):
            first = lock.acquire(blocking=False)
            second = lock.acquire(blocking=False)
            lock.release()
            return [first, second, lock.locked()]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=OK, auto=OK),
    ),
    Case(
        "locks: __main__ instance holding an RLock", G,
        """
        import threading
        class Account:
            def __init__(self):
                self.lock = threading.RLock()
                self.balance = 10
            def deposit(self, n):
                # a timeout instead of a plain `with`: a lock that arrives held must not hang the check
                if not self.lock.acquire(timeout=0.2):
                    return "lock held by another thread"
                try:
                    with self.lock:
                        self.balance += n
                finally:
                    self.lock.release()
                return self.balance
        """,
        "Account()",
        """
        def check(a):
            return [a.deposit(5), a.deposit(1)]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=WRONG, auto=OK),
        expect_same={"dill": WRONG},
        note="dill rebuilds an unheld RLock as held by thread 0 (`_acquire_restore((0, 0))`): "
             "the loaded lock deadlocks its first acquire",
    ),
    Case(
        "locks: queue.Queue with items", G,
        "import queue\nq = queue.Queue()\nq.put('a'); q.put('b')\n",
        "q",
        """
        def check(q):
            q.put("c")
            return [q.get(), q.get(), q.qsize()]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=DUMPS, dill=OK, auto=OK),
        portable_to={(3, 13): WRONG},
        note="portable, from Python 3.12 or older to 3.13 or newer: wrong result. A Queue travels as its "
             "instance __dict__ (no code of ours is involved), and 3.13's Queue methods read an attribute "
             "older versions never set (is_shutdown). Shipping source cannot fix the layout of a stdlib "
             "object; auto refuses the cross-version load instead",
    ),
]
