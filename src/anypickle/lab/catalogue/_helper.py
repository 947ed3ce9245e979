"""Code in a local helper module beside the script (``example_helper.py``) that the receiver lacks.

cloudpickle and dill pickle an importable module's functions and classes by reference, so they load
only where the module exists; anypickle auto ships modules that are not installed by value.
"""

from . import DUMPS, LOADS, OK, WRONG, Case, exp

G = "helper module"

HELPER = '''
import dataclasses
import enum

RATE = 0.2

def tax(amount):
    return round(amount * RATE, 2)

def gross(amount):
    return amount + tax(amount)

def make_multiplier(k):
    def multiply(x):
        return x * k
    return multiply

class Shape:
    sides = 0
    def __init__(self, size):
        self.size = size
    def perimeter(self):
        return self.sides * self.size
    def describe(self):
        return f"{type(self).__name__} perimeter {self.perimeter()}"

@dataclasses.dataclass
class Invoice:
    amount: float
    def total(self):
        return gross(self.amount)

class Status(enum.Enum):
    OPEN = "open"
    PAID = "paid"
'''

# By reference everywhere but auto: "No module named 'example_helper'" in a receiver without it.
BY_REFERENCE = exp(pickle=LOADS, marshal=DUMPS, cloudpickle=LOADS, dill=LOADS, auto=OK)

CASES = [
    Case(
        "helper: module-level function", G,
        "from example_helper import gross\n",
        "gross",
        """
        def check(f):
            return [f(100), f(10)]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=LOADS, dill=LOADS, auto=OK),
        helper=HELPER,
    ),
    Case(
        "helper: closure made by a helper function", G,
        "from example_helper import make_multiplier\ntriple = make_multiplier(3)\n",
        "triple",
        """
        def check(f):
            return [f(5), f("ab")]
        """,
        exp(pickle=DUMPS, marshal=OK, cloudpickle=OK, dill=LOADS, auto=OK),
        helper=HELPER,
        note="a closure goes by value even when its module is importable; dill still imports the module",
    ),
    Case(
        "helper: class instance", G,
        "from example_helper import Shape\ns = Shape(3)\ns.sides = 4\n",
        "s",
        """
        def check(s):
            return [s.perimeter(), s.describe()]
        """,
        BY_REFERENCE,
        helper=HELPER,
    ),
    Case(
        "helper: dataclass instance using module globals", G,
        "from example_helper import Invoice\n",
        "Invoice(50.0)",
        """
        def check(i):
            return [i.total(), repr(i)]
        """,
        BY_REFERENCE,
        helper=HELPER,
    ),
    Case(
        "helper: Enum member", G,
        "from example_helper import Status\n",
        "Status.PAID",
        """
        def check(s):
            return [s.value, s is type(s)("paid"), [m.name for m in type(s)]]
        """,
        BY_REFERENCE,
        helper=HELPER,
    ),
    Case(
        "helper: __main__ subclass of a helper class", G,
        """
        from example_helper import Shape
        class Square(Shape):
            sides = 4
            def area(self):
                return self.size ** 2
        """,
        "Square(5)",
        """
        def check(s):
            return [s.area(), s.perimeter(), s.describe(), [k.__name__ for k in type(s).__mro__]]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=LOADS, dill=LOADS, auto=OK),
        helper=HELPER,
        note="the subclass goes by value, but its base names the missing helper module",
    ),
    Case(
        "helper: module object itself", G,
        "import example_helper\n",
        "example_helper",
        """
        def check(m):
            return [m.gross(10), m.Shape(2).perimeter(), m.RATE]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=LOADS, dill=LOADS, auto=OK),
        helper=HELPER,
    ),
    Case(
        "helper: function, receiver has the helper module", G,
        "from example_helper import gross\n",
        "gross",
        """
        def check(f):
            return [f(100)]
        """,
        exp(pickle=OK, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        helper=HELPER,
        receiver_has_helper=True,
        note="baseline: with the module on the receiver's path, by reference works",
    ),
]
