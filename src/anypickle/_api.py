"""The facade: :func:`dumps`, :func:`loads`, :func:`dump`, :func:`load`, and the reusable
:class:`Encoder` / :class:`Decoder` that hold the fast paths (a pool of probe picklers; the C first
step of ``loads``). The module-level functions use a default one of each."""

from __future__ import annotations

import functools
import io
import os
import pickle
import types
import warnings
from typing import (
    IO, TYPE_CHECKING, Any, Callable, Iterable, List, Literal, Mapping, NoReturn, Sequence, Tuple, Union, overload,
)

from . import _context
from . import _envelope as env
from . import _frames
from .backends import _lines
from ._frames import BufferCollector
from .backends._id import PORTABLE, Backend, parse_backend
from .analysis._modules import ModuleNames, ModulePolicy
from .analysis._needs import UNSHIPPABLE_TYPES, Need, NeedFound, ProbePickler, find_needs, locate, locate_named_type, unshippable_advice
from .backends import enhanced as enhanced_backend
from .backends import get as get_backend
from .errors import AnyPickleError, DecodeError, EncodeError, UnsafePickleError, UsageError

__all__ = ["Decoder", "Encoder", "dump", "dumps", "load", "loads"]

if TYPE_CHECKING:  # anypickle.safe is imported by the first safe load (or limits=), not with this module
    from .safe._limits import Limits

PathLike = Union[str, "os.PathLike[str]"]


# For type checkers: bytes, or (header, buffers) with buffers=True.
@overload
def dumps(
    obj: Any, *, backend: str | Backend = ..., by_value: ModuleNames = ..., by_reference: ModuleNames = ...,
    key: bytes | None = ..., key_id: str | None = ..., portable: bool = ..., buffers: Literal[False] = ...,
    context: Mapping[str, Any] | None = ...,
) -> bytes: ...
@overload
def dumps(
    obj: Any, *, backend: str | Backend = ..., by_value: ModuleNames = ..., by_reference: ModuleNames = ...,
    key: bytes | None = ..., key_id: str | None = ..., portable: bool = ..., buffers: Literal[True],
    context: Mapping[str, Any] | None = ...,
) -> tuple[bytes, list[memoryview]]: ...
@overload
def dumps(
    obj: Any, *, backend: str | Backend = ..., by_value: ModuleNames = ..., by_reference: ModuleNames = ...,
    key: bytes | None = ..., key_id: str | None = ..., portable: bool = ..., buffers: bool,
    context: Mapping[str, Any] | None = ...,
) -> bytes | tuple[bytes, list[memoryview]]: ...


def dumps(
    obj: Any,
    *,
    backend: str | Backend = "auto",
    by_value: ModuleNames = (),
    by_reference: ModuleNames = (),
    key: bytes | None = None,
    key_id: str | None = None,
    portable: bool = False,
    buffers: bool = False,
    context: Mapping[str, Any] | None = None,
) -> bytes | tuple[bytes, list[memoryview]]:
    """Serialize ``obj`` into an anypickle envelope that a fresh interpreter can load.

    ``backend="auto"`` picks the cheapest serializer that ships ``obj`` intact into a process that
    has neither this ``__main__`` nor its local modules: stdlib pickle when everything goes by
    reference; marshal for a plain function; cloudpickle (with anypickle's fixes) for other by-value
    code; dill as a last resort. ``by_value`` / ``by_reference`` name modules to force either way
    (modules that are neither stdlib nor installed go by value by default).

    ``backend="portable"`` ships code as source, loadable by any Python 3.10+ (see the README);
    ``portable=True``, its old spelling, still works and warns (``DeprecationWarning``).
    ``key`` signs the envelope with HMAC-SHA256 (``key_id`` names the key, for rotation).
    ``buffers=True`` returns ``(header, buffers)``: large buffers (numpy arrays, bytearrays) stay out
    of the stream, as memoryviews of the original memory, for transports that send several frames;
    ``loads(header, buffers=buffers)`` rebuilds without copying them.
    ``context`` maps names to objects that must not travel: each is written as its name and
    resolved from the receiver's ``loads(..., context=...)`` (matched by identity).

    >>> import anypickle
    >>> anypickle.loads(anypickle.dumps(lambda x: x + 1))(41)
    42
    """
    if backend == "auto" and key is None and context is None and not (by_value or by_reference or portable or buffers):
        return _encode_default(obj)
    if portable:
        backend = _portable_flag(backend)
    choice = None if backend == "auto" else parse_backend(backend)
    portable = choice is PORTABLE
    chosen = choice if isinstance(choice, Backend) else None
    policy = _DEFAULT_POLICY if not by_value and not by_reference else ModulePolicy(by_value, by_reference)
    frame = _Frame(key, key_id)
    if buffers:
        if portable or context is not None:
            raise UsageError("buffers=True cannot be combined with backend='portable' or context=")
        frame.buffer_callback = BufferCollector()
    marker = _context.marker(context)
    if marker is not None and (portable or chosen is Backend.MARSHAL):
        raise UsageError("context= needs a pickler; it cannot be combined with backend='portable' or 'marshal'")
    if portable:
        from .backends._portable import dump_portable

        used = Backend.PICKLE
        dump_portable(obj, frame.start(env.PORTABLE), policy)
    elif chosen is None:
        used = _dump_auto(obj, frame, policy, marker)
    else:
        used = chosen
        _dump_forced(obj, frame, chosen, policy, marker)
    if marker is not None and marker.used:
        frame.flags |= env.CONTEXT
    if buffers:
        assert frame.buffer_callback is not None  # set above for buffers=True
        return frame.finish(used), frame.buffer_callback.buffers
    return frame.finish(used)


