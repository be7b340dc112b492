"""Partial restores: chosen tables of a PostgreSQL backup, or chosen paths of a files backup.

They run as Restore rows (same queue, claim, audit, phases and RTO as a full restore);
recovery.restores hands the fetched artifact here when the row names tables or paths.
Tables go into an existing database under new names (a schema or a suffix), never over
existing tables, unless a manager typed their names to replace them: then they are
restored under a temporary suffix, counted, and swapped in place of the live ones in one
transaction (recovery.engine.pg_table_swap), the live ones kept aside. Paths go into a
target directory, touching nothing beside them, and an existing path is kept aside first
only when replacing was confirmed.
"""

import os
import re
from dataclasses import dataclass, field

from django.utils import timezone

from recovery.engine import file_paths, pg, pg_swap, pg_table_swap, pg_tables
from recovery.engine.checks import Outcome
from recovery.engine.contents import table_rows
from recovery.engine.pg import PgServer, RestoreError
from recovery.runner import RecoveryFailure, RunResult
from recovery.workspace import record_database

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_SUFFIX = re.compile(r"^[A-Za-z0-9_$]{1,30}$")
MAX_ITEMS = 200


def _split(items) -> list[str]:
    if isinstance(items, str):
        items = items.split(",")
    return [i.strip() for i in items or [] if i and i.strip()]


@dataclass
class Partial:
    """What a partial restore restores, checked before anything is queued."""

    tables: list[str] = field(default_factory=list)
    schema: str = ""
    suffix: str = ""
    paths: list[str] = field(default_factory=list)
    replace: bool = False  # tables: put them in place of the live ones (typed names)
    confirm_tables: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.tables, self.paths = _split(self.tables), _split(self.paths)
        self.confirm_tables = _split(self.confirm_tables)

    def validate(self, data_kind: str):
        """Raise ValueError with a clear message when this cannot be restored as asked."""
        if bool(self.tables) == bool(self.paths):
            raise ValueError("choose tables (a PostgreSQL backup) or paths (a files backup)")
        if len(self.tables) + len(self.paths) > MAX_ITEMS:
            raise ValueError(f"at most {MAX_ITEMS} tables or paths at once")
        if self.tables:
            self._validate_tables(data_kind)
        else:
            self._validate_paths(data_kind)

    def _validate_tables(self, data_kind):
        if data_kind != "postgresql":
            raise ValueError(f"tables are restored from a PostgreSQL backup, not {data_kind}")
        if self.replace:
            self._validate_replace()
        elif bool(self.schema) == bool(self.suffix):
            raise ValueError(
                "give a schema (--schema) or a name suffix (--suffix) for the restored "
                "tables: they are written beside the existing ones, never over them"
            )
        if self.schema and (not _IDENT.match(self.schema) or self.schema.startswith("pg_")):
            raise ValueError(f"{self.schema!r} is not a usable schema name")
        if self.suffix and not _SUFFIX.match(self.suffix):
            raise ValueError(f"{self.suffix!r} is not a usable suffix (letters, digits, _)")
        for name in self.tables:
            if len(name) > 130 or "\x00" in name:
                raise ValueError(f"{name[:40]!r} is not a table name")

    def _validate_replace(self):
        if self.schema or self.suffix:
            raise ValueError(
                "replacing puts the tables back under their own names: no schema or suffix"
            )
        if sorted(self.confirm_tables) != sorted(self.tables):
            raise ValueError(
                "to replace live tables, type the exact names of the chosen tables "
                f"({', '.join(self.tables)}) to confirm: nothing was changed"
            )

    def _validate_paths(self, data_kind):
        if data_kind != "files":
            raise ValueError(f"paths are restored from a files backup, not {data_kind}")
        for path in self.paths:
            file_paths.clean_path(path)  # raises ValueError

    def fields(self) -> dict:
        return {
            "tables": self.tables,
            "table_schema": self.schema,
            "table_suffix": self.suffix,
            "paths": self.paths,
            "replace_tables": self.replace and bool(self.tables),
        }


@dataclass
class PartialResult(RunResult):
    kept_aside: str | None = None
    warnings: list[str] | None = None
    checks: list[dict] | None = None


