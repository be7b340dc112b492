"""Unpack a parallel dump's tar into a dump directory as the verified bytes arrive.

A parallel backup stores `pg_dump -Fd` output as one USTAR tar (backups/engine/
pg_parallel.py). Restores need the directory itself (pg_restore -j reads its files at
random), so the tar is written out while it is read, without a second full copy on disk.

Only what pg_dump writes is accepted: regular files with its own flat names (toc.dat,
1234.dat, blob_5678.dat, blobs.toc), each created new, 0600 and never through a link.
Anything else (a path, a link, a device, an unknown name) stops the unpack: the artifact
was authenticated, but a restore never writes where the backup says.
"""

import os
import re
from pathlib import Path

from recovery.engine.pg import RestoreError
from recovery.engine.staging import create_private

BLOCK = 512
NAME = re.compile(r"^(toc\.dat|blobs(_\d+)?\.toc|(blob_)?\d+\.dat)$")
REGULAR = (b"0", b"\0")


def _octal(field: bytes) -> int:
    text = field.rstrip(b"\0 ").strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise RestoreError("the dump's tar has a damaged header") from None


def _parse_header(block: bytes) -> tuple[str, int]:
    """(name, size) of a USTAR header; RestoreError for anything not a plain dump file."""
    stored = _octal(block[148:156])
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    if stored != unsigned:
        raise RestoreError("the dump's tar has a header with a bad checksum")
    name = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    prefix = block[345:500].split(b"\0", 1)[0]
    if block[156:157] not in REGULAR or prefix or not NAME.match(name):
        raise RestoreError(f"the dump's tar holds {name!r}, which is not a pg_dump file")
    return name, _octal(block[124:136])


class DumpDirWriter:
    """A file-like sink (write, close) that unpacks the tar into `directory` (existing,
    private). close() raises RestoreError unless the tar ended properly with a toc.dat."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self._buf = bytearray()
        self._file = None  # the member being written
        self._left = 0  # its bytes still to come
        self._pad = 0  # padding after it
        self._ended = False
        self.names: list[str] = []

    def write(self, data: bytes) -> int:
        self._buf += data
        self._drain()
        return len(data)

    def _drain(self) -> None:
        buf, pos = self._buf, 0
        while pos < len(buf):
            if self._file is not None:
                take = min(self._left, len(buf) - pos)
                self._file.write(memoryview(buf)[pos : pos + take])
                pos += take
                self._left -= take
                if self._left:
                    break
                self._file.close()
                self._file = None
            elif self._pad:
                take = min(self._pad, len(buf) - pos)
                pos += take
                self._pad -= take
            elif len(buf) - pos < BLOCK:
                break
            else:
                block = bytes(buf[pos : pos + BLOCK])
                pos += BLOCK
                if self._ended or not any(block):
                    self._ended = True  # end of archive: zero blocks (and record padding)
                    continue
                self._open(*_parse_header(block))
        del buf[:pos]

    def _open(self, name: str, size: int) -> None:
        if name in self.names:
            raise RestoreError(f"the dump's tar holds {name} twice")
        self.names.append(name)
        self._file = os.fdopen(create_private(self.directory / name), "wb")
        self._left, self._pad = size, -size % BLOCK
        if not size:
            self._file.close()
            self._file = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            raise RestoreError("the dump's tar ends inside a file")
        if not self._ended or any(self._buf):
            raise RestoreError("the dump's tar ends without its end marker")
        if "toc.dat" not in self.names:
            raise RestoreError("the dump's tar holds no toc.dat")
