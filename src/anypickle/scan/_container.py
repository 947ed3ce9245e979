"""Zip containers: PyTorch ``.pt`` files are zips holding ``archive/data.pkl`` next to raw storages."""

from __future__ import annotations

import io
import zipfile
from typing import Iterator

__all__ = ["is_zip", "iter_pickle_members", "looks_like_pickle"]

# A member larger than this is not read: a zip bomb should not exhaust memory during a *scan*.
MAX_MEMBER_BYTES = 1 << 31


def is_zip(data: bytes) -> bool:
    """True for a zip local-file header or an empty archive's end-of-directory record."""
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def looks_like_pickle(content: bytes) -> bool:
    """A protocol 2-5 pickle starts with PROTO and ends with STOP; raw tensor storages rarely do."""
    return len(content) >= 3 and content[0] == 0x80 and content[1] <= 5 and content[-1:] == b"."


def iter_pickle_members(data: bytes) -> Iterator[tuple[str, bytes, str | None]]:
    """Yield ``(member name, content, problem)`` for each ``*.pkl`` member or member that looks
    like a pickle; ``problem`` is set (and content empty) when the archive or member is unreadable."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        yield "<archive>", b"", f"unreadable zip archive: {exc}"
        return
    with archive:
        for info in infos:
            if info.is_dir():
                continue
            named = info.filename.endswith((".pkl", ".pickle"))
            if info.file_size > MAX_MEMBER_BYTES:
                if named:
                    yield info.filename, b"", f"member too large to scan ({info.file_size} bytes)"
                continue
            try:
                content = archive.read(info)
            except (zipfile.BadZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
                yield info.filename, b"", f"unreadable zip member: {exc}"
                continue
            if named or looks_like_pickle(content):
                yield info.filename, content, None