def restore_chosen(restore, path: str, password: str, phases) -> PartialResult:
    try:
        if restore.tables:
            return _restore_tables(restore, path, password, phases)
        return _restore_paths(restore, path, phases)
    except (RestoreError, ValueError) as exc:
        raise RecoveryFailure(str(exc)) from None


def _stamp() -> str:
    return timezone.now().strftime("%Y%m%d%H%M%S")


def _ownership(admin: PgServer, archive) -> tuple[bool, list[str]]:
    missing = pg_swap.missing_roles(admin, archive)
    if missing:
        return False, [
            f"roles the backup names do not exist on the target server ({', '.join(missing)}): "
            f"the restored tables are owned by {admin.user}, without their grants"
        ]
    if not pg.is_superuser(admin):
        return False, [f"{admin.user} is not a superuser: the restored tables are owned by it"]
    return True, []


def _row_checks(path, toc, selection, done) -> list[dict]:
    """Rows counted in the target against rows in the dump, per restored table."""
    in_dump = table_rows(path, toc)
    checks = []
    for table, (schema, name) in zip(selection.tables, done.tables, strict=True):
        expected = in_dump.get(table.dump_id)
        observed = done.rows[f"{schema}.{name}"]
        ok = expected is None or observed == expected
        checks.append(
            {
                "name": f"rows in {schema}.{name}",
                "sql": "",
                "expect": f"= {expected}" if expected is not None else "(not counted in the dump)",
                "observed": str(observed),
                "outcome": Outcome.PASSED if ok else Outcome.FAILED,
                "detail": f"{table.namespace}.{table.tag} in the backup",
                "previous": None,
            }
        )
    return checks


def _restore_tables(restore, path, password, phases) -> PartialResult:
    target = PgServer.from_url(restore.target, password=password)
    admin = target.with_db("postgres")
    archive = pg_swap.read_archive(path)
    if archive.toc is None:
        raise RecoveryFailure("the backup's table of contents cannot be read")
    selection = pg_tables.select_tables(archive.toc, restore.tables)
    keep_ownership, notes = _ownership(admin, archive)
    stamp = _stamp()
    scratch = pg.check_name(f"{target.dbname[:30]}_tables_{stamp}")
    # replacing: restored under a temporary suffix first, swapped in once counted
    suffix = f"_r{stamp}" if restore.replace_tables else restore.table_suffix
    placement = pg_tables.Placement(schema=restore.table_schema, suffix=suffix)
    with phases.phase("restore") as phase:
        record_database(restore, "target", scratch)
        done = pg_tables.restore_tables(
            admin,
            target,
            path,
            selection,
            placement,
            scratch_name=scratch,
            work_dir=os.path.dirname(path),
            keep_ownership=keep_ownership,
            cancelled=lambda: restore.lease_lost,
        )
        names = ", ".join(f"{s}.{n}" for s, n in done.tables)
        phase["detail"] = f"restored {names} into {target.dbname}"[:500]
        restore.append_log(phase["detail"])
    warnings = notes + done.warnings
    for warning in warnings:
        restore.append_log(f"note: {warning}")
    with phases.phase("checks"):
        checks = _row_checks(path, archive.toc, selection, done)
    if not restore.replace_tables:
        return PartialResult(warnings=warnings, checks=checks)
    if any(c["outcome"] != Outcome.PASSED for c in checks):
        restore.append_log(
            "row counts differ from the backup: the live tables were not replaced; the "
            f"restored ones are under the suffix {suffix}"
        )
        return PartialResult(warnings=warnings, checks=checks)
    return _swap(restore, target, selection, done, suffix, stamp, phases, warnings, checks)


