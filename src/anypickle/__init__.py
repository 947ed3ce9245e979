"""anypickle: ship Python objects to a fresh process, picking the serializer by what the object needs."""

from ._backend import Backend
from .errors import (
    AnyPickleError,
    DecodeError,
    EncodeError,
    InterpreterMismatchError,
    SignatureError,
    UnsafePickleError,
    UsageError,
)

__all__ = [
    "AnyPickleError",
    "Backend",
    "DecodeError",
    "EncodeError",
    "InterpreterMismatchError",
    "SignatureError",
    "UnsafePickleError",
    "UsageError",
]
__version__ = "0.1.0"