def _portable_flag(backend: str | Backend) -> str:
    """``portable=True`` (deprecated): the ``backend`` it stands for, with a warning naming the new spelling."""
    warnings.warn('anypickle: portable=True is deprecated; use backend="portable"', DeprecationWarning, stacklevel=3)
    if parse_backend(backend) not in (None, PORTABLE, Backend.PICKLE):
        raise UsageError("portable=True ships source through pickle; it cannot be combined with backend=" + repr(backend))
    return "portable"


class _Sink:
    """The file a pickler writes to: ``write`` keeps each chunk by reference, nothing is copied.

    The C pickler hands large bytes, bytearrays and PickleBuffers (arrays) to ``write`` as they are,
    and Python's pickle framer never reuses a buffer it wrote (it documents this "delayed access").
    """

    __slots__ = ("chunks", "write")

    def __init__(self, chunks: list[Any]) -> None:
        self.chunks = chunks
        self.write = chunks.append


class _Frame:
    """Collects the payload's chunks, then joins header and chunks into the result with one copy.

    The payload is never copied to prepend a header: the chunks (a large array arrives as its own
    PickleBuffer) are joined once, straight into the final bytes object.
    """

    __slots__ = ("chunks", "flags", "key", "key_id", "buffer_callback", "lines")

    def __init__(self, key: bytes | None, key_id: str | None) -> None:
        if key is not None:
            env.check_key(key)
        self.chunks: list[Any] = []
        self.key = key
        self.key_id = key_id
        self.flags = 0
        self.buffer_callback: BufferCollector | None = None
        self.lines: _lines.LineCollector | None = None

    def start(self, flags: int) -> _Sink:
        """Drop what a previous attempt wrote; return a file for this attempt."""
        if self.key is not None:
            flags |= env.SIGNED
        if self.buffer_callback is not None:
            flags |= env.BUFFERS
            self.buffer_callback.clear()
        if flags & env.BYTECODE:  # code goes by value: note it, its source lines travel too
            self.lines = _lines.LineCollector()
        else:
            self.lines = None
        self.flags = flags
        self.chunks = []
        return _Sink(self.chunks)

    def finish(self, backend: Backend) -> bytes:
        chunks = self.chunks
        extra: list[memoryview] = []
        if self.buffer_callback is not None:  # the payload starts with the table of buffer sizes
            extra = self.buffer_callback.buffers
            chunks.insert(0, _frames.table(extra))
        payload_length = 0
        for chunk in chunks:
            payload_length += len(chunk) if type(chunk) is bytes else memoryview(chunk).nbytes
        if backend is Backend.PICKLE and not self.flags:
            header = env.pickle_header(payload_length)
        else:
            impl = get_backend(backend)
            source = self.lines.encode() if self.lines is not None else b""
            header = env.build_header(backend, self.flags, payload_length, self.key_id, impl.library_version, source)
        if self.key is not None:
            header += env.sign(bytes(self.key), header, *chunks, *extra)
        if len(chunks) == 1 and payload_length < 65536:
            return header + chunks[0]
        chunks.insert(0, header)
        return b"".join(chunks)


def _code_flags(backend: Backend) -> int:
    return env.BYTECODE if get_backend(backend).carries_code else 0


def _dump_forced(obj: Any, frame: _Frame, backend: Backend, policy: ModulePolicy, marker: Any = None) -> None:
    impl = get_backend(backend)
    try:
        sink = frame.start(_code_flags(backend))
        impl.dump(obj, sink, policy, persistent_id=marker, buffer_callback=frame.buffer_callback,
                  lines=frame.lines)
    except Exception as exc:
        if not is_refusal(exc, impl.dump_errors):
            raise  # the object's own __reduce__/__getstate__ failed (or an anypickle bug): let it through
        raise _encode_error(obj, policy, [(backend.label, exc)], forced=backend) from exc


