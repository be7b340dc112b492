"""Read what a `pg_dump -Fc` archive (or a `-Fd` dump's toc.dat) says about its database.

A custom archive's table of contents (pg_dump 11 and later; `--create` only matters for
plain SQL output) holds the DATABASE entry (encoding, locale provider, collation, ctype,
ICU locale, owner), the DATABASE PROPERTIES entry (`ALTER DATABASE ... SET`, connection
limit, per-role settings), and the database's COMMENT and ACL. pg_restore only applies
them when it creates the database under its original name; restores here create staging
and scratch databases under other names, so the entries are read from the TOC and
applied to the new name by pg.create_database and pg.apply_properties.

The TOC sits at the head of the archive (format in PostgreSQL's pg_backup_archiver.c,
versions 1.12 to 1.16 read here), so it can be read from a file or from the first bytes
of a stream (PeekedFeed) before pg_restore starts. An archive without a DATABASE entry
(from an old pg_dump) gives no definition: the database is then created with the server
defaults, and the run says so.
"""

import os
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

MAGIC = b"PGDMP"
# The format byte: 1 custom; a directory dump's toc.dat says 3 (what pg_dump 11 to 17
# write there) or 5 (archDirectory) and names each entry's data file.
ARCHIVE_FORMATS = (1, 3, 5)


class NeedMore(Exception):
    """The bytes given end before the table of contents does."""


class ArchiveFormatError(Exception):
    """Not a custom-format archive, or a version this reader does not know."""


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    desc: str
    tag: str
    namespace: str
    owner: str
    defn: str
    deps: tuple[int, ...] = ()
    has_data: bool = False  # a data block follows in the archive (TABLE DATA, BLOBS, ...)
    data_file: str = ""  # directory format: the file in the dump directory holding the data


@dataclass(frozen=True)
class Toc:
    dbname: str
    version: tuple[int, int, int]
    entries: tuple[TocEntry, ...]
    data_start: int = 0  # where the data blocks begin (just after the TOC)
    int_size: int = 4
    compression: int = 0  # 0 none, 1 gzip, 2 lz4, 3 zstd (pg_dump 16's numbering)
    directory: bool = False  # toc.dat of a directory-format dump (data in files beside it)


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.int_size = 4
        self.off_size = 8

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise NeedMore
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        length = self.int()
        if length < 0:
            return None
        if length > 256 * 1024 * 1024:
            raise ArchiveFormatError("implausible string length in the archive's TOC")
        return self.take(length).decode("utf-8", "replace")


def read_toc(data: bytes) -> Toc:
    """Parse the header and TOC from the archive's first bytes; NeedMore if they are short."""
    r = _Reader(data)
    if r.take(5) != MAGIC:
        raise ArchiveFormatError("not a pg_dump custom-format archive")
    version = (r.byte(), r.byte(), r.byte())
    if version < (1, 12, 0) or version >= (1, 17, 0):
        raise ArchiveFormatError(f"archive format {'.'.join(map(str, version))} is not known here")
    r.int_size, r.off_size = r.byte(), r.byte()
    archive_format = r.byte()
    if archive_format not in ARCHIVE_FORMATS:
        raise ArchiveFormatError("not a custom-format archive nor a directory dump's toc.dat")
    directory = archive_format != 1
    if version >= (1, 15, 0):
        compression = r.byte()  # compression algorithm
    else:
        compression = 1 if r.int() != 0 else 0  # a zlib level
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        r.int()
    dbname = r.str() or ""
    r.str()  # server version
    r.str()  # pg_dump version
    count = r.int()
    entries = []
    for _ in range(count):
        dump_id = r.int()
        r.int()  # had dumper
        r.str()  # table oid
        r.str()  # oid
        tag = r.str() or ""
        desc = r.str() or ""
        r.int()  # section
        defn = r.str() or ""
        r.str()  # drop statement
        r.str()  # copy statement
        namespace = r.str() or ""
        r.str()  # tablespace
        r.str()  # table access method
        if version >= (1, 16, 0):
            r.int()  # relkind
        owner = r.str() or ""
        r.str()  # "with oids" (always false)
        deps = []
        while (dep := r.str()) is not None:
            deps.append(int(dep) if dep.isdigit() else 0)
        if directory:  # the data file's name, or none
            data_file = r.str() or ""
            has_data = bool(data_file)
        else:  # custom format: data state (3: no data) and offset
            data_file, has_data = "", r.byte() != 3
            r.take(r.off_size)
        entry = TocEntry(
            dump_id, desc, tag, namespace, owner, defn, tuple(deps), has_data, data_file
        )
        entries.append(entry)
    return Toc(dbname, version, tuple(entries), r.pos, r.int_size, compression, directory)


