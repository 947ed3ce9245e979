"""Zip containers: PyTorch ``.pt`` files are zips holding ``archive/data.pkl`` next to raw storages.

Members are read as streams, in bounded chunks: only a member's first bytes decide whether it is a
pickle, so a 1.9 MB archive of deflated gigabytes costs a few reads, not gigabytes of memory. Every
member that cannot be read (encrypted, corrupt, an unsupported compression) and every archive inside
the archive (which the scanner does not open) is a finding, never an exception.
"""

from __future__ import annotations

import io
import zipfile
from typing import Iterator

__all__ = ["is_zip", "iter_pickle_members", "looks_like_pickle"]

# A pickle member larger than this is not scanned (a finding says so): scanning keeps it in memory.
MAX_MEMBER_BYTES = 1 << 28
_CHUNK = 1 << 16
_HEAD = 8  # bytes read to decide whether a member is a pickle or an archive


def is_zip(data: bytes) -> bool:
    """True for a zip local-file header or an empty archive's end-of-directory record."""
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def looks_like_pickle(content: bytes) -> bool:
    """A protocol 2-5 pickle starts with PROTO and ends with STOP; raw tensor storages rarely do."""
    return len(content) >= 3 and content[0] == 0x80 and content[1] <= 5 and content[-1:] == b"."


def _starts_like_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5


def iter_pickle_members(data: bytes) -> Iterator[tuple[str, bytes, str | None, bool]]:
    """Yield ``(member name, content, problem, unsafe)`` for each ``*.pkl`` member or member that looks
    like a pickle; ``problem`` is set (and content empty) when the archive or a member cannot be
    scanned, ``unsafe`` tells whether that problem makes the file unsafe."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception as exc:  # noqa: BLE001 - zipfile raises many types on corrupt archives
        yield "<archive>", b"", f"unreadable zip archive: {type(exc).__name__}: {exc}", True
        return
    with archive:
        for info in infos:
            if info.is_dir():
                continue
            named = info.filename.endswith((".pkl", ".pickle"))
            try:
                with archive.open(info) as member:
                    head = member.read(_HEAD)
                    if is_zip(head):
                        yield info.filename, b"", "nested zip archive: not scanned (its members could hold anything)", True
                        continue
                    if not (named or _starts_like_pickle(head)):
                        continue
                    chunks = [head]
                    size = len(head)
                    while True:
                        chunk = member.read(_CHUNK)
                        if not chunk:
                            break
                        size += len(chunk)
                        if size > MAX_MEMBER_BYTES:
                            break
                        chunks.append(chunk)
            except Exception as exc:  # noqa: BLE001 - encrypted (RuntimeError), zlib.error, LZMAError...
                yield info.filename, b"", f"unreadable zip member: {type(exc).__name__}: {exc}", True
                continue
            if size > MAX_MEMBER_BYTES:
                yield (info.filename, b"", f"member larger than {MAX_MEMBER_BYTES} bytes: not scanned",
                       named)
                continue
            content = b"".join(chunks)
            if named or looks_like_pickle(content):
                yield info.filename, content, None, False
