"""The envelope: a short versioned header in front of every payload anypickle writes.

Layout (all integers little-endian)::

    0   4  magic  b"APKL"   ('A' is pickle's APPEND opcode, which no valid pickle starts with)
    4   1  format version (1)
    5   1  backend id (Backend enum value)
    6   1  flags: BYTECODE=1, SIGNED=2, BUFFERS=4, PORTABLE=8, CONTEXT=16, LIBRARY=32, SOURCE=64
             (CONTEXT: the payload holds persistent ids that name objects of the receiver's context)
    7   1  reserved, 0
    8   8  payload length
    [BYTECODE]  1 + n  implementation name (e.g. b"cpython"); 1 major; 1 minor; 4 importlib MAGIC_NUMBER
    [SIGNED]    1 + n  key id (utf-8, may be empty)
    [LIBRARY]   1 + n  version of the library that wrote the payload (cloudpickle, dill), ascii
    [SOURCE]    4 + n  source lines of the code shipped by value, for tracebacks (see anypickle.backends._lines)
    ..  4  CRC-32 of every header byte before it
    [SIGNED]   32  HMAC-SHA256 over the header (CRC included) and the payload
    payload

The CRC makes every corrupted header byte a clean :class:`DecodeError`; the payload itself is
not checksummed (that would cost a pass over 80 MB arrays); sign it when integrity matters.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import zlib
from typing import Any, Mapping, NamedTuple, Sequence, Union

from .backends._id import Backend
from .errors import DecodeError, InterpreterMismatchError, SignatureError, UsageError

__all__ = ["Header", "Interpreter", "MAGIC", "Key", "build_header", "parse", "sign", "verify"]

MAGIC = b"APKL"
FORMAT_VERSION = 1

BYTECODE = 1
SIGNED = 2
BUFFERS = 4
PORTABLE = 8
CONTEXT = 16
LIBRARY = 32
SOURCE = 64
_KNOWN_FLAGS = BYTECODE | SIGNED | BUFFERS | PORTABLE | CONTEXT | LIBRARY | SOURCE

_FIXED = struct.Struct("<4sBBBBQ")
_CRC = struct.Struct("<I")
_SOURCE_LENGTH = struct.Struct("<I")
TAG_SIZE = 32

Key = Union[bytes, Mapping[str, bytes]]


class Interpreter(NamedTuple):
    """The interpreter whose bytecode a payload carries.

    A named tuple, not a frozen dataclass: ``import anypickle`` then needs neither dataclasses nor
    the inspect module it imports (about 6 ms of a fresh interpreter's import).
    """

    implementation: str
    major: int
    minor: int
    magic: bytes

    @classmethod
    def current(cls) -> "Interpreter":
        """This interpreter."""
        v = sys.version_info
        return cls(sys.implementation.name, v.major, v.minor, importlib.util.MAGIC_NUMBER)

    def __str__(self) -> str:
        name = {"cpython": "CPython", "pypy": "PyPy"}.get(self.implementation, self.implementation)
        return f"{name} {self.major}.{self.minor}"

    def pack(self) -> bytes:
        impl = self.implementation.encode("ascii")
        return bytes([len(impl)]) + impl + bytes([self.major, self.minor]) + self.magic


_BACKENDS = {int(b): b for b in Backend}
_CURRENT = Interpreter.current()
_CURRENT_PACKED = _CURRENT.pack()


class Header(NamedTuple):
    """A parsed envelope header; ``payload_offset`` is where the payload starts in the data.

    A named tuple, not a frozen dataclass: every function payload's ``loads`` builds one, and a
    frozen dataclass sets each of its ten fields through ``object.__setattr__`` (~1.5 µs).
    """

    backend: Backend
    flags: int
    payload_length: int
    interpreter: Interpreter | None
    key_id: str | None
    tag: bytes | None
    header_length: int
    payload_offset: int
    library_version: str | None = None
    """The version of cloudpickle or dill that wrote the payload (None for other backends)."""
    source: bytes | None = None
    """The encoded source lines of the code inside (see :mod:`anypickle.backends._lines`), or None."""

    @property
    def carries_code(self) -> bool:
        """True when the payload may hold bytecode (or source, in portable mode) by design."""
        return bool(self.flags & (BYTECODE | PORTABLE))


def build_header(
    backend: Backend, flags: int, payload_length: int, key_id: str | None = None,
    library_version: str | None = None, source: bytes = b"",
) -> bytes:
    """The header bytes, CRC included, tag excluded (the caller appends the tag when signing).

    ``library_version`` (cloudpickle's or dill's ``__version__``) and ``source`` (encoded source
    lines) each add their section and flag when given.
    """
    if library_version:
        flags |= LIBRARY
    if source:
        flags |= SOURCE
    fixed = _FIXED.pack(MAGIC, FORMAT_VERSION, backend, flags, 0, payload_length)
    if not flags & (BYTECODE | SIGNED | LIBRARY | SOURCE):  # the common case, paid on every small dumps
        return fixed + _CRC.pack(zlib.crc32(fixed))
    parts = [fixed]
    if flags & BYTECODE:
        parts.append(_CURRENT_PACKED)
    if flags & SIGNED:
        kid = (key_id or "").encode("utf-8")
        if len(kid) > 255:
            raise UsageError("key_id must encode to at most 255 bytes")
        parts.append(bytes([len(kid)]) + kid)
    if flags & LIBRARY:
        version = library_version.encode("ascii")[:255]  # type: ignore[union-attr]  # LIBRARY: it is set
        parts.append(bytes([len(version)]) + version)
    if flags & SOURCE:
        parts.append(_SOURCE_LENGTH.pack(len(source)) + source)
    head = b"".join(parts)
    return head + _CRC.pack(zlib.crc32(head))


_PICKLE_PREFIX = _FIXED.pack(MAGIC, FORMAT_VERSION, Backend.PICKLE, 0, 0, 0)[:8]
_PICKLE_PREFIX_CRC = zlib.crc32(_PICKLE_PREFIX)
_LENGTH = struct.Struct("<Q")
_pickle_headers: dict[int, bytes] = {}


def pickle_header(payload_length: int) -> bytes:
    """``build_header(Backend.PICKLE, 0, payload_length)``, cached for small payloads.

    Paid on every dumps of plain data; small tasks repeat the same few lengths, and the cache is
    bounded to lengths under 2 KiB (at most ~2048 entries of 20 bytes).
    """
    header = _pickle_headers.get(payload_length)
    if header is None:
        length = _LENGTH.pack(payload_length)
        header = _PICKLE_PREFIX + length + _CRC.pack(zlib.crc32(length, _PICKLE_PREFIX_CRC))
        if payload_length < 2048:
            _pickle_headers[payload_length] = header
    return header


def pickle_payload(data: bytes) -> bytes | memoryview | None:
    """The payload of a well-formed unsigned stdlib-pickle envelope; None for anything else.

    The fast path of ``loads`` for plain data. For a given payload length exactly one such header
    is valid, magic, version, backend, flags, length and CRC included, so comparing against it is
    the whole of :func:`parse`'s checking for this header shape. None sends the caller to
    :func:`parse`, which accepts or explains every other input.
    """
    payload_length = len(data) - 20
    header = _pickle_headers.get(payload_length)  # inlined cache hit of pickle_header()
    if header is None:
        if payload_length < 0:
            return None
        header = pickle_header(payload_length)
    if not data.startswith(header):
        return None
    return data[20:] if payload_length < 4096 else memoryview(data)[20:]


def is_envelope(data: bytes | memoryview) -> bool:
    """True when ``data`` starts with the envelope magic."""
    return bytes(data[:4]) == MAGIC


def parse(data: memoryview) -> Header:
    """Parse and check the header of ``data``; raise :class:`DecodeError` on anything malformed."""
    n = len(data)
    if n < _FIXED.size + _CRC.size:
        raise DecodeError(f"truncated anypickle envelope: {n} bytes, the header alone needs at least {_FIXED.size + _CRC.size}")
    magic, version, backend_id, flags, reserved, payload_length = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise DecodeError("not an anypickle envelope (bad magic)")
    if version != FORMAT_VERSION:
        raise DecodeError(
            f"envelope format version {version}; this anypickle reads version {FORMAT_VERSION}"
            + (" (written by a newer anypickle: upgrade)" if version > FORMAT_VERSION else ""))
    pos = _FIXED.size
    interpreter = None
    key_id = None
    library_version = None
    source = None
    try:
        if flags & BYTECODE and data[pos:pos + len(_CURRENT_PACKED)] == _CURRENT_PACKED:
            interpreter = _CURRENT  # written by this interpreter (the common case): nothing to build
            pos += len(_CURRENT_PACKED)
        elif flags & BYTECODE:
            ln = data[pos]
            impl = bytes(data[pos + 1:pos + 1 + ln]).decode("ascii")
            pos += 1 + ln
            major, minor = data[pos], data[pos + 1]
            magic_number = bytes(data[pos + 2:pos + 6])
            if len(magic_number) != 4:
                raise IndexError
            pos += 6
            interpreter = Interpreter(impl, major, minor, magic_number)
        if flags & SIGNED:
            ln = data[pos]
            key_id = bytes(data[pos + 1:pos + 1 + ln]).decode("utf-8")
            pos += 1 + ln
        if flags & LIBRARY:
            ln = data[pos]
            library_version = bytes(data[pos + 1:pos + 1 + ln]).decode("ascii")
            pos += 1 + ln
        if flags & SOURCE:
            (ln,) = _SOURCE_LENGTH.unpack_from(data, pos)
            pos += _SOURCE_LENGTH.size
            if ln > n - pos:
                raise IndexError
            source = bytes(data[pos:pos + ln])
            pos += ln
        (crc,) = _CRC.unpack_from(data, pos)
    except (IndexError, UnicodeDecodeError, struct.error):
        raise DecodeError("truncated or corrupted anypickle envelope header") from None
    if zlib.crc32(data[:pos]) != crc:
        raise DecodeError("corrupted anypickle envelope: the header checksum does not match")
    pos += _CRC.size
    header_length = pos
    # Checked after the CRC: a corrupted byte reports as corruption, not as an unknown backend.
    backend = _BACKENDS.get(backend_id)  # a dict, not Backend(): the enum call costs a microsecond
    if backend is None:
        raise DecodeError(f"unknown backend id {backend_id} in envelope (written by a newer anypickle?)") from None
    if flags & ~_KNOWN_FLAGS or reserved:
        raise DecodeError(f"unknown envelope flags {flags:#x} (written by a newer anypickle?)")
    tag = None
    if flags & SIGNED:
        tag = bytes(data[pos:pos + TAG_SIZE])
        if len(tag) != TAG_SIZE:
            raise DecodeError("truncated anypickle envelope: the signature is cut off")
        pos += TAG_SIZE
    if n - pos != payload_length:
        what = "truncated" if n - pos < payload_length else "has trailing bytes"
        raise DecodeError(f"anypickle envelope {what}: header says {payload_length} payload bytes, found {n - pos}")
    return Header(backend, flags, payload_length, interpreter, key_id, tag, header_length, pos, library_version, source)


def check_interpreter(header: Header) -> None:
    """Refuse bytecode written by another interpreter, before anything is unpickled."""
    theirs = header.interpreter
    if theirs is None or theirs is _CURRENT:  # parse() hands back _CURRENT itself for this interpreter's bytes
        return
    if theirs.implementation != _CURRENT.implementation or theirs.magic != _CURRENT.magic:
        raise InterpreterMismatchError(
            f"this payload carries bytecode written by {theirs}; this is {_CURRENT}. Bytecode does not "
            f"transfer between Python versions (it can crash or compute wrong results), so nothing was "
            f"loaded. Load it under {theirs}, or have the sender use anypickle.dumps(obj, backend='portable').",
            written_by=str(theirs), running=str(_CURRENT))


# (hmac.new, hashlib.sha256, hmac.compare_digest), imported by the first sign or verify: hashlib
# loads OpenSSL, ~2 ms of a fresh interpreter's import that unsigned payloads never need.
_hmac: tuple[Any, Any, Any] | None = None


def _import_hmac() -> tuple[Any, Any, Any]:
    global _hmac
    import hashlib
    import hmac

    _hmac = (hmac.new, hashlib.sha256, hmac.compare_digest)
    return _hmac


def sign(key: bytes, header: bytes, *payload: bytes | memoryview) -> bytes:
    """The HMAC-SHA256 tag over header and payload, given whole or in chunks (no concatenated copy)."""
    new, sha256, _ = _hmac or _import_hmac()
    mac = new(key, header, sha256)
    for chunk in payload:
        mac.update(chunk)
    return mac.digest()


MIN_KEY_BYTES = 16
"""The shortest HMAC key accepted, on both sides: an empty or short key (an unset environment
variable, a password) is one an attacker can guess, and a signature made with it proves nothing."""


def check_key(key: object, what: str = "key") -> bytes:
    """``key`` as bytes, or :class:`UsageError` when it is not bytes or shorter than MIN_KEY_BYTES."""
    if not isinstance(key, (bytes, bytearray)):
        raise UsageError(f"{what} must be bytes, not {type(key).__qualname__}")
    if len(key) < MIN_KEY_BYTES:
        raise UsageError(
            f"{what} is {len(key)} bytes; HMAC keys must be at least {MIN_KEY_BYTES} random bytes "
            "(an empty or short key is one an attacker can guess): use os.urandom(32)")
    return bytes(key)


def check_keys(key: object) -> None:
    """Refuse a ``loads(key=...)`` argument before anything is parsed: bytes, or a mapping of str key
    ids to bytes, every key at least MIN_KEY_BYTES long."""
    if isinstance(key, Mapping):
        if not key:
            raise UsageError("key mapping is empty: give at least one key id and key")
        for key_id, value in key.items():
            if not isinstance(key_id, str):
                raise UsageError(f"key ids must be str, not {type(key_id).__qualname__} ({key_id!r})")
            check_key(value, f"key {key_id!r}")
        return
    if isinstance(key, (bytes, bytearray)):
        check_key(key)
        return
    raise UsageError(f"key must be bytes or a mapping of key id to bytes, not {type(key).__qualname__}")


def resolve_key(key: Key, key_id: str | None) -> bytes:
    """The key to check a payload with: ``key`` itself, or the entry for ``key_id`` in a mapping."""
    check_keys(key)
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    if key_id is None or key_id not in key:
        raise SignatureError(f"payload signed with key id {key_id!r}, which is not among the keys given ({sorted(key)})")
    return bytes(key[key_id])


def verify(key: Key, data: memoryview, buffers: Sequence[object] = ()) -> Header:
    """Check the HMAC of a signed envelope before anything is parsed further; return its header.

    A BUFFERS payload's tag also covers its out-of-band ``buffers``, in order.
    """
    check_keys(key)
    try:
        header = parse(data)
    except DecodeError as exc:
        raise SignatureError(f"cannot verify the signature: {exc}") from None
    if not header.flags & SIGNED:
        raise SignatureError("a key was given but the payload is not signed: refusing to load it unverified")
    secret = resolve_key(key, header.key_id)
    extra = buffers if header.flags & BUFFERS else ()
    expected = sign(secret, data[:header.header_length], data[header.payload_offset:], *extra)  # type: ignore[arg-type]
    compare_digest = (_hmac or _import_hmac())[2]
    if not compare_digest(expected, header.tag or b""):
        raise SignatureError("signature mismatch: the payload was altered or signed with another key")
    return header