def read_toc_file(path: str) -> Toc:
    """The TOC of an archive file (or of a directory dump: its toc.dat), reading only as
    much of it as the TOC takes."""
    size = 1024 * 1024
    if os.path.isdir(path):
        path = os.path.join(path, "toc.dat")
    with open(path, "rb") as fh:
        data = fh.read(size)
        while True:
            try:
                return read_toc(data)
            except NeedMore:
                more = fh.read(len(data))
                if not more:
                    raise ArchiveFormatError("the archive ends inside its TOC") from None
                data += more


def toc_of_file(path: str) -> Toc | None:
    """The TOC, or None when the file is no archive this reader knows (pg_restore says why)."""
    try:
        return read_toc_file(path)
    except (ArchiveFormatError, OSError):
        return None


NO_DEFINITION = (
    "the backup's database definition could not be read (no DATABASE entry, or an archive "
    "format this portal does not know): the database was created with the server's default "
    "encoding and locale, without the source's owner, privileges, settings or comment"
)


class PeekedFeed:
    """Wrap a feed(stdin) writer: read the TOC from its first bytes, then replay everything.

    The original feed runs in a thread writing into a pipe. peek_toc() reads until the TOC
    is complete (the scratch database can then be created with the archive's locale);
    calling the object feeds pg_restore what was read plus the rest. An exception in the
    original feed (a bad artifact) is raised from the call, as a plain feed would.
    """

    def __init__(self, feed: Callable[[BinaryIO], None]):
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb")
        self._writer = os.fdopen(write_fd, "wb")
        self._head = b""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(feed,), daemon=True)
        self._thread.start()

    def _run(self, feed):
        try:
            feed(self._writer)
        except BaseException as exc:  # raised again in __call__
            self._error = exc
        finally:
            try:
                self._writer.close()
            except OSError:
                pass

    def peek_toc(self) -> Toc | None:
        """The TOC, or None when the stream is not a readable archive (pg_restore says why)."""
        data = bytearray()
        while True:
            # reads grow with what is buffered, so a large TOC is not parsed again per 256 KiB
            chunk = self._reader.read(max(256 * 1024, len(data)))
            if chunk:
                data += chunk
            try:
                toc = read_toc(bytes(data))
                break
            except NeedMore:
                if not chunk:
                    toc = None
                    break
            except ArchiveFormatError:
                toc = None
                break
        self._head = bytes(data)
        return toc

    def __call__(self, stdin: BinaryIO):
        try:
            stdin.write(self._head)
            self._head = b""
            shutil.copyfileobj(self._reader, stdin, 1024 * 1024)
        finally:
            self.close()
        if self._error is not None:
            raise self._error

    def close(self):
        """Stop reading: a feed still writing gets a broken pipe and ends."""
        self._reader.close()
        self._thread.join(timeout=60)


# --- the database's own definition ---------------------------------------------------

# CREATE DATABASE options worth carrying over; TEMPLATE is always template0 (a copy of
# template0 is what takes another encoding or locale), OID and TABLESPACE stay the target's.
LOCALE_OPTIONS = (
    "ENCODING",
    "LOCALE_PROVIDER",
    "LOCALE",
    "LC_COLLATE",
    "LC_CTYPE",
    "ICU_LOCALE",
    "ICU_RULES",
    "BUILTIN_LOCALE",
)
_OPTION = re.compile(r"\b([A-Z_]+)\s*=\s*('(?:[^']|'')*'|[A-Za-z0-9_.-]+)")


