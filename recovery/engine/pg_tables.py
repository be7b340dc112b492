"""Restoring chosen tables of a `pg_dump -Fc` archive into an existing database (no Django).

A DBA restoring one dropped table wants it back beside the live one, under a new name,
with what makes it usable: its data, the sequences it owns (at their dumped values),
its defaults, indexes, constraints, triggers, comments and grants. Foreign keys to
tables left out cannot be created: they are reported and skipped.

How: the chosen entries (and what they need to exist: schemas, types, functions) are
restored with `pg_restore -L` into a private scratch database on the target's server;
there the tables are renamed (a suffix) or moved (a schema), carrying their indexes and
owned sequences; `pg_dump` of exactly those tables is then restored into the target in
ONE transaction: every table arrives, or none does. Nothing existing is replaced: a name
already taken in the target refuses the restore before anything is written.
"""

import os
from dataclasses import dataclass, field

from psycopg import sql

from recovery.engine import pg, pgarchive, procs
from recovery.engine.pg import PgServer, RestoreError

# entries that belong to a table and come with it when all they name is restored
FOLLOWERS = {
    "TABLE DATA",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "DEFAULT",
    "INDEX",
    "INDEX ATTACH",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "TRIGGER",
    "COMMENT",
    "ACL",
    "POLICY",
    "ROW SECURITY",
    "RULE",
    "STATISTICS",
}
# what the scratch database needs for the tables to be created (not carried to the target)
PREREQUISITES = {"SCHEMA", "TYPE", "DOMAIN", "EXTENSION", "FUNCTION", "COLLATION", "SHELL TYPE"}
RELATIONS = {"TABLE", "SEQUENCE", "INDEX", "CONSTRAINT", "FK CONSTRAINT", "VIEW"}
MAX_NAME = 63


@dataclass
class Selection:
    tables: list[pgarchive.TocEntry]
    ids: list[int]  # the scratch restore's list, in archive order
    skipped: list[str] = field(default_factory=list)  # why an entry was left out


def _find(toc: pgarchive.Toc, name: str) -> pgarchive.TocEntry:
    schema, _, table = name.rpartition(".")
    found = [
        e
        for e in toc.entries
        if e.desc == "TABLE" and e.tag == table and (not schema or e.namespace == schema)
    ]
    if len(found) == 1:
        return found[0]
    if found:
        where = ", ".join(f"{e.namespace}.{e.tag}" for e in found)
        raise RestoreError(f"{name!r} names several tables in the backup ({where}): add the schema")
    raise RestoreError(f"the backup holds no table {name!r} (manage.py backup_contents lists them)")


def _followers(by_id: dict, chosen: set[int]) -> None:
    """Grow `chosen` with the entries that belong to it, until nothing more joins."""
    grew = True
    while grew:
        grew = False
        for e in by_id.values():
            if e.dump_id in chosen or e.desc not in FOLLOWERS or not set(e.deps) & chosen:
                continue
            relations = {d for d in e.deps if d in by_id and by_id[d].desc in RELATIONS}
            if relations <= chosen:
                chosen.add(e.dump_id)
                grew = True


def _label(e: pgarchive.TocEntry) -> str:
    return f"{e.desc.lower()} {e.namespace}.{e.tag}" if e.namespace else f"{e.desc.lower()} {e.tag}"


def select_tables(toc: pgarchive.Toc, names: list[str]) -> Selection:
    """The entries to restore for `names` (schema.table or a table name unique in the dump)."""
    by_id = {e.dump_id: e for e in toc.entries}
    tables = list({e.dump_id: e for e in (_find(toc, n) for n in names)}.values())
    chosen = {e.dump_id for e in tables}
    _followers(by_id, chosen)
    skipped = []
    for e in toc.entries:
        if e.dump_id in chosen or not set(e.deps) & chosen:
            continue
        if e.desc == "FK CONSTRAINT":
            relations = {d for d in e.deps if d in by_id and by_id[d].desc in RELATIONS}
            if relations <= chosen:
                chosen.add(e.dump_id)
                continue
            skipped.append(
                f"foreign key {e.tag} on {e.namespace} references a table not restored: skipped"
            )
        elif e.desc in FOLLOWERS or e.desc in ("VIEW", "MATERIALIZED VIEW"):
            skipped.append(f"{_label(e)} depends on objects not restored: skipped")
    needed, todo = set(), [d for i in chosen for d in by_id[i].deps]
    while todo:
        dep = todo.pop()
        entry = by_id.get(dep)
        if entry is not None and entry.desc in PREREQUISITES and dep not in needed:
            needed.add(dep)
            todo.extend(entry.deps)
    ids = [e.dump_id for e in toc.entries if e.dump_id in chosen | needed]
    return Selection(tables, ids, skipped)


