"""What a backup holds, read from the verified artifact without restoring it.

PostgreSQL: the custom archive's table of contents (what `pg_restore -l` prints) gives the
schemas, tables, sequences, views, functions and large objects; the data blocks after it
give each table's bytes in the dump and, for an uncompressed or gzip archive (backups here
are `pg_dump -Z0`), its exact row count (COPY text: one line per row). Files: the tar's
index. SQLite: the tables of the backed-up file and their row counts.

The result is plain JSON: {"kind", "items": [{"type", "name", ...}], "summary"}.
"""

import os
import sqlite3
import zlib
from collections import Counter
from datetime import UTC, datetime

from recovery.engine import pgarchive
from recovery.engine.files import tar_listing
from recovery.engine.pg import RestoreError
from recovery.engine.pg_tables import toc_rows

# TOC entry desc → the item type shown (anything else is counted under "other")
PG_TYPES = {
    "SCHEMA": "schema",
    "TABLE": "table",
    "SEQUENCE": "sequence",
    "VIEW": "view",
    "MATERIALIZED VIEW": "materialized view",
    "FUNCTION": "function",
    "PROCEDURE": "procedure",
    "AGGREGATE": "function",
    "TYPE": "type",
    "DOMAIN": "type",
    "EXTENSION": "extension",
    "INDEX": "index",
    "CONSTRAINT": "constraint",
    "FK CONSTRAINT": "foreign key",
    "TRIGGER": "trigger",
    "BLOBS": "large objects",
    "BLOB": "large object",
}
BLK_DATA, BLK_BLOBS = 1, 3
COPY_END = b"\\.\n\n\n"  # pg_dump ends each table's COPY data with this, not a row


class _Blocks:
    """Walk the custom archive's data blocks: (dump id, bytes, rows or None) per block."""

    def __init__(self, fh, toc: pgarchive.Toc):
        self.fh = fh
        self.int_size = toc.int_size
        self.count_rows = toc.compression in (0, 1)
        self.gzip = toc.compression == 1

    def _int(self) -> int | None:
        raw = self.fh.read(1 + self.int_size)
        if len(raw) < 1 + self.int_size:
            return None
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def _chunks(self) -> tuple[int, int | None]:
        """Read chunks up to the zero length: (bytes, newlines or None)."""
        size, lines, tail = 0, 0, b""
        inflate = zlib.decompressobj() if self.gzip else None
        while (length := self._int()) not in (None, 0):
            size += length
            if not self.count_rows:
                self.fh.seek(length, 1)
                continue
            data = self.fh.read(length)
            if inflate is not None:
                try:
                    data = inflate.decompress(data)
                except zlib.error:
                    self.count_rows = False
                    continue
            lines += data.count(b"\n")
            tail = (tail + data)[-len(COPY_END) :]
        if tail == COPY_END:
            lines -= COPY_END.count(b"\n")
        return size, (lines if self.count_rows else None)

    def __iter__(self):
        while kind := self.fh.read(1):
            dump_id = self._int()
            if dump_id is None:
                return
            if kind[0] == BLK_DATA:
                yield (dump_id, *self._chunks())
            elif kind[0] == BLK_BLOBS:
                size, objects = 0, 0
                while self._int() not in (None, 0):  # each object: its oid, then its chunks
                    objects += 1
                    size += self._chunks()[0]
                yield dump_id, size, objects
            else:
                return  # not a block this reader knows: sizes stop here


def _data_sizes(path: str, toc: pgarchive.Toc) -> dict[int, tuple[int, int | None]]:
    if toc.directory:
        return _directory_sizes(path, toc)
    with open(path, "rb") as fh:
        fh.seek(toc.data_start)
        return {dump_id: (size, rows) for dump_id, size, rows in _Blocks(fh, toc)}


def _copy_file_rows(path: str) -> tuple[int, int]:
    """(bytes, rows) of one uncompressed COPY data file of a directory dump."""
    size, lines, tail = 0, 0, b""
    with open(path, "rb") as fh:
        while data := fh.read(1024 * 1024):
            size += len(data)
            lines += data.count(b"\n")
            tail = (tail + data)[-len(COPY_END) :]
    if tail == COPY_END:
        lines -= COPY_END.count(b"\n")
    return size, lines


