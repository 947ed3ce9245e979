"""anypickle: ship Python objects to a fresh process, picking the serializer by what the object needs.

>>> import anypickle
>>> f = anypickle.loads(anypickle.dumps(lambda x: x * 2))
>>> f(21)
42
"""

from typing import TYPE_CHECKING

from ._api import Decoder, Encoder, dump, dumps, load, loads
from .backends._id import Backend
from .analysis._needs import Need
from .errors import (
    AnyPickleError,
    DecodeError,
    EncodeError,
    InterpreterMismatchError,
    SignatureError,
    UnsafePickleError,
    UsageError,
    WorkerCrashedError,
)
from .shipping.wrap import Wrapped, wrap

if TYPE_CHECKING:  # imported on first use at run time, by __getattr__ below
    from .analysis._explain import Explanation, explain
    from .analysis._finding import Finding
    from .lab._check import CheckResult, check
    from .safe import safe_loads
    from .safe._limits import Limits
    from .safe._scanner import ScanFinding, ScanReport, Severity, scan
    from .shipping.executor import ProcessPoolExecutor

__all__ = [
    "AnyPickleError",
    "Backend",
    "CheckResult",
    "DecodeError",
    "Decoder",
    "EncodeError",
    "Encoder",
    "Explanation",
    "Finding",
    "InterpreterMismatchError",
    "Limits",
    "Need",
    "ProcessPoolExecutor",
    "ScanFinding",
    "ScanReport",
    "Severity",
    "SignatureError",
    "UnsafePickleError",
    "UsageError",
    "WorkerCrashedError",
    "Wrapped",
    "check",
    "dump",
    "dumps",
    "explain",
    "load",
    "loads",
    "safe_loads",
    "scan",
    "wrap",
]
__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it: dynamic)

# Imported on first use: the executor imports multiprocessing and concurrent.futures, the scanner
# and safe loading their allowlists (Limits comes with them), check() the lab's fork servers, Finding
# and explain() dataclasses and inspect; ``import anypickle`` stays as cheap as the facade
# (tests/test_import_laziness.py holds it to that). wrap stays eager: payloads name its module
# ``anypickle.wrap``, which must be in sys.modules before a pickle imports it (see _reducers.WIRE_NAMES).
_LAZY = {
    "check": ("lab._check", "check"),
    "CheckResult": ("lab._check", "CheckResult"),
    "explain": ("analysis._explain", "explain"),
    "Explanation": ("analysis._explain", "Explanation"),
    "Finding": ("analysis._finding", "Finding"),
    "Limits": ("safe._limits", "Limits"),
    "ProcessPoolExecutor": ("shipping.executor", "ProcessPoolExecutor"),
    "safe_loads": ("safe", "safe_loads"),
    "scan": ("safe._scanner", "scan"),
    "ScanFinding": ("safe._scanner", "ScanFinding"),
    "ScanReport": ("safe._scanner", "ScanReport"),
    "Severity": ("safe._scanner", "Severity"),
}


def __getattr__(name: str) -> object:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'anypickle' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(f".{module_name}", __name__), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))  # the lazy names too, before their first use
