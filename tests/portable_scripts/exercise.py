"""What each portable case does with its object, on the sender (expected) and on the receiver (actual).

Every exercise returns JSON-able data, so results from two interpreters compare with ``==``.
"""

import asyncio
import dataclasses


def _frozen_refuses(p):
    try:
        p.x = 99
    except dataclasses.FrozenInstanceError:
        return "frozen"
    return "mutable"


def _shared(pair):
    inc, get = pair
    return [inc(), inc(), get()]


def _ctx(cm_factory):
    with cm_factory(5) as value:
        inside = value
    return inside


EXERCISES = {
    "module_function": lambda f: [f(1), f(2.5)],
    "lambda": lambda f: f(7),
    "two_lambdas_one_line": lambda pair: [pair[0](10), pair[1](10)],
    "two_same_lambdas_one_line": lambda pair: [pair[0](3), pair[1](3), pair[0] is pair[1]],
    "closure": lambda f: [f(1), f(2)],
    "recursive_closure": lambda f: f(10),
    "shared_cell": _shared,
    "decorated_wraps": lambda f: [f(3), f.__name__, f.__wrapped__(3)],
    "decorated_lru_cache": lambda f: [f(60), f.cache_info().maxsize],
    "decorated_with_args": lambda f: [f("ab"), f.__name__],
    "decorated_attribute": lambda f: [f(2), f.tagged],
    "decorated_contextmanager": _ctx,
    "decorated_stacked": lambda f: [f(1), f.__wrapped__.cache_info().maxsize, f.__name__],
    "class_decorator_main": lambda c: c().hello(),
    "class_total_ordering": lambda c: [c(1) <= c(2), c(3) >= c(2), c(1) > c(2)],
    "nested_class": lambda c: [c().hi(), c.__qualname__, c.Deeper().deep()],
    "private_names": lambda o: [o.reveal(), sorted(vars(o))],
    "dataclass_frozen": lambda p: [repr(p), p.norm2(), hash(p) == hash(type(p)(3, 4)), _frozen_refuses(p)],
    "enum": lambda m: [m.name, m.value, m.label(), [x.name for x in type(m)], m is type(m)(2)],
    "namedtuple_typing": lambda t: [list(t), t._replace(a=5).a, t.total(), type(t)._fields],
    "enum_functional": lambda m: [m.name, int(m) + 1, [x.name for x in type(m)], type(m).__qualname__],
    "namedtuple_functional": lambda t: [list(t), t.y, type(t)._fields, type(t).__name__],
    "slots": lambda o: [o.total(), hasattr(o, "__dict__"), sorted(type(o).__slots__)],
    "metaclass": lambda c: [c.registry_name, type(c).__name__, c().ping()],
    "class_methods_kinds": lambda c: [c.make(4).doubled, c.unit(), c(3).doubled, c.counter],
    "super_call": lambda o: o.greet(),
    "abc": lambda c: [c().area(), _abstract_refuses(c)],
    "main_subclass_of_helper_class": lambda o: [o.describe(), o.perimeter(), o.corner()],
    "helper_function": lambda f: f(3, 4),
    "helper_module_global": lambda f: f(21),
    "partial_of_lambda": lambda p: p(5),
    "instance_after_state_change": lambda o: [o.value, o.history, type(o).created, o.bump()],
    "mutual_recursion": lambda pair: [pair[0](10), pair[1](7)],
    "local_class": lambda c: [c(2).scaled(), c.__qualname__, type(c(1)).__bases__[0].__name__],
    "generator_function": lambda g: list(g(4)),
    "async_function": lambda f: asyncio.run(f(3)),
    "kwonly_defaults_annotations": lambda f: [f(1), f(1, k=5), sorted(f.__annotations__), f.__kwdefaults__],
    "method_aliases": lambda c: [c().inside(), c().after(), c().key(), c.after is c.original],
    "lambda_in_class_body": lambda c: [c().key(), c.sort_key((3, 1))],
    "dynamic_type_class": lambda c: [c().hello(), c.__name__, c.flag],
    "notebook_cell": lambda f: f(4),
    "notebook_dataclass": lambda p: [repr(p), p == type(p)(1, 5)],
    "future_annotations": lambda f: [f(2), f.__annotations__["x"]],
    "multiline_string": lambda f: f(),
    "def_in_if_block": lambda f: f(10),
    "multiline_lambda": lambda f: [f(3), f(3, 4)],
    "init_subclass": lambda c: [c.kind, c.__mro__[1].__name__],
    "patched_instance_methods": lambda o: [o.shout(), o.speak(), type(o).speak(o)],
    "exception_custom_init": lambda e: [str(e), e.status, e.reason, type(e).__mro__[1].__name__],
    "dataclass_slots_self_reference": lambda p: [repr(p.shift()), hasattr(p, "__dict__"), list(type(p).__slots__)],
    "helper_module_object": lambda m: [m.hypot_plus(3, 4), m.Shape(2).describe(), m.OFFSET, m.twice(5)],
    "submodule_through_package": lambda f: [f("<a><b/></a>"), f("<zzz/>")],
    "patched_installed_class": lambda f: [f.as_text(), float(f)],
    "singledispatch": lambda f: [f(3), f([1, 2]), f("s"), sorted(c.__name__ for c in f.registry)],
    "lock_and_memoryview": lambda t: [t[0].acquire(blocking=False), t[1].acquire(blocking=False),
                                      t[2].tobytes().decode(), t[2].format],
}


def _abstract_refuses(cls):
    base = cls.__mro__[1]
    try:
        base()
    except TypeError:
        return "abstract"
    return "instantiable"


def run(name, obj):
    """Exercise one case; an exception becomes a JSON-able record (so sender and receiver can compare)."""
    try:
        return {"ok": EXERCISES[name](obj)}
    except Exception as exc:  # noqa: BLE001 - every failure is a result to compare
        return {"error": f"{type(exc).__name__}: {exc}"}