def _directory_sizes(path: str, toc: pgarchive.Toc) -> dict[int, tuple[int, int | None]]:
    """Sizes and rows from a directory dump's data files (-Z0: plain COPY text); a large
    objects entry's file lists one `oid blob_<oid>.dat` line per object."""
    sizes = {}
    for entry in toc.entries:
        if not entry.data_file or "/" in entry.data_file:
            continue
        file = os.path.join(path, entry.data_file)
        if not os.path.isfile(file):
            continue
        if entry.desc == "BLOBS":
            with open(file) as fh:
                names = [line.split()[1] for line in fh if len(line.split()) == 2]
            blobs = [os.path.join(path, n) for n in names if "/" not in n]
            sizes[entry.dump_id] = (sum(os.path.getsize(b) for b in blobs), len(names))
        elif entry.data_file.endswith(".dat"):
            sizes[entry.dump_id] = _copy_file_rows(file)
        else:  # a compressed dump (not made here): the size only
            sizes[entry.dump_id] = (os.path.getsize(file), None)
    return sizes


def table_rows(path: str, toc: pgarchive.Toc) -> dict[int, int | None]:
    """TABLE dump id → rows in the dump (None where they cannot be counted)."""
    sizes = _data_sizes(path, toc)
    return {
        owner: (sizes.get(data) or (None, None))[1]
        for data, owner in _owner_of(toc.entries).items()
    }


def _owner_of(entries) -> dict[int, int]:
    """TABLE DATA dump id → its TABLE's dump id (the data entry depends on the table)."""
    by_id = {e.dump_id: e for e in entries}
    out = {}
    for e in entries:
        if e.desc in ("TABLE DATA", "BLOBS"):
            table = next((d for d in e.deps if d in by_id and by_id[d].desc == "TABLE"), None)
            out[e.dump_id] = table if table is not None else e.dump_id
    return out


def pg_contents(path: str) -> dict:
    """The contents of a `pg_dump -Fc` archive file or of a `-Fd` dump directory."""
    try:
        toc = pgarchive.read_toc_file(path)
    except (pgarchive.ArchiveFormatError, OSError) as exc:
        raise RestoreError(f"the archive's table of contents cannot be read: {exc}") from None
    sizes = _data_sizes(path, toc)
    data_of = {owner: sizes.get(data) for data, owner in _owner_of(toc.entries).items()}
    items, other = [], Counter()
    for e in toc.entries:
        kind = PG_TYPES.get(e.desc)
        if kind is None:
            if e.desc not in ("TABLE DATA", "DATABASE", "ENCODING", "STDSTRINGS", "SEARCHPATH"):
                other[e.desc.lower()] += 1
            continue
        item = {"type": kind, "schema": e.namespace, "name": e.tag, "owner": e.owner}
        if kind in ("table", "large objects", "materialized view") and e.dump_id in data_of:
            size, rows = data_of[e.dump_id] or (None, None)
            item["bytes"] = size
            item["rows" if kind != "large objects" else "objects"] = rows
        items.append(item)
    summary = dict(Counter(i["type"] for i in items))
    summary["bytes"] = sum(i.get("bytes") or 0 for i in items)
    return {
        "kind": "postgresql",
        "database": toc.dbname,
        "archive_format": ".".join(map(str, toc.version)),
        **({"dump_format": "directory"} if toc.directory else {}),
        "items": items,
        "other": dict(other),
        "summary": summary,
        # kept so a partial restore is planned without the artifact (not shown, not exported)
        "toc": toc_rows(toc),
    }


def tar_contents(path: str) -> dict:
    """The tar's index: every member with its type, size, mode and mtime."""
    items = [
        {
            "type": entry.kind,
            "name": name,
            "bytes": entry.size,
            "mode": f"{entry.mode:04o}",
            "mtime": datetime.fromtimestamp(entry.mtime, UTC).isoformat(timespec="seconds"),
            "owner": entry.uname or str(entry.uid),
            **({"link": entry.linkname} if entry.linkname else {}),
        }
        for name, entry in sorted(tar_listing(path).items())
    ]
    summary = dict(Counter(i["type"] for i in items))
    summary["bytes"] = sum(i["bytes"] for i in items)
    return {"kind": "files", "items": items, "summary": summary}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sqlite_contents(path: str) -> dict:
    """Tables (with row counts), views and indexes of a SQLite file, opened read-only."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            rows = conn.execute(
                "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' "
                "ORDER BY type, name"
            ).fetchall()
            items = []
            for kind, name in rows:
                item = {"type": kind, "name": name}
                if kind == "table":
                    item["rows"] = conn.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[
                        0
                    ]
                items.append(item)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise RestoreError(f"the SQLite backup cannot be read: {exc}") from None
    summary = dict(Counter(i["type"] for i in items))
    return {"kind": "sqlite", "items": items, "summary": summary}


def contents_of(kind: str, path: str) -> dict:
    if kind == "postgresql":
        return pg_contents(path)
    if kind == "sqlite":
        return sqlite_contents(path)
    return tar_contents(path)
