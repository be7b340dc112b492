"""Restore a plain artifact into scratch, run the checks, always clean up.

Each function takes the already fetched and verified artifact (a `pg_dump` custom
archive, a SQLite file, a tar), restores it somewhere temporary, measures each
phase, runs the verification checks and removes what it created, also on failure.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from recovery.engine import files, heartbeat, pgarchive
from recovery.engine.check_role import run_confined_checks
from recovery.engine.checks import CheckResult, open_sqlite_confined, run_checks, sqlite_query
from recovery.engine.pg import (
    PgServer,
    RestoreError,
    apply_properties,
    create_database,
    drop_database,
    neutralise_subscriptions,
    new_scratch_name,
    pg_restore,
)
from recovery.engine.staging import private_dir


@dataclass
class Phases:
    """Wall time and outcome of each named phase, in order; calls on_phase as each starts."""

    on_phase: Callable[[str], None] | None = None
    items: list[dict] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str):
        if self.on_phase:
            self.on_phase(name)
        entry = {"name": name, "ok": False, "seconds": 0.0, "detail": ""}
        self.items.append(entry)
        start = time.monotonic()
        try:
            yield entry
            entry["ok"] = True
        except BaseException as exc:
            entry["detail"] = str(exc)[:500]
            raise
        finally:
            entry["seconds"] = round(time.monotonic() - start, 3)

    def seconds(self, name: str) -> float:
        return sum(p["seconds"] for p in self.items if p["name"] == name)


@dataclass
class VerifyOutcome:
    checks: list[CheckResult] = field(default_factory=list)
    heartbeat_at: datetime | None = None
    integrity: str = ""  # what the structural check said ("pg_restore ok", "integrity_check ok")
    restored_bytes: int = 0
    # What could not be restored as it was, or was changed on purpose (subscriptions).
    warnings: list[str] = field(default_factory=list)


def verify_postgres(
    archive: str,
    scratch_server: PgServer,
    checks: Iterable[dict],
    previous: dict | None,
    phases: Phases,
    *,
    jobs: int | None = None,
    timeout: float | None = None,
    cancelled=None,
    scratch_prefix: str | None = None,
    before_create: Callable[[str], None] | None = None,
) -> VerifyOutcome:
    """pg_restore -j into a fresh scratch database, read the heartbeat, run the checks.

    The scratch database is created with the archive's encoding and locale (so ORDER BY and
    text comparisons in the checks behave as on the source) and gets its settings and
    comment; owner and grants are left out (the roles need not exist on the scratch
    server). Subscriptions are left disabled and without a slot. The scratch database is
    dropped in every case; a failure to drop is reported (it would leave data behind) but
    never hides the error that came first. before_create(name) is called before the
    database exists, so a caller can record it for whoever cleans up after a killed worker.
    """
    result = VerifyOutcome()
    peeked = pgarchive.PeekedFeed(archive) if callable(archive) else None
    name = new_scratch_name(scratch_prefix) if scratch_prefix else new_scratch_name()
    if before_create is not None:
        before_create(name)
    target = scratch_server.with_db(name)
    created = False
    failed = True
    try:
        with phases.phase("create scratch"):
            toc = peeked.peek_toc() if peeked else pgarchive.toc_of_file(archive)
            definition = pgarchive.definition(toc) if toc else None
            if definition is None:
                result.warnings.append(pgarchive.NO_DEFINITION)
            result.warnings += create_database(scratch_server, name, definition)
            created = True
        with phases.phase("restore"):
            pg_restore(peeked or archive, target, jobs=jobs, timeout=timeout, cancelled=cancelled)
            result.integrity = "pg_restore completed without errors"
            result.warnings += neutralise_subscriptions(target)
            if definition is not None:
                result.warnings += apply_properties(scratch_server, name, definition, scratch=True)
        with phases.phase("checks"):
            with target.connect() as conn:
                result.heartbeat_at = heartbeat.read_pg(conn)
                result.restored_bytes = conn.execute(
                    "SELECT pg_database_size(current_database())"
                ).fetchone()[0]
            result.checks = run_confined_checks(target, checks, previous, scratch=True)
        failed = False
    finally:
        if peeked is not None:
            peeked.close()
        if created:
            try:
                with phases.phase("cleanup"):
                    drop_database(scratch_server, name)
            except RestoreError:
                if not failed:
                    raise
    return result


def verify_sqlite(
    db_file: str, checks: Iterable[dict], previous: dict | None, phases: Phases
) -> VerifyOutcome:
    """The unpacked file is the restored copy: integrity_check, heartbeat, checks."""
    result = VerifyOutcome()
    with phases.phase("restore"):
        files.sqlite_integrity(db_file)
        result.integrity = "PRAGMA integrity_check: ok"
        result.restored_bytes = os.path.getsize(db_file)
    with phases.phase("checks"):
        conn = open_sqlite_confined(db_file)
        try:
            result.heartbeat_at = heartbeat.read_sqlite(conn)
            result.checks = run_checks(sqlite_query(conn), checks, previous)
        finally:
            conn.close()
    return result


def verify_files(
    tar_path: str, phases: Phases, *, expected_count: int | None = None, tmp_dir: str | None = None
) -> VerifyOutcome:
    """Extract into a private directory, compare every entry's type, mode, link target, size,
    mtime (and owner as root) with the archive listing, always remove it."""
    result = VerifyOutcome()
    workdir = private_dir(tmp_dir or tempfile.gettempdir(), prefix="dr-restore-files-")
    try:
        with phases.phase("restore"):
            listing, skipped = files.extract_tar(tar_path, str(workdir / "tree"))
        with phases.phase("checks"):
            problems = files.compare_tree(str(workdir / "tree"), listing, skipped=skipped)
            count = sum(1 for entry in listing.values() if entry.kind == "file")
            if expected_count is not None and expected_count != count:
                problems.append(f"the manifest lists {expected_count} files, the archive {count}")
            if problems:
                raise RestoreError("restored files differ: " + "; ".join(problems[:5]))
            result.restored_bytes = sum(entry.size for entry in listing.values())
            special = sum(1 for entry in listing.values() if entry.kind not in ("file", "dir"))
            result.integrity = (
                f"{count} files restored and compared with the archive listing "
                "(type, mode, link target, size, mtime"
                f"{', owner' if os.geteuid() == 0 else ''})"
                + (f"; {special} links and special files" if special else "")
                + (f"; not restored without root: {', '.join(skipped[:5])}" if skipped else "")
            )
    finally:
        with phases.phase("cleanup"):
            shutil.rmtree(workdir, ignore_errors=True)
    return result