def toc_rows(toc: pgarchive.Toc) -> list[list]:
    """The table of contents as small JSON rows, kept with a backup's contents listing so a
    restore can be planned (what comes with the chosen tables) without the artifact."""
    return [[e.dump_id, e.desc, e.namespace, e.tag, list(e.deps)] for e in toc.entries]


def toc_from_rows(rows: list[list]) -> pgarchive.Toc:
    entries = tuple(
        pgarchive.TocEntry(int(i), desc, tag, ns, "", "", tuple(deps))
        for i, desc, ns, tag, deps in rows
    )
    return pgarchive.Toc(dbname="", version=(0, 0, 0), entries=entries)


def _plan_label(e: pgarchive.TocEntry) -> str:
    """'index executions_pkey' or, for entries tagged "<table> <name>", 'constraint
    executions_pkey on public.executions'."""
    table, _, name = e.tag.partition(" ")
    if name and e.desc != "SEQUENCE":
        return f"{e.desc.lower()} {name} on {e.namespace}.{table}"
    return _label(e)


def plan(toc: pgarchive.Toc, names: list[str]) -> dict:
    """What restoring `names` writes: the tables, what comes with them (sequences, indexes,
    constraints, ...) and what is reported and skipped. Raises RestoreError for a bad name."""
    selection = select_tables(toc, names)
    by_id = {e.dump_id: e for e in toc.entries}
    tables = {t.dump_id for t in selection.tables}
    comes_with = [
        _plan_label(by_id[i])
        for i in selection.ids
        if i not in tables
        and by_id[i].desc in FOLLOWERS | {"FK CONSTRAINT"}
        and by_id[i].desc not in ("TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY")
    ]
    return {
        "tables": [f"{t.namespace}.{t.tag}" for t in selection.tables],
        "comes_with": comes_with,
        "skipped": list(selection.skipped),
    }


@dataclass
class Placement:
    """Where the tables go: a schema (moved there) or a suffix (renamed, same schema)."""

    schema: str = ""
    suffix: str = ""

    def name_of(self, table: pgarchive.TocEntry) -> tuple[str, str]:
        if self.schema:
            return self.schema, table.tag
        return table.namespace, table.tag + self.suffix

    def check(self, tables) -> None:
        if bool(self.schema) == bool(self.suffix):
            raise RestoreError("give either a schema or a name suffix for the restored tables")
        for part in (self.schema, self.suffix):
            if part and (len(part.encode()) > MAX_NAME or "\x00" in part):
                raise RestoreError(f"{part!r} is not a usable name")
        for t in tables:
            if len(self.name_of(t)[1].encode()) > MAX_NAME:
                raise RestoreError(f"{t.tag}{self.suffix} is longer than PostgreSQL's 63 bytes")


def _ident(schema: str, name: str) -> sql.Composable:
    return sql.Identifier(schema, name)


def taken_names(target: PgServer, names: list[tuple[str, str]]) -> list[str]:
    """Which of (schema, name) already exist in the target database."""
    taken = []
    with target.connect() as conn:
        for schema, name in names:
            row = conn.execute(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (schema, name),
            ).fetchone()
            if row:
                taken.append(f"{schema}.{name}")
    return taken


def _ownership_args(keep_ownership: bool) -> list[str]:
    return [] if keep_ownership else ["--no-owner", "--no-privileges"]


def _run(args: list[str], server: PgServer, what: str, cancelled=None) -> str:
    try:
        return procs.run(args, env=server.env(), secrets=server.secrets(), cancelled=cancelled)
    except procs.ProcessError as exc:
        raise RestoreError(f"{what} failed: {exc}") from None


def _conn_args(server: PgServer) -> list[str]:
    return [
        f"--host={server.host}",
        f"--port={server.port}",
        f"--username={server.user}",
        f"--dbname={server.dbname}",
    ]