@dataclass
class Statement:
    """One SQL statement of the database's properties, already naming the target database."""

    kind: str  # "owner", "settings", "role settings", "template", "comment", "acl"
    sql: str
    needs_roles: bool


@dataclass
class DatabaseDefinition:
    """What the archive says the database was: CREATE options, owner, properties."""

    name: str
    owner: str
    options: dict[str, str] = field(default_factory=dict)
    properties: list[Statement] = field(default_factory=list)
    tablespace: str = ""

    def describe(self) -> str:
        o = self.options
        locale = o.get("ICU_LOCALE") or o.get("BUILTIN_LOCALE") or o.get("LOCALE") or ""
        parts = [f"encoding {o.get('ENCODING', '?')}"]
        if o.get("LOCALE_PROVIDER"):
            parts.append(f"locale provider {o['LOCALE_PROVIDER']} {locale}".strip())
        if o.get("LC_COLLATE") or o.get("LOCALE"):
            parts.append(f"collate {o.get('LC_COLLATE') or o.get('LOCALE')}")
        parts.append(f"owner {self.owner or '?'}")
        return ", ".join(parts)

    def for_target(self, new_name: str) -> list[Statement]:
        """The property statements rewritten to name `new_name` instead of the source."""
        return [
            Statement(s.kind, rename_database_in(s.sql, self.name, new_name), s.needs_roles)
            for s in self.properties
        ]


def _unquote(value: str) -> str:
    if value.startswith("'") and value.endswith("'"):
        return value[1:-1].replace("''", "'")
    return value


def _create_options(result: DatabaseDefinition, create_sql: str) -> None:
    """Locale options and tablespace from the CREATE DATABASE statement's WITH clause."""
    masked = _mask_literals(create_sql)
    with_at = masked.find(" WITH ")
    tail_start = with_at if with_at >= 0 else 0
    for match in _OPTION.finditer(masked, tail_start):
        key = match.group(1)
        value = _unquote(create_sql[match.start(2) : match.end(2)])
        if key in LOCALE_OPTIONS:
            result.options[key] = value
        elif key == "TABLESPACE":
            result.tablespace = value


def _property(desc: str, stmt: str) -> Statement | None:
    """One statement of an entry about the database, or None when it is not ours to apply."""
    if desc == "COMMENT":
        return Statement("comment", stmt, False)
    if desc == "ACL":
        return Statement("acl", stmt, True)
    if desc == "DATABASE PROPERTIES":
        head = stmt.lstrip().upper()
        if head.startswith("ALTER ROLE"):
            return Statement("role settings", stmt, True)
        if head.startswith("ALTER DATABASE") and "IS_TEMPLATE" in head:
            return Statement("template", stmt, False)
        if head.startswith("ALTER DATABASE"):
            return Statement("settings", stmt, False)
    return None  # anything else (binary-upgrade catalog updates) is not ours to apply


def _about_database(entry, name: str) -> bool:
    return entry.tag in (f"DATABASE {name}", f"DATABASE {quote_ident(name)}") or (
        entry.desc == "DATABASE PROPERTIES" and entry.tag == name
    )


def definition(toc: Toc) -> DatabaseDefinition | None:
    """The database's definition, or None for an archive without a DATABASE entry."""
    db = next((e for e in toc.entries if e.desc == "DATABASE"), None)
    if db is None:
        return None
    result = DatabaseDefinition(name=db.tag, owner=db.owner)
    create = split_statements(db.defn)
    if create:
        _create_options(result, create[0])
    for entry in toc.entries:
        if not _about_database(entry, db.tag):
            continue
        for stmt in split_statements(entry.defn):
            prop = _property(entry.desc, stmt)
            if prop is not None:
                result.properties.append(prop)
    if db.owner:
        owner_sql = f"ALTER DATABASE {quote_ident(db.tag)} OWNER TO {quote_ident(db.owner)}"
        result.properties.insert(0, Statement("owner", owner_sql, True))
    return result