_DEFAULT_POLICY = ModulePolicy()
# An idle ProbePickler for the default policy: (chunks its sink fills, pickler, its bound dump, its
# bound clear_memo). Building a Pickler subclass costs more than pickling a small dict, hence the
# pools (one per Encoder, see there).
_Probe = Tuple[List[Any], ProbePickler, Callable[[Any], None], Callable[[], None]]
_pickle_header = env._pickle_headers.get


def _take_probe(free: list[_Probe]) -> _Probe:
    try:
        return free.pop()
    except IndexError:
        chunks: list[Any] = []
        probe = ProbePickler(_Sink(chunks), _DEFAULT_POLICY)
        return chunks, probe, probe.dump, probe.clear_memo


def _give_back(free: list[_Probe], pair: _Probe) -> None:
    pair[0].clear()
    pair[1].memo = {}  # a fresh memo table (see Encoder._encode_plain): it held a reference to every object pickled
    free.append(pair)


def _probe(obj: Any, frame: _Frame, policy: ModulePolicy, marker: Any = None) -> None:
    """Pickle ``obj`` into ``frame`` with a ProbePickler (a pooled one under the default policy)."""
    if policy is not _DEFAULT_POLICY or frame.buffer_callback is not None or marker is not None:
        probe = ProbePickler(frame.start(0), policy, buffer_callback=frame.buffer_callback)
        if marker is not None:
            probe.persistent_id = marker  # type: ignore[method-assign]  # pickle's per-instance hook
        probe.dump(obj)
        return
    free = _DEFAULT_ENCODER._free
    pair = _take_probe(free)
    frame.start(0)
    try:
        pair[2](obj)
        frame.chunks = pair[0].copy()
    except BaseException:
        _give_back(free, pair)
        raise
    if len(pair[0]) <= 1:  # a pickler that wrote big frames keeps a big scratch buffer: drop it
        _give_back(free, pair)