def _place_in_scratch(scratch: PgServer, tables, placement: Placement) -> None:
    """Move the tables into the schema, or rename them, their indexes and owned sequences."""
    with scratch.connect() as conn:
        if placement.schema:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(placement.schema))
            )
        for t in tables:
            old = _ident(t.namespace, t.tag)
            if placement.schema:
                conn.execute(
                    sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                        old, sql.Identifier(placement.schema)
                    )
                )
                continue
            new_name = placement.name_of(t)[1]
            conn.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(old, sql.Identifier(new_name))
            )
            _suffix_dependents(conn, t.namespace, new_name, placement.suffix)


def _suffix_dependents(conn, schema: str, table: str, suffix: str) -> None:
    """Index names (constraints follow their index) and owned sequences get the suffix too:
    in the target they sit in the same schema as the live table's."""
    oid = conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, table),
    ).fetchone()[0]
    rows = conn.execute(
        "SELECT 'INDEX', i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %(t)s UNION ALL SELECT 'SEQUENCE', s.relname FROM pg_depend d "
        "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "WHERE d.refobjid = %(t)s AND d.deptype IN ('a', 'i')",
        {"t": oid},
    ).fetchall()
    for kind, name in rows:
        new = name + suffix
        if len(new.encode()) > MAX_NAME:
            new = name[: MAX_NAME - len(suffix.encode())] + suffix
        conn.execute(
            sql.SQL("ALTER " + kind + " {} RENAME TO {}").format(
                _ident(schema, name), sql.Identifier(new)
            )
        )


@dataclass
class TablesRestored:
    tables: list[tuple[str, str]]  # (schema, name) in the target
    rows: dict[str, int]  # "schema.name" → rows counted in the target
    warnings: list[str] = field(default_factory=list)


def restore_tables(
    admin: PgServer,
    target: PgServer,
    archive_path: str,
    selection: Selection,
    placement: Placement,
    *,
    scratch_name: str,
    work_dir: str,
    keep_ownership: bool,
    cancelled=None,
) -> TablesRestored:
    """Restore the selection into `target` (an existing database) as `placement` says.

    `admin` is the target's server (the `postgres` database) where the scratch database
    `scratch_name` is created and always dropped.
    """
    placement.check(selection.tables)
    final = [placement.name_of(t) for t in selection.tables]
    taken = taken_names(target, final)
    if taken:
        raise RestoreError(
            f"{', '.join(taken)} already exist in {target.dbname}: nothing was restored "
            "(choose another schema or suffix, or rename them first)"
        )
    listing = os.path.join(work_dir, "tables.list")
    with open(listing, "w") as fh:
        fh.write("".join(f"{i}\n" for i in selection.ids))
    pg.create_database(admin, scratch_name)
    scratch = admin.with_db(scratch_name)
    try:
        _run(
            [
                pg.tool("pg_restore"),
                *_ownership_args(keep_ownership),
                "--exit-on-error",
                f"--use-list={listing}",
                *_conn_args(scratch),
                archive_path,
            ],
            scratch,
            "pg_restore of the chosen tables",
            cancelled,
        )
        _place_in_scratch(scratch, selection.tables, placement)
        dump = os.path.join(work_dir, "tables.dump")
        whole_schema = placement.schema and not _schema_exists(target, placement.schema)
        picks = (
            [f"--schema={_pattern(placement.schema)}"]
            if whole_schema
            else [f"--table={_pattern(s)}.{_pattern(n)}" for s, n in final]
        )
        _run(
            [pg.tool("pg_dump"), "--format=custom", "-Z0", f"--file={dump}", *picks]
            + _conn_args(scratch),
            scratch,
            "pg_dump of the restored tables",
            cancelled,
        )
        _run(
            [
                pg.tool("pg_restore"),
                *_ownership_args(keep_ownership),
                "--single-transaction",
                "--exit-on-error",
                *_conn_args(target),
                dump,
            ],
            target,
            f"restoring the tables into {target.dbname}",
            cancelled,
        )
    finally:
        pg.drop_database(admin, scratch_name)
    return TablesRestored(final, count_rows(target, final), list(selection.skipped))


def _pattern(name: str) -> str:
    """An exact pg_dump name pattern (quoted: no wildcards, case kept)."""
    return '"' + name.replace('"', '""') + '"'


def _schema_exists(target: PgServer, schema: str) -> bool:
    with target.connect() as conn:
        return bool(
            conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        )


def count_rows(target: PgServer, tables: list[tuple[str, str]]) -> dict[str, int]:
    with target.connect() as conn:
        return {
            f"{s}.{n}": conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(_ident(s, n))
            ).fetchone()[0]
            for s, n in tables
        }