# --- roles the archive names ------------------------------------------------------------

_GRANTEE = re.compile(
    r"\b(?:TO|FROM)\s+((?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*)"
    r"(?:\s*,\s*(?:\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*))*)",
)
_ROLE_IN_DB = re.compile(r"^\s*ALTER ROLE\s+(\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*)\s+IN")
_NOT_ROLES = {"public", "current_user", "session_user", "current_role"}


def _ident_value(text: str) -> str:
    text = text.strip()
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def referenced_roles(toc: Toc) -> set[str]:
    """Owners and grantees the archive names (what a restore keeping owners needs)."""
    roles = {e.owner for e in toc.entries if e.owner}
    for entry in toc.entries:
        if entry.desc not in ("ACL", "DEFAULT ACL", "DATABASE PROPERTIES"):
            continue
        for stmt in split_statements(entry.defn):
            masked = _mask_literals(stmt)
            head = masked.lstrip().upper()
            if head.startswith(("GRANT", "REVOKE")) or " DEFAULT PRIVILEGES " in head:
                for match in _GRANTEE.finditer(masked):
                    for name in re.split(r"\s*,\s*", stmt[match.start(1) : match.end(1)]):
                        roles.add(_ident_value(name))
                # ALTER DEFAULT PRIVILEGES FOR ROLE x ...
                for_role = re.search(r"FOR ROLE\s+(\"(?:[^\"]|\"\")+\"|\w+)", masked)
                if for_role:
                    roles.add(_ident_value(stmt[for_role.start(1) : for_role.end(1)]))
            match = _ROLE_IN_DB.match(masked)
            if match:
                roles.add(_ident_value(stmt[match.start(1) : match.end(1)]))
    return {r for r in roles if r and r.lower() not in _NOT_ROLES}


# --- SQL text helpers -------------------------------------------------------------------


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _mask_literals(text: str) -> str:
    """The same text with the inside of '...' literals blanked (same length, spans map)."""
    out, i, n = list(text), 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = text.find('"', i + 1)
            while j != -1 and j + 1 < n and text[j + 1] == '"':
                j = text.find('"', j + 2)
            i = n if j == -1 else j + 1
        elif ch == "'":
            j = i + 1
            while j < n:
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        out[j] = out[j + 1] = "_"
                        j += 2
                        continue
                    break
                out[j] = "_"
                j += 1
            i = j + 1
        else:
            i += 1
    return "".join(out)


def split_statements(text: str) -> list[str]:
    """pg_dump's statements in a TOC entry's definition, split on ; outside quotes."""
    masked = _mask_literals(text)  # no ; or " left inside '...'
    statements, start, in_ident = [], 0, False
    for i, ch in enumerate(masked):
        if ch == '"':
            in_ident = not in_ident  # a doubled "" toggles twice
        elif ch == ";" and not in_ident:
            statements.append(text[start:i])
            start = i + 1
    statements.append(text[start:])
    cleaned = (_drop_leading_comments(s) for s in statements)
    return [s for s in cleaned if s]


def _drop_leading_comments(stmt: str) -> str:
    lines = stmt.strip().splitlines()
    while lines and lines[0].lstrip().startswith("--"):
        lines.pop(0)
    return "\n".join(lines).strip()


def rename_database_in(stmt: str, old: str, new: str) -> str:
    """Replace `DATABASE <old>` (bare or quoted) by `DATABASE "<new>"` outside literals."""
    forms = [re.escape(quote_ident(old))]
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", old):
        forms.append(re.escape(old) + r"(?![A-Za-z0-9_$])")
    pattern = re.compile(r"\bDATABASE\s+(" + "|".join(forms) + ")")
    masked = _mask_literals(stmt)
    pieces, last = [], 0
    for match in pattern.finditer(masked):
        pieces.append(stmt[last : match.start(1)])
        pieces.append(quote_ident(new))
        last = match.end(1)
    pieces.append(stmt[last:])
    return "".join(pieces)
