"""dill: pure-Python pickler that ships the most, and the slowest on plain data (measured: README, Performance)."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

import dill

from . import PicklerBackend
from ._id import Backend
from ..analysis._modules import ModulePolicy
from ..analysis._needs import FILE_TYPES, UNSHIPPABLE_TYPES, gap_reduce, has_gap, refuse_unshippable

if TYPE_CHECKING:
    from ._lines import LineCollector
    from . import Writer

PROTOCOL = 5


class _AutoDillPickler(dill.Pickler):
    """dill for auto: refuses what nothing can ship faithfully, and ships what dill gets wrong.

    dill reopens a file open for writing in its mode on the receiver (``"w"`` truncates it), ships a
    dict view as a view of a detached copy, and a descriptor of ``type`` as its value.
    """

    def reducer_override(self, obj: Any) -> Any:
        t = type(obj)
        if t in FILE_TYPES or t in UNSHIPPABLE_TYPES:
            refuse_unshippable(obj)
        elif has_gap(t):
            return gap_reduce(obj, self)
        return NotImplemented


class _NotingPickler(dill.Pickler):
    """dill's pickler, telling a :class:`LineCollector` each code object it writes (the stream is unchanged)."""

    lines: LineCollector

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if type(obj) is types.CodeType:
            self.lines.add(obj)
        super().save(obj, save_persistent_id)


class _AutoNotingPickler(_NotingPickler, _AutoDillPickler):
    """Both: auto's dill, telling a :class:`LineCollector` each code object it writes."""


class DillBackend(PicklerBackend):
    """dill with its defaults: what ``backend="dill"`` forces."""

    id = Backend.DILL
    name = "dill"
    library_version: str | None = dill.__version__
    unpickler = dill.Unpickler
    _recurse = False
    _plain: type = dill.Pickler
    _noting: type = _NotingPickler

    def make_pickler(
        self, file: Writer, policy: ModulePolicy, *, buffer_callback: Any, lines: LineCollector | None,
    ) -> Any:
        if lines is None:
            return self._plain(file, protocol=PROTOCOL, recurse=self._recurse, buffer_callback=buffer_callback)
        pickler = self._noting(file, protocol=PROTOCOL, recurse=self._recurse, buffer_callback=buffer_callback)
        pickler.lines = lines
        return pickler


class AnyDillBackend(DillBackend):
    """dill as auto falls back to it: ``recurse=True`` and anypickle's refusals (:class:`_AutoDillPickler`).

    ``recurse=True`` makes dill ship the ``__main__`` globals a function uses (by default it expects
    the receiver's ``__main__`` to hold them, which a fresh process does not).
    """

    name = "dill+anypickle"
    _recurse = True
    _plain = _AutoDillPickler
    _noting = _AutoNotingPickler