class Encoder:
    """A reusable :func:`dumps` with its options fixed once, in the spirit of msgspec's ``Encoder``.

    ``Encoder(**options).encode(obj)`` is ``dumps(obj, **options)`` (every option but ``buffers``).
    With every option at its default it keeps its own pool of probe picklers (list.pop and
    list.append are atomic: a thread takes one nobody else holds, a nested ``encode`` builds its own),
    and the module-level :func:`dumps` uses such a default encoder.
    """

    __slots__ = ("_free", "_options", "encode")

    def __init__(
        self, *, backend: str | Backend = "auto", by_value: ModuleNames = (), by_reference: ModuleNames = (),
        key: bytes | None = None, key_id: str | None = None, portable: bool = False,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        if portable:
            backend = _portable_flag(backend)
            portable = False
        parse_backend(backend)  # a wrong name fails here, not at the first encode
        if key is not None:
            env.check_key(key)
        given = {"backend": backend, "by_value": tuple(by_value), "by_reference": tuple(by_reference), "key": key,
                 "key_id": key_id, "portable": portable, "context": context}
        defaults = {"backend": "auto", "by_value": (), "by_reference": (), "key": None, "key_id": None,
                    "portable": False, "context": None}
        self._options: dict[str, Any] = {name: value for name, value in given.items() if value != defaults[name]}
        self._free: list[_Probe] = []
        self.encode: Callable[[Any], bytes] = self._encode_with if self._options else self._encode_plain

    def __repr__(self) -> str:
        return f"anypickle.Encoder({', '.join(f'{k}={v!r}' for k, v in self._options.items())})"

    def _encode_with(self, obj: Any) -> bytes:
        return dumps(obj, **self._options)

    def _encode_plain(self, obj: Any) -> bytes:
        """``dumps(obj)`` with every option at its default: the per-call cost of small tasks, kept lean.

        The same steps as the general path (probe, then the fallbacks), minus the frame object and the
        option handling: a pooled ProbePickler, and a cached header for small pickle payloads.
        """
        free = self._free
        try:
            pair = free.pop()  # _take_probe(), inlined: this is the hot path
        except IndexError:
            pair = _take_probe(free)
        chunks = pair[0]
        try:
            pair[2](obj)
        except Exception as exc:  # NeedFound or a pickling error: the fallbacks decide, as in _dump_auto
            _give_back(free, pair)
            frame = _Frame(None, None)
            return frame.finish(_dump_auto(obj, frame, _DEFAULT_POLICY, probe_error=exc))
        if len(chunks) == 1:
            payload = chunks.pop()
            n = len(payload)
            # The memo holds a reference to every object pickled: empty it. clear_memo() walks the
            # memo table at the largest size it ever grew to (CPython never shrinks it), so after a
            # payload with many objects the table is replaced by a fresh one instead; otherwise one
            # 3000-string dumps would make every later small dumps 7x slower.
            if n <= 128:
                pair[3]()  # clear_memo(); a payload this small made at most 64 memo entries
            else:
                pair[1].memo = {}
            free.append(pair)
            return (_pickle_header(n) or env.pickle_header(n)) + payload
        # A big payload: a pickler that wrote big frames keeps a big scratch buffer, so it is dropped,
        # memo and all, when this returns. (Not clear_memo() first: that walks the memo once more,
        # 3-10% of the whole dumps of a dict of 10k strings.)
        frame = _Frame(None, None)
        frame.chunks = chunks
        return frame.finish(Backend.PICKLE)


_DEFAULT_ENCODER = Encoder()
_encode_default = _DEFAULT_ENCODER._encode_plain  # what dumps(obj) runs: one bound method, no lookups


def _dump_auto(
    obj: Any, frame: _Frame, policy: ModulePolicy, marker: Any = None, probe_error: Exception | None = None,
) -> Backend:
    """Try pickle (the probe), then marshal, cloudpickle and dill; return the backend that wrote ``frame``.

    Only a backend's documented refusal (see :func:`is_refusal`) moves on to the next backend. Any
    other exception propagates unchanged: one raised by the object's own ``__reduce__`` (as pickle,
    cloudpickle and dill let it through), or a bug in anypickle's own analysis, which must never
    silently change the backend.
    """
    attempts: list[tuple[str, BaseException]] = []
    try:
        if probe_error is not None:  # the caller already ran the probe
            raise probe_error
        _probe(obj, frame, policy, marker)
        return Backend.PICKLE
    except NeedFound as found:
        if found.need is Need.UNSHIPPABLE:
            raise _encode_error(obj, policy, [("analysis", found)]) from None
        attempts.append(("pickle", found))
    except Exception as exc:
        if not is_refusal(exc, get_backend(Backend.PICKLE).dump_errors):
            raise
        attempts.append(("pickle", exc))
    finally:
        probe_error = None
    candidates = [Backend.CLOUDPICKLE, Backend.DILL]
    if type(obj) is types.FunctionType and marker is None:
        candidates.insert(0, Backend.MARSHAL)
    for backend in candidates:
        impl = enhanced_backend(backend)
        try:
            sink = frame.start(_code_flags(backend))
            impl.dump(obj, sink, policy, persistent_id=marker, buffer_callback=frame.buffer_callback,
                      lines=frame.lines)
            # The failed attempts' tracebacks reference this frame, which references them: break
            # the cycle, or every fallback leaves garbage (and the object) for the collector.
            attempts.clear()
            return backend
        except NeedFound as found:  # a by-value pickler met something nothing can ship faithfully
            if found.need is Need.UNSHIPPABLE:
                attempts.append((backend.label, found))
                raise _encode_error(obj, policy, attempts, culprit=found.obj) from None
            raise
        except Exception as exc:
            if not is_refusal(exc, impl.dump_errors):
                attempts.clear()
                raise
            attempts.append((backend.label, exc))
    raise _encode_error(obj, policy, attempts) from attempts[-1][1]


# Where a refusal may come from: the serializers' own code (filled on first use: importing
# cloudpickle and dill costs milliseconds that plain-data dumps never pay).
_library_files: tuple[str, ...] = ()


def _libraries() -> tuple[str, ...]:
    global _library_files
    if not _library_files:
        import copyreg
        import importlib.util

        found = [os.path.normcase(m.__file__) for m in (pickle, copyreg) if m.__file__]
        for name in ("cloudpickle", "dill", "_compat_pickle"):
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.submodule_search_locations:
                found.extend(os.path.normcase(p) + os.sep for p in spec.submodule_search_locations)
            elif spec is not None and spec.origin:
                found.append(os.path.normcase(spec.origin))
        _library_files = tuple(found)
    return _library_files


_PACKAGE_DIR = os.path.normcase(os.path.dirname(os.path.abspath(__file__))) + os.sep
# anypickle functions that call a pickler's dump(): an exception whose innermost Python frame is one
# of them was raised by the C pickler itself (or by a C type's __reduce__), i.e. a refusal.
# (``save`` is the line-noting dill pickler's pass-through: every object goes through it.)
_ENTRY_POINTS = frozenset({"_probe", "_encode_plain", "_dump_auto", "_dump_forced", "dump", "dump_portable", "save"})


def is_refusal(exc: BaseException, documented: tuple[type[BaseException], ...]) -> bool:
    """True when ``exc`` is a serializer saying "I cannot ship this object", the only reason auto moves on.

    That is: an exception of the backend's documented types (``documented``) raised by the pickler
    itself or by a C type's reduction (``cannot pickle '_thread.lock' object``), by the serializer
    libraries' own Python code (pickle, copyreg, cloudpickle, dill), or a ``TypeError`` /
    ``PicklingError`` / ``RecursionError`` raised by the object's own code, the way objects refuse to
    be pickled. Anything else (a ``ValueError`` from the object's ``__reduce__``, any exception from
    anypickle's own analysis) is not a refusal and propagates to the caller unchanged.
    """
    if getattr(exc, "anypickle_refusal", False):  # the backends' own refusals (CannotMarshal)
        return True
    if not isinstance(exc, documented):
        return False
    if isinstance(exc, RecursionError):
        return True  # too deep for the pickler (or an object recursing in its own attribute lookup)
    tb = exc.__traceback__
    if tb is None:
        return True
    through_analysis = False  # did it pass through anypickle's own hooks (classifier, reducers)?
    while True:
        code = tb.tb_frame.f_code
        filename = os.path.normcase(os.path.abspath(code.co_filename))
        ours = filename.startswith(_PACKAGE_DIR)
        if ours and code.co_name not in _ENTRY_POINTS:
            through_analysis = True
        if tb.tb_next is None:
            break
        tb = tb.tb_next
    if ours:
        return not through_analysis  # raised in C right under our dump() call; else our own bug
    if filename.startswith(_libraries()):
        return True  # pickle, copyreg, cloudpickle or dill said no
    if through_analysis:
        return False  # raised by code anypickle's analysis called: a bug there, or the object's own error
    return isinstance(exc, (TypeError, pickle.PicklingError, RecursionError))


_NO_CULPRIT: Any = object()


def _encode_error(
    obj: Any, policy: ModulePolicy, attempts: Sequence[tuple[str, BaseException]], forced: Backend | None = None,
    culprit: Any = _NO_CULPRIT,
) -> EncodeError:
    """An EncodeError naming the culprit's path, its type, what each backend said, and what to do.

    Locating the culprit walks the object graph, which runs the objects' own code (``__dict__``,
    ``__getattribute__``...): if that fails, the error still comes out, without the path.
    """
    said = [
        (name, (f"by reference is not enough: {exc.reason}" if exc.need is not Need.UNSHIPPABLE else exc.reason)
         if isinstance(exc, NeedFound) else f"{type(exc).__name__}: {exc}".splitlines()[0])
        for name, exc in attempts
    ]
    try:
        located, hint = _locate_culprit(obj, policy, attempts, culprit)
    except Exception:  # noqa: BLE001 - a hostile object (or RecursionError) must not replace the EncodeError
        located, hint = None, None
    if forced is not None:
        message = f"backend {forced.label!r} cannot serialize this {type(obj).__qualname__} object"
        hint = hint or "use backend='auto', which picks a backend that can"
    else:
        message = f"no backend can serialize this {type(obj).__qualname__} object"
        hint = hint or "replace the object at that path with data that describes it, and rebuild it on the receiver"
    return EncodeError(
        message,
        path=located[0] if located else None,
        type_name=located[1] if located else None,
        attempts=said,
        hint=hint,
    )


def _locate_culprit(
    obj: Any, policy: ModulePolicy, attempts: Sequence[tuple[str, BaseException]], culprit: Any,
) -> tuple[tuple[str, str] | None, str | None]:
    """The culprit's (path, type name) and the advice for it, as far as the analysis can tell."""
    located = None
    hint = None
    if culprit is not _NO_CULPRIT:
        hit = locate(obj, lambda o: o is culprit, policy)
        located = (hit[0] if hit else "obj (inside)", type(culprit).__qualname__)
        hint = unshippable_advice(culprit)
        return located, hint
    unshippable = [f for f in find_needs(obj, policy) if f.need is Need.UNSHIPPABLE]
    if unshippable:
        located = (unshippable[0].path, unshippable[0].type_name)
    else:
        for _, exc in attempts:
            hit = locate_named_type(obj, str(exc), policy)
            if hit is not None:
                located = (hit[0], type(hit[1]).__qualname__)
                break
    if unshippable:
        hint = unshippable[0].advice
    elif located is not None:
        for t, advice in UNSHIPPABLE_TYPES.items():
            if t.__qualname__ == located[1] or t.__name__ == located[1]:
                hint = advice
    return located, hint


def loads(
    data: bytes | bytearray | memoryview,
    *,
    key: env.Key | None = None,
    safe: bool = False,
    allow: Iterable[str] = (),
    buffers: Iterable[Any] | None = None,
    context: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
) -> Any:
    """Load an object from an anypickle envelope, or from a plain pickle/cloudpickle/dill/joblib stream.

    Bytecode written by another interpreter is refused before anything is unpickled
    (:class:`InterpreterMismatchError`). With ``key`` (bytes, or a mapping of key id to bytes) the
    HMAC is checked first and unsigned or altered data raises :class:`SignatureError`. With
    ``safe=True`` only ordinary data loads: every global must be on an exact allowlist (extend it
    with ``allow=["module.qualname"]``) and payloads that carry code are refused.
    ``buffers`` are the out-of-band buffers of ``dumps(obj, buffers=True)``, in order; arrays are
    rebuilt on top of them without a copy, and are writable when the buffers are. ``context`` gives
    the objects a payload written with ``dumps(..., context=...)`` refers to by name.
    ``limits`` (:class:`anypickle.Limits`, with ``safe=True``) changes the resource limits of safe
    loading: nesting depth, copies, digits, array sizes (see docs/security.md).
    """
    if type(data) is bytes and key is None and buffers is None and context is None and not allow and limits is None:
        # Plain data, the common case: one C call checks the header (and, with safe, that the
        # payload can only build builtin containers and scalars) and loads; _MISS for all else.
        try:
            obj = _load_pickle_envelope(data, safe)
        except Exception as exc:
            _raise_pickle_error(exc)
        if obj is not _MISS:
            return obj
        if safe:
            # Not plain data, but maybe still an unsigned stdlib-pickle envelope: its payload goes
            # to safe loading as below, without parsing the header into a Header (what
            # _load_pickle_envelope_py does for every such envelope).
            payload = env.pickle_payload(data)
            if payload is not None:
                return _safe_loads(payload, ())
            if not data.startswith(env.MAGIC):  # no envelope: what _load_foreign does with safe=True
                _check_pickle_start(data)
                return _safe_loads(data, ())
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"loads() takes bytes, not {type(data).__qualname__}; use load() for files")
    if limits is not None:
        if not safe:
            raise UsageError("limits= applies to safe=True loading only (plain loading runs the pickle's code)")
        from .safe._limits import check_limits

        check_limits(limits)
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    if buffers is not None:
        buffers = list(buffers)
    if key is not None:
        header: env.Header | None = env.verify(key, view, buffers or ())
    elif env.is_envelope(view):
        header = env.parse(view)
    else:
        header = None
    if header is None:
        return _load_foreign(view, safe=safe, allow=allow, buffers=buffers, limits=limits)
    if header.flags & env.BUFFERS:
        if buffers is None:
            raise DecodeError("this payload was written with out-of-band buffers: pass them to loads(..., buffers=...)")
        if safe:
            raise UsageError("safe=True does not load payloads with out-of-band buffers")
    elif buffers:
        raise DecodeError(f"this payload has no out-of-band buffers, but {len(buffers)} were passed")
    payload = view[header.payload_offset:]
    if safe:
        if header.carries_code:
            raise UnsafePickleError(
                f"refused: this payload was written by {header.backend.label} with code inside by design; "
                "safe=True loads only data")
        return _safe_loads(payload, allow, limits)
    env.check_interpreter(header)
    if header.source is not None:
        _lines.register(header.source)
    try:
        given = None
        if header.flags & env.BUFFERS:  # the buffers must match the payload's size table
            given, payload = _frames.check_buffers(payload, buffers)  # type: ignore[arg-type]
        resolve = _context.resolver(context) if header.flags & env.CONTEXT else None
        return get_backend(header.backend).loads(payload, buffers=given, persistent_load=resolve)
    except AnyPickleError:
        raise
    except Exception as exc:
        raise _decode_error(exc, header.backend.label, skew(header)) from exc


