"""Objects changed after their class was defined: methods patched onto instances and classes.

These are the rows where an in-process round trip lies: the sender still has the patched class, so
``loads(dumps(x))`` looks right there, while a receiver that imports the class by name runs the
*original* method. The receiver gets the helper module on its path in the ``receiver has helper``
cases, so that importing by name succeeds and the check can see which method actually runs.
"""

from . import DUMPS, LOADS, OK, WRONG, Case, exp

G = "patched objects"

GREETER = """
class Greeter:
    def __init__(self, name):
        self.name = name
    def greet(self):
        return f"hello {self.name}"
"""

CASES = [
    Case(
        "patch: instance method under a new name", G,
        GREETER + """
import types
def shout(self):
    return self.greet().upper() + "!"
g = Greeter("bo")
g.shout = types.MethodType(shout, g)
""",
        "g",
        """
        def check(g):
            return [g.shout(), g.greet()]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        expect_same={"pickle": LOADS},
        note="pickle reduces a bound method to getattr(obj, func.__name__), which the fresh "
             "instance does not have yet",
    ),
    Case(
        "patch: instance method under the same name", G,
        GREETER + """
import types
def loud_greet(self):
    return f"HELLO {self.name.upper()}"
g = Greeter("bo")
g.greet = types.MethodType(loud_greet, g)
""",
        "g",
        """
        def check(g):
            return [g.greet()]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        expect_same={"pickle": LOADS},
        note="pickle reduces a bound method to getattr(obj, func.__name__): 'loud_greet' is no "
             "attribute of the instance",
    ),
    Case(
        "patch: plain function stored on an instance", G,
        GREETER + """
g = Greeter("bo")
g.formatter = lambda text: f"<{text}>"
""",
        "g",
        """
        def check(g):
            return [g.formatter(g.greet())]
        """,
        exp(pickle=DUMPS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "patch: __main__ class patched at class level", G,
        GREETER + """
def formal_greet(self):
    return f"good day, {self.name}"
Greeter.greet = formal_greet
""",
        "Greeter('bo')",
        """
        def check(g):
            return [g.greet()]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
    ),
    Case(
        "patch: helper class patched at class level, receiver has helper", G,
        """
        import example_helper
        def formal_greet(self):
            return f"good day, {self.name}"
        example_helper.Greeter.greet = formal_greet
        """,
        "example_helper.Greeter('bo')",
        """
        def check(g):
            return [g.greet()]
        """,
        exp(pickle=WRONG, marshal=DUMPS, cloudpickle=WRONG, dill=WRONG, auto=OK),
        expect_same={},
        helper=GREETER,
        receiver_has_helper=True,
        note="by reference, the receiver imports its own example_helper and runs the original greet",
    ),
    Case(
        "patch: helper instance method under the same name, receiver has helper", G,
        """
        import types
        import example_helper
        def loud_greet(self):
            return f"HELLO {self.name.upper()}"
        g = example_helper.Greeter("bo")
        g.greet = types.MethodType(loud_greet, g)
        """,
        "g",
        """
        def check(g):
            return [g.greet()]
        """,
        exp(pickle=LOADS, marshal=DUMPS, cloudpickle=OK, dill=OK, auto=OK),
        expect_same={"pickle": LOADS},
        helper=GREETER,
        receiver_has_helper=True,
    ),
    Case(
        "patch: installed class patched at class level", G,
        """
        import fractions
        def fraction_repr(self):
            return f"{self.numerator}/{self.denominator}"
        fractions.Fraction.__repr__ = fraction_repr
        """,
        "fractions.Fraction(3, 4)",
        """
        def check(f):
            return [repr(f), float(f)]
        """,
        exp(pickle=WRONG, marshal=DUMPS, cloudpickle=WRONG, dill=WRONG, auto=OK),
        note="a patched stdlib class travels by reference: every receiver runs the unpatched repr, "
             "unless the patch travels too",
    ),
]
