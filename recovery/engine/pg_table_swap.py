"""Putting restored tables in place of live ones, in ONE transaction (no Django).

The restored table (already checked, under a temporary suffix) takes the live table's
name; the live table is renamed aside to `<name>_before_<stamp>` and kept, with its
indexes and owned sequences renamed the same way so the restored ones can take their
names. Nothing is dropped.

Foreign keys of other tables that referenced the live table keep referencing it under
its new name (PostgreSQL binds them by object, not by name), and views over it keep
reading it; foreign keys of the live table to tables not restored are not on the
restored one. That is reported with the SQL that repoints or adds each foreign key; it
is not done here, because rows written since the backup may not match the restored keys
and the person restoring decides whether to keep them.
"""

from dataclasses import dataclass, field

from psycopg import sql

from recovery.engine.pg import PgServer, RestoreError

MAX_NAME = 63
LOCK_TIMEOUT = "10s"  # an application holding the table fails the swap, not hangs it


@dataclass
class Swapped:
    kept_aside: list[str] = field(default_factory=list)  # "schema.name_before_<stamp>"
    notes: list[str] = field(default_factory=list)


def aside_name(name: str, stamp: str) -> str:
    tail = f"_before_{stamp}"
    return name[: MAX_NAME - len(tail)] + tail


def _oid(conn, schema: str, name: str):
    row = conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, name),
    ).fetchone()
    return row[0] if row else None


def _dependents(conn, oid) -> list[tuple[str, str]]:
    """(kind, name) of the indexes and owned sequences of a table."""
    return conn.execute(
        "SELECT 'INDEX', i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %(t)s UNION ALL SELECT 'SEQUENCE', s.relname FROM pg_depend d "
        "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "WHERE d.refobjid = %(t)s AND d.deptype IN ('a', 'i')",
        {"t": oid},
    ).fetchall()


def _rename(conn, kind: str, schema: str, old: str, new: str):
    conn.execute(
        sql.SQL("ALTER " + kind + " {} RENAME TO {}").format(  # kind: a fixed word above
            sql.Identifier(schema, old), sql.Identifier(new)
        )
    )


def _incoming(conn, oid, schema: str, name: str, aside: str) -> list[str]:
    """Foreign keys of other tables to the live table, with the SQL that repoints them."""
    rows = conn.execute(
        "SELECT c.conname, quote_ident(n.nspname) || '.' || quote_ident(t.relname), "
        "pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE c.contype = 'f' AND c.confrelid = %s AND c.conrelid <> %s ORDER BY 2, 1",
        (oid, oid),
    ).fetchall()
    notes = []
    for conname, table, definition in rows:
        # the definition names the table as it is called now: after the swap, the restored one
        repoint = (
            f"ALTER TABLE {table} DROP CONSTRAINT {sql.Identifier(conname).as_string(conn)}, "
            f"ADD CONSTRAINT {sql.Identifier(conname).as_string(conn)} {definition} NOT VALID; "
            f"ALTER TABLE {table} VALIDATE CONSTRAINT "
            f"{sql.Identifier(conname).as_string(conn)};"
        )
        notes.append(
            f"foreign key {conname} of {table} still references {schema}.{aside} (the table "
            f"kept aside), not the restored {schema}.{name}; to repoint it: {repoint}"
        )
    views = conn.execute(
        "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d "
        "JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class "
        "WHERE d.refobjid = %s AND v.oid <> %s ORDER BY 1",
        (oid, oid),
    ).fetchall()
    notes += [
        f"view {v} still reads {schema}.{aside} (the table kept aside): recreate it to read "
        f"the restored {schema}.{name}"
        for (v,) in views
    ]
    return notes


def _outgoing(conn, old_oid, new_oid, schema: str, name: str) -> list[str]:
    """Foreign keys of the live table to other tables that the restored one lacks (a table
    left out of the restore), with the SQL that adds them to the restored table."""
    rows = conn.execute(
        "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "WHERE c.contype = 'f' AND c.conrelid = %s AND c.confrelid <> %s AND c.conname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE conrelid = %s) ORDER BY 1",
        (old_oid, old_oid, new_oid),
    ).fetchall()
    table = sql.Identifier(schema, name).as_string(conn)
    notes = []
    for conname, definition in rows:
        quoted = sql.Identifier(conname).as_string(conn)
        notes.append(
            f"foreign key {conname} of the replaced table is not on the restored {schema}.{name} "
            f"(it references a table not restored); to add it: ALTER TABLE {table} ADD "
            f"CONSTRAINT {quoted} {definition} NOT VALID; ALTER TABLE {table} VALIDATE "
            f"CONSTRAINT {quoted};"
        )
    return notes


def swap_in(
    target: PgServer, tables: list[tuple[str, str, str]], suffix: str, stamp: str
) -> Swapped:
    """Put each restored table (schema, live name, restored name) in place of the live one.

    `suffix` is the temporary suffix the restored table, its indexes and its sequences
    carry; they lose it. All tables are swapped in one transaction, or none.
    """
    done = Swapped()
    try:
        with target.connect() as conn, conn.transaction():
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            for schema, live, restored in tables:
                new_oid = _oid(conn, schema, restored)
                if new_oid is None:
                    raise RestoreError(f"the restored table {schema}.{restored} is missing")
                old_oid = _oid(conn, schema, live)
                if old_oid is not None:
                    aside = aside_name(live, stamp)
                    done.notes += _incoming(conn, old_oid, schema, live, aside)
                    done.notes += _outgoing(conn, old_oid, new_oid, schema, live)
                    for kind, name in _dependents(conn, old_oid):
                        _rename(conn, kind, schema, name, aside_name(name, stamp))
                    _rename(conn, "TABLE", schema, live, aside)
                    done.kept_aside.append(f"{schema}.{aside}")
                else:
                    done.notes.append(f"{schema}.{live} did not exist: the restored table is new")
                for kind, name in _dependents(conn, new_oid):
                    if name.endswith(suffix):
                        _rename(conn, kind, schema, name, name[: -len(suffix)])
                    else:  # cut to 63 bytes when suffixed: keeps its name, said so
                        done.notes.append(f"{kind.lower()} {schema}.{name} keeps its name")
                _rename(conn, "TABLE", schema, restored, live)
    except RestoreError:
        raise
    except Exception as exc:  # psycopg errors: the transaction rolled back, nothing changed
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RestoreError(
            f"the restored tables could not be swapped in ({first}): nothing was swapped; "
            "they are still under their temporary names"
        ) from None
    return done