def skew_of(data: bytes | bytearray | memoryview) -> str | None:
    """:func:`skew` of an envelope given as bytes; None for anything that is not a readable envelope."""
    view = memoryview(data)
    if len(view) < 8 or not view[6] & env.LIBRARY or not env.is_envelope(view):
        return None
    try:
        return skew(env.parse(view))
    except AnyPickleError:
        return None


def note_skew(exc: BaseException, *payloads: bytes | bytearray | memoryview) -> str | None:
    """When one of ``payloads`` was written by another cloudpickle/dill version, say so on ``exc``.

    Called where a loaded object is first used (executor workers, :class:`anypickle.Wrapped`), only
    after it raised: the note (Python 3.11+) names both versions. Returns the text, or None.
    """
    for payload in payloads:
        text = skew_of(payload)
        if text is not None and text not in str(exc):  # a DecodeError of loads already names it
            text = f"anypickle: version skew: this code was {text}; install the same version on both sides"
            if hasattr(exc, "add_note"):
                exc.add_note(text)
            return text
    return None


def skew(header: env.Header) -> str | None:
    """``"written by cloudpickle 3.1.2, loaded with cloudpickle 3.1.3"`` when the versions differ, else None.

    A payload records the version of the library that wrote it (cloudpickle, dill); another version
    on the receiver loads it as usual, and this text goes into the error when loading or the first
    use fails, so a skewed worker names the cause instead of failing cryptically.
    """
    theirs = header.library_version
    if theirs is None:
        return None
    ours = get_backend(header.backend).library_version
    if ours == theirs:
        return None
    label = header.backend.label
    return f"written by {label} {theirs}, loaded with {label} {ours}"