def _swap(restore, target, selection, done, suffix, stamp, phases, warnings, checks):
    """The counted tables take the live tables' names, in one transaction; the rows are
    counted again under the final names (the check a DBA reads after the swap)."""
    tables = [
        (schema, t.tag, name)
        for t, (schema, name) in zip(selection.tables, done.tables, strict=True)
    ]
    with phases.phase("switch over") as phase:
        swapped = pg_table_swap.swap_in(target, tables, suffix, stamp)
        phase["detail"] = f"kept aside: {', '.join(swapped.kept_aside) or 'nothing'}"[:500]
        restore.append_log(phase["detail"])
    rows = pg_tables.count_rows(target, [(s, live) for s, live, _ in tables])
    for check, (schema, live, _) in zip(checks, tables, strict=True):
        check["name"] = f"rows in {schema}.{live}"
        check["observed"] = str(rows[f"{schema}.{live}"])
        expected = check["expect"].removeprefix("= ")
        ok = not expected.isdigit() or int(expected) == rows[f"{schema}.{live}"]
        check["outcome"] = Outcome.PASSED if ok else Outcome.FAILED
    for note in swapped.notes:
        restore.append_log(f"note: {note}")
    return PartialResult(
        kept_aside="; ".join(swapped.kept_aside) or None,
        warnings=warnings + swapped.notes,
        checks=checks,
    )


def _restore_paths(restore, tar_path, phases) -> PartialResult:
    with phases.phase("restore") as phase:
        done = file_paths.restore_paths(
            tar_path,
            restore.target,
            restore.paths,
            _stamp(),
            replace=restore.overwrite_confirmed,
        )
        phase["detail"] = f"restored {', '.join(done.restored)}"[:500]
        restore.append_log(phase["detail"])
        for src, aside in done.kept_aside:
            restore.append_log(f"{src} was kept aside as {aside}")
    checks = [
        {
            "name": "restored paths match the backup",
            "sql": "",
            "expect": "type, mode, size, link target and mtime as in the backup",
            "observed": str(len(done.compared)),
            "outcome": Outcome.FAILED if done.problems else Outcome.PASSED,
            "detail": "; ".join(done.problems[:10]),
            "previous": None,
        }
    ]
    kept = "; ".join(aside for _, aside in done.kept_aside)
    return PartialResult(kept_aside=kept or None, checks=checks, warnings=done.skipped or None)


# --- what the portal shows before a partial restore is confirmed ------------------------


def choice_name(item: dict) -> str:
    """How an item of a backup's contents is chosen for a partial restore ("" if it cannot
    be): schema.table for a table, the path relative to the backup's root for a file."""
    if "schema" in item:
        return f"{item['schema']}.{item['name']}" if item["type"] == "table" else ""
    name = item["name"].removeprefix("./")
    return "" if name in ("", ".") else name


def plan(contents, chosen: Partial) -> dict:
    """What restoring the choice writes, from the backup's cached contents (no artifact):
    tables with what comes with them and what is reported and skipped, or paths with the
    files under them. {"error": ...} when the choice cannot be planned."""
    if chosen.tables:
        toc = (contents.detail or {}).get("toc")
        if toc is None:  # listed before plans were kept: the restore still works it out
            found = {
                "tables": list(chosen.tables),
                "comes_with": [],
                "skipped": [],
                "note": "These contents were read before dependency plans were kept: what "
                "comes with the tables and what is skipped is listed on the restore's page.",
            }
        else:
            try:
                found = pg_tables.plan(pg_tables.toc_from_rows(toc), chosen.tables)
            except RestoreError as exc:
                return {"error": str(exc)}
        rows = {
            f"{i['schema']}.{i['name']}": i.get("rows")
            for i in contents.items
            if i["type"] == "table"
        }
        found["rows"] = {t: rows.get(t) for t in found["tables"]}
        return found
    paths = []
    for path in chosen.paths:
        under = [i for i in contents.items if i["name"] == path or i["name"].startswith(path + "/")]
        paths.append(
            {
                "path": path,
                "entries": len(under),
                "bytes": sum(i.get("bytes") or 0 for i in under),
            }
        )
    return {"paths": paths}


def describe(restore) -> str:
    """What a partial restore restores, for the audit line ("" for a full restore)."""
    if restore.tables and restore.replace_tables:
        return f" (tables {', '.join(restore.tables)}, replacing the live ones: names typed)"
    if restore.tables:
        where = restore.table_schema and f"schema {restore.table_schema}"
        where = where or f"suffix {restore.table_suffix}"
        return f" (tables {', '.join(restore.tables)}, {where})"
    if restore.paths:
        return f" (paths {', '.join(restore.paths)}{', replacing' if restore.overwrite_confirmed else ''})"
    return ""
