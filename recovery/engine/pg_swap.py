"""Restoring a PostgreSQL archive onto a real target, as plain mechanics (no Django).

The archive goes into a staging database `<name>_restoring_<stamp>`, created as the
archive describes it (encoding, locale) and given its owner, privileges, settings and
comment; only then is it swapped in. The database it replaces is never dropped: it is
renamed aside to `<name>_before_restore_<stamp>`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from recovery.engine import pg, pgarchive
from recovery.engine.pg import PgServer, RestoreError


def _beside(dbname: str, what: str, stamp: str) -> str:
    """`<dbname>_<what>_<stamp>`, the database name cut so the whole fits PostgreSQL's 63
    bytes: a long name must fail (or fit) before the restore, not at the switch-over."""
    suffix = f"_{what}_{stamp}"
    return pg.check_name(f"{dbname[: 63 - len(suffix)]}{suffix}")


def staging_name(dbname: str, stamp: str) -> str:
    return _beside(dbname, "restoring", stamp)


def aside_name(dbname: str, stamp: str) -> str:
    return _beside(dbname, "before_restore", stamp)


@dataclass
class Archive:
    """What the archive's table of contents says (None when it cannot be read)."""

    path: str
    toc: object = None
    definition: object = None
    warnings: list[str] = field(default_factory=list)


def read_archive(path: str) -> Archive:
    toc = pgarchive.toc_of_file(path)
    definition = pgarchive.definition(toc) if toc else None
    warnings = [pgarchive.NO_DEFINITION] if definition is None else []
    return Archive(path, toc, definition, warnings)


def missing_roles(admin: PgServer, archive: Archive) -> list[str]:
    """Roles the archive's objects and privileges name that the target server lacks."""
    roles = pgarchive.referenced_roles(archive.toc) if archive.toc else set()
    return pg.missing_roles(admin, roles)


def restore_to_staging(
    admin: PgServer,
    staging: str,
    archive: Archive,
    *,
    keep_ownership: bool,
    keep_slot: bool,
    jobs: int,
    cancelled: Callable[[], bool],
) -> list[str]:
    """Create `staging` on `admin`'s server and restore the archive into it; return warnings.

    keep_ownership: owners and privileges as pg_restore sets them (every role exists and
    we are superuser); otherwise every privilege that can apply is applied one by one.
    keep_slot: subscriptions keep naming their slot (a restore onto the source); a new
    database must never take the source's slot. On failure the staging database is dropped.
    """
    warnings = pg.create_database(admin, staging, archive.definition)
    db = admin.with_db(staging)
    try:
        pg.pg_restore(
            archive.path, db, jobs=jobs, keep_ownership=keep_ownership, cancelled=cancelled
        )
        if not keep_ownership and archive.toc is not None:  # REVOKE ... FROM PUBLIC stays
            warnings += pg.restore_privileges(db, archive.toc)
        warnings += pg.neutralise_subscriptions(db, keep_slot=keep_slot)
        if archive.definition is not None:
            warnings += pg.apply_properties(admin, staging, archive.definition, scratch=False)
    except RestoreError as exc:
        try:
            pg.drop_database(admin, staging)
        except RestoreError as cleanup:  # never hide the first error; name both
            raise RestoreError(f"{exc}; and the staging database stays: {cleanup}") from None
        raise
    return warnings


def swap_in(admin: PgServer, dbname: str, staging: str, stamp: str) -> str | None:
    """Rename the staging database to `dbname`, first renaming an existing `dbname` aside.

    Returns the name the previous database was kept under (None: there was none).
    """
    aside = None
    if pg.database_exists(admin, dbname):
        aside = aside_name(dbname, stamp)
        pg.rename_database(admin, dbname, aside)
    pg.rename_database(admin, staging, dbname)
    return aside