def _load_pickle_envelope_py(data: bytes, safe: bool) -> Any:
    """What ``_opwalk.load_pickle_envelope`` does, for installs without the C extension."""
    payload = env.pickle_payload(data)
    if payload is None:
        return _MISS
    if safe:
        return _safe_loads(payload, ())
    return pickle.loads(payload)


def _raise_pickle_error(exc: Exception) -> NoReturn:
    """Raise the anypickle error for an exception of ``pickle.loads`` on an envelope's payload."""
    if isinstance(exc, AnyPickleError):
        raise exc
    raise _decode_error(exc, Backend.PICKLE.label) from exc


try:
    from .safe._opwalk import MISS as _MISS
    from .safe._opwalk import FastLoads as _FastLoads
    from .safe._opwalk import load_pickle_envelope as _load_pickle_envelope
except ImportError:  # pragma: no cover - built optionally (setup.py); CI asserts it is built
    _MISS = object()
    _FastLoads = None
    _load_pickle_envelope = _load_pickle_envelope_py


def _safe_loads(payload: bytes | memoryview, allow: Iterable[str], limits: Limits | None = None) -> Any:
    global _safe_loads_impl
    if _safe_loads_impl is None:  # imported on first use: the scanner is not needed otherwise
        from .safe import safe_loads as _safe_loads_impl
    return _safe_loads_impl(payload, allow=allow, limits=limits)


