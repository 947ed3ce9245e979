"""``anypickle bench TARGET``: dumps/loads time and payload size of your own object, per backend.

TARGET is ``module:attr`` (imported from the current directory first) or the path of a pickle file
(an anypickle envelope or a plain pickle stream; loading a pickle runs its code, so bench only files
you trust). Each backend runs as its own library would be used (``pickle.dumps`` at protocol 5,
``cloudpickle.dumps``, ``dill.dumps``, marshal through anypickle's function codec); "auto" is
``anypickle.dumps`` / ``anypickle.loads``, envelope included.
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import pickle
import timeit
from dataclasses import asdict, dataclass
from typing import Any, Callable

from ._api import load
from .analysis._modules import resolve_target
from .errors import UsageError

__all__ = ["CODECS", "Measurement", "add_bench_parser", "measure"]


def _marshal_dumps(obj: Any) -> bytes:
    from .analysis._modules import ModulePolicy
    from .backends._marshal import encode_function

    if callable(obj):  # marshal has no function type: anypickle's codec, without the envelope
        return marshal.dumps(encode_function(obj, ModulePolicy()))
    return marshal.dumps(obj)


def _marshal_loads(data: bytes) -> Any:
    from .backends._marshal import decode_function

    obj = marshal.loads(data)
    if isinstance(obj, tuple) and obj and obj[0] == "anypickle-marshal-1":
        return decode_function(obj)
    return obj


def _cloudpickle_dumps(obj: Any) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(obj, protocol=5)


def _dill_dumps(obj: Any) -> bytes:
    import dill

    return dill.dumps(obj, protocol=5)


def _dill_loads(data: bytes) -> Any:
    import dill

    return dill.loads(data)


def _auto_dumps(obj: Any) -> bytes:
    from ._api import dumps

    return dumps(obj)


def _auto_loads(data: bytes) -> Any:
    from ._api import loads

    return loads(data)


# label -> (dumps, loads): each library's own entry point, as a user would call it.
CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "pickle": (lambda obj: pickle.dumps(obj, protocol=5), pickle.loads),
    "marshal": (_marshal_dumps, _marshal_loads),
    "cloudpickle": (_cloudpickle_dumps, pickle.loads),
    "dill": (_dill_dumps, _dill_loads),
    "auto": (_auto_dumps, _auto_loads),
}


@dataclass
class Measurement:
    """One backend on one object: best time per call (seconds) and payload size, or why it failed."""

    backend: str
    dumps_s: float | None = None
    loads_s: float | None = None
    size: int | None = None
    ships: bool | None = None
    """Whether the payload loads intact in a fresh process (from :func:`anypickle.explain`)."""
    error: str | None = None


def _best(func: Callable[[], Any], repeat: int, min_time: float) -> float:
    timer = timeit.Timer(func)
    number = 1
    while True:  # enough calls per repeat to last min_time, so fast calls are timed in bulk
        elapsed = timer.timeit(number)
        if elapsed >= min_time:
            break
        number *= 2 if elapsed * 10 >= min_time else 10
    return min([elapsed, *timer.repeat(repeat=repeat - 1, number=number)]) / number


def measure(obj: Any, repeat: int = 3, min_time: float = 0.1, backends: tuple[str, ...] = tuple(CODECS)) -> list[Measurement]:
    """Time dumps and loads of ``obj`` with each backend that can serialize it."""
    from .analysis._explain import explain

    verdicts = {v.backend.label: v.ships for v in explain(obj).backends}
    results = []
    for label in backends:
        dumps, loads = CODECS[label]
        result = Measurement(label)
        results.append(result)
        try:
            payload = dumps(obj)
            loads(payload)
        except Exception as exc:  # noqa: BLE001 - any failure of a foreign library is a finding here
            result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            continue
        result.size = len(payload)
        if label == "auto" or (label == "marshal" and not callable(obj)):
            result.ships = True  # auto by construction; marshal carries plain values whole or refuses
        else:
            result.ships = verdicts.get(label)
        result.dumps_s = _best(lambda: dumps(obj), repeat, min_time)
        result.loads_s = _best(lambda: loads(payload), repeat, min_time)
    return results


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def render(target: str, obj: Any, results: list[Measurement]) -> str:
    """The human-readable table: one row per backend, times relative to the fastest that ships."""
    lines = [f"anypickle bench {target}: a {type(obj).__qualname__}", "",
             f"{'backend':<12} {'dumps':>10} {'loads':>10} {'size':>10}  fresh process"]
    for r in results:
        if r.error is not None:
            lines.append(f"{r.backend:<12} {'-':>10} {'-':>10} {'-':>10}  cannot: {r.error}")
            continue
        verdict = "ships" if r.ships else "breaks (dumps works, the receiver fails or runs other code)"
        lines.append(f"{r.backend:<12} {_fmt_time(r.dumps_s):>10} {_fmt_time(r.loads_s):>10} {_fmt_size(r.size):>10}  {verdict}")
    return "\n".join(lines)


def _load_target(target: str) -> Any:
    if os.path.isfile(target):
        return load(target)
    if ":" not in target:
        raise UsageError(f"{target!r} is neither a file nor module:attr")
    return resolve_target(target)


def _bench(args: argparse.Namespace) -> int:
    obj = _load_target(args.target)
    results = measure(obj, repeat=max(1, args.repeat), min_time=args.min_time)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(render(args.target, obj, results))
    return 0


def add_bench_parser(sub: Any) -> None:
    """Add ``anypickle bench`` to the CLI's subparsers."""
    p = sub.add_parser("bench", help="dumps/loads time and size of your object, per backend",
                       description=__doc__.splitlines()[0])
    p.add_argument("target", help="module:attr naming the object, or a pickle file")
    p.add_argument("--repeat", type=int, default=3, help="timing repeats; the best is kept (default 3)")
    p.add_argument("--min-time", type=float, default=0.1, metavar="SECONDS",
                   help="time each repeat runs at least (default 0.1)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON (seconds, bytes)")
    p.set_defaults(handler=_bench)
