"""The first rows of one table as it is in a `pg_dump -Fc` archive (no Django).

The table alone (with the schemas, types and functions it needs) is restored into a
scratch database, read, and the scratch database is dropped on every exit path. Masked
columns are never read: the query selects a NULL in their place, so their values do not
leave the scratch server, let alone reach a page. Other values are cut to `width`
characters as text.
"""

import fnmatch
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg import sql

from recovery.engine import pg, pg_tables, pgarchive
from recovery.engine.pg import PgServer, RestoreError

MASK = "•••"
STATEMENT_TIMEOUT = "30s"


def masker(patterns: list[str]) -> Callable[[str, str, str], bool]:
    """is_masked(schema, table, column) for patterns 'column', 'table.column' or
    'schema.table.column' (wildcards * and ?), case ignored."""
    split = [p.lower().split(".") for p in patterns if p]

    def is_masked(schema: str, table: str, column: str) -> bool:
        full = [schema.lower(), table.lower(), column.lower()]
        for parts in split:
            names = full[-len(parts) :]
            if all(fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts, strict=True)):
                return True
        return False

    return is_masked


@dataclass
class Preview:
    table: str
    columns: list[str]
    types: list[str]
    masked: list[str]  # column names shown as MASK
    rows: list[list[str | None]]
    total: int
    notes: list[str] = field(default_factory=list)


def _restore_table(admin, archive_path, ids, scratch_name, work_dir, cancelled) -> PgServer:
    listing = os.path.join(work_dir, "preview.list")
    with open(listing, "w") as fh:
        fh.write("".join(f"{i}\n" for i in ids))
    pg.create_database(admin, scratch_name)
    scratch = admin.with_db(scratch_name)
    args = [
        pg.tool("pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        f"--use-list={listing}",
        *pg_tables._conn_args(scratch),
        archive_path,
    ]
    pg_tables._run(args, scratch, "pg_restore of the previewed table", cancelled)
    return scratch


def preview_table(
    admin: PgServer,
    archive_path: str,
    toc: pgarchive.Toc,
    name: str,
    *,
    scratch_name: str,
    work_dir: str,
    is_masked: Callable[[str, str, str], bool],
    limit: int = 20,
    width: int = 80,
    cancelled=None,
) -> Preview:
    """The first `limit` rows of table `name` (schema.table) in the archive."""
    selection = pg_tables.select_tables(toc, [name])
    by_id = {e.dump_id: e for e in toc.entries}
    keep = {"TABLE", "TABLE DATA", *pg_tables.PREREQUISITES}
    ids = [i for i in selection.ids if by_id[i].desc in keep]
    table = selection.tables[0]
    try:
        scratch = _restore_table(admin, archive_path, ids, scratch_name, work_dir, cancelled)
        return _read(scratch, table.namespace, table.tag, is_masked, limit, width)
    finally:
        pg.drop_database(admin, scratch_name)


def _read(scratch: PgServer, schema, table, is_masked, limit, width) -> Preview:
    ident = sql.Identifier(schema, table)
    with scratch.connect(autocommit=False) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT)))
        cols = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum",
            (ident.as_string(conn),),
        ).fetchall()
        if not cols:
            raise RestoreError(f"{schema}.{table} has no columns to show")
        masked = [c for c, _ in cols if is_masked(schema, table, c)]
        shown = [
            sql.SQL("NULL")
            if c in masked
            else sql.SQL("left({}::text, {})").format(sql.Identifier(c), sql.Literal(width + 1))
            for c, _ in cols
        ]
        rows = conn.execute(
            sql.SQL("SELECT {} FROM {} LIMIT {}").format(
                sql.SQL(", ").join(shown), ident, sql.Literal(limit)
            )
        ).fetchall()
        total = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()[0]
        conn.rollback()
    out = []
    for row in rows:
        values = []
        for (column, _), value in zip(cols, row, strict=True):
            if column in masked:
                values.append(MASK)
            elif value is not None and len(value) > width:
                values.append(value[:width] + "…")
            else:
                values.append(value)
        out.append(values)
    return Preview(
        table=f"{schema}.{table}",
        columns=[c for c, _ in cols],
        types=[t for _, t in cols],
        masked=masked,
        rows=out,
        total=total,
    )