_safe_loads_impl: Any = None


def _decode_error(exc: Exception, writer: str, skewed: str | None = None) -> DecodeError:
    error = _decode_error_for(exc, writer)
    if skewed is not None:
        error = DecodeError(f"{error} [version skew: {skewed}; install the same version on both sides]")
    return error


def _decode_error_for(exc: Exception, writer: str) -> DecodeError:
    if isinstance(exc, ModuleNotFoundError):
        return DecodeError(
            f"the {writer} payload refers to module {exc.name!r}, which is not importable here. If it is a "
            "local module of the sender, dump with anypickle's auto backend (local modules go by value) "
            f"or by_value=[{exc.name!r}]")
    if isinstance(exc, AttributeError) and "Can't get attribute" in str(exc):
        return DecodeError(
            f"the {writer} payload refers to a name this interpreter lacks ({exc}); it was written by "
            "reference where it needed to go by value: dump it with anypickle's auto backend")
    return DecodeError(f"cannot load this {writer} payload: {type(exc).__name__}: {exc}")


_PICKLE_FIRST_BYTES = frozenset(b"(]})cIJKLMFGNSTUVXBC\x80\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x93\x94\x95\x96dlto")


def _check_pickle_start(data: bytes | memoryview) -> None:
    """DecodeError unless ``data`` (no envelope) can start a pickle stream."""
    if len(data) == 0:
        raise DecodeError("empty input: not an anypickle envelope nor a pickle stream")
    first = data[0]
    if first not in _PICKLE_FIRST_BYTES or (first == 0x80 and (len(data) < 2 or data[1] > pickle.HIGHEST_PROTOCOL)):
        raise DecodeError(
            f"not an anypickle envelope nor a pickle stream (starts with byte {first:#04x})")


def _load_foreign(
    view: memoryview, *, safe: bool, allow: Iterable[str], buffers: list[Any] | None = None,
    limits: Limits | None = None,
) -> Any:
    """A plain pickle stream (pickle, cloudpickle, dill, joblib) with no envelope."""
    _check_pickle_start(view)
    if safe:
        return _safe_loads(view, allow, limits)
    try:
        raw = view.obj if isinstance(view.obj, bytes) else None
        haystack = raw if raw is not None else view.tobytes()
        if b"joblib.numpy_pickle" in haystack:
            import joblib  # only joblib can read the arrays it writes after the pickle stream

            return joblib.load(io.BytesIO(haystack))
        if buffers is not None:  # a protocol 5 stream written with a buffer_callback
            return pickle.loads(view, buffers=buffers)
        if b"dill._dill" in haystack:
            return get_backend(Backend.DILL).loads(view)
        return pickle.loads(view)
    except ImportError as exc:
        if exc.name == "joblib":
            raise DecodeError("this is a joblib file; install joblib to load it") from exc
        raise _decode_error(exc, "plain pickle") from exc
    except Exception as exc:
        raise _decode_error(exc, "plain pickle") from exc


def dump(obj: Any, file: IO[bytes] | PathLike, **options: Any) -> None:
    """Write :func:`dumps` of ``obj`` to a binary file object or a path (same keyword options)."""
    if options.get("buffers"):
        raise UsageError("dump() writes one stream; use dumps(obj, buffers=True) to keep buffers apart")
    data = dumps(obj, **options)
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as f:
            f.write(data)
    else:
        file.write(data)


def load(file: IO[bytes] | PathLike, **options: Any) -> Any:
    """Read and :func:`loads` an envelope from a binary file object or a path (same keyword options)."""
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            data = f.read()
    else:
        data = file.read()
        if isinstance(data, str):
            raise UsageError("load() needs a file opened in binary mode ('rb')")
    return loads(data, **options)


