"""anypickle: ship Python objects to a fresh process, picking the serializer by what the object needs.

>>> import anypickle
>>> f = anypickle.loads(anypickle.dumps(lambda x: x * 2))
>>> f(21)
42
"""

from typing import TYPE_CHECKING

from ._api import dump, dumps, load, loads
from .backends._id import Backend
from .lab._check import CheckResult, check
from .analysis._explain import Explanation, explain
from .safe._limits import Limits
from .analysis._needs import Finding, Need
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
    from .shipping.executor import ProcessPoolExecutor

__all__ = [
    "AnyPickleError",
    "Backend",
    "CheckResult",
    "DecodeError",
    "EncodeError",
    "Explanation",
    "Finding",
    "InterpreterMismatchError",
    "Limits",
    "Need",
    "ProcessPoolExecutor",
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
    "wrap",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The executor imports multiprocessing and concurrent.futures: only on first use.
    if name == "ProcessPoolExecutor":
        from .shipping.executor import ProcessPoolExecutor

        return ProcessPoolExecutor
    raise AttributeError(f"module 'anypickle' has no attribute {name!r}")