def _plain_decode() -> Callable[..., Any]:
    """:func:`loads` with its first step in C, when the extension is built.

    A call with one bytes argument (and at most ``safe=``) holding a plain-data envelope never enters
    the Python function, whose frame and argument checks cost 200 ns, a third of pickle.loads on a
    60-byte payload. Nor does an unsigned marshal or cloudpickle function payload written by this
    interpreter (without ``safe=True``): the C side checks its header, registers its source lines and
    calls the backend's own load (see :func:`_code_loader_for`). Everything else runs it (it is the
    result's ``__wrapped__``).
    """
    if _FastLoads is None:
        return loads
    code = (env._CURRENT_PACKED, _code_loader_for, _lines.register, _raise_code_error)
    return functools.update_wrapper(_FastLoads(loads, _raise_pickle_error, code), loads)


def _safe_decode() -> Callable[..., Any]:
    """``loads(data, safe=True)`` as :class:`Decoder` ``(safe=True).decode``: the same C first step
    as :func:`_plain_decode`, with ``safe=True`` bound in C. A ``functools.partial`` binding it would
    hand the keyword over as a dict, which CPython turns back into a call's keyword names on every
    call (about 150 ns, a quarter of pickle.loads on a 60-byte payload)."""
    slow = functools.partial(loads, safe=True)
    if _FastLoads is None:
        return slow
    code = (env._CURRENT_PACKED, _code_loader_for, _lines.register, _raise_code_error)
    return functools.update_wrapper(_FastLoads(slow, _raise_pickle_error, code, True), loads)


def _code_loader_for(backend_id: int) -> tuple[Callable[[Any], Any], Callable[[Any], Any] | None] | None:
    """How the C fast path loads a function payload of ``backend_id``: ``(first, then)``, the object
    being ``then(first(payload))`` (``then`` may be None), exactly what the backend's ``loads`` does
    without buffers or a context; None sends that backend's payloads to the Python :func:`loads`.

    The C side asks once per backend id, on its first payload, and has already checked the rest of
    what :func:`loads` checks for such a payload: an unsigned envelope whose CRC holds, written by
    this interpreter, without buffers or context, and not ``safe=True``.
    """
    if backend_id == Backend.MARSHAL:
        import marshal

        from .backends._marshal import decode_function

        return marshal.loads, decode_function
    if backend_id == Backend.CLOUDPICKLE:
        try:
            get_backend(Backend.CLOUDPICKLE)  # what the Python path imports first (cloudpickle itself)
        except ImportError:  # the Python loads raises the DecodeError that names the missing module
            return None
        return pickle.loads, None
    return None


def _raise_code_error(exc: Exception, data: bytes) -> NoReturn:
    """Raise the error :func:`loads` raises when a function payload's backend failed with ``exc``."""
    if isinstance(exc, AnyPickleError):
        raise exc
    header = env.parse(memoryview(data))
    raise _decode_error(exc, header.backend.label, skew(header)) from exc


class Decoder:
    """A reusable :func:`loads` with its options fixed once, in the spirit of msgspec's ``Decoder``.

    ``Decoder(**options).decode(data)`` is ``loads(data, **options)`` (every option but ``buffers``).
    Its ``decode`` is the C fast path (``_opwalk.FastLoads``) wrapped around the Python ``loads``;
    the module-level :func:`loads` is the default decoder's ``decode``.
    """

    __slots__ = ("_options", "decode")
    _plain: Callable[..., Any] | None = None  # the fast path, built once for every Decoder
    _safe: Callable[..., Any] | None = None  # the same with safe=True bound (Decoder(safe=True))

    def __init__(
        self, *, key: env.Key | None = None, safe: bool = False, allow: Iterable[str] = (),
        context: Mapping[str, Any] | None = None, limits: Limits | None = None,
    ) -> None:
        if limits is not None:
            if not safe:
                raise UsageError("limits= applies to safe=True loading only (plain loading runs the pickle's code)")
            from .safe._limits import check_limits

            check_limits(limits)
        given = {"key": key, "safe": safe, "allow": tuple(allow), "context": context, "limits": limits}
        defaults = {"key": None, "safe": False, "allow": (), "context": None, "limits": None}
        self._options: dict[str, Any] = {name: value for name, value in given.items() if value != defaults[name]}
        if Decoder._plain is None:
            Decoder._plain = _plain_decode()
        plain = Decoder._plain
        self.decode: Callable[[bytes | bytearray | memoryview], Any]
        if self._options == {"safe": True}:  # the common safe decoder: its option bound in C
            if Decoder._safe is None:
                Decoder._safe = _safe_decode()
            self.decode = Decoder._safe
        else:
            self.decode = functools.partial(plain, **self._options) if self._options else plain

    def __repr__(self) -> str:
        return f"anypickle.Decoder({', '.join(f'{k}={v!r}' for k, v in self._options.items())})"


_DEFAULT_DECODER = Decoder()
if not TYPE_CHECKING:
    loads = _DEFAULT_DECODER.decode
