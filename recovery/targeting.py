"""Where a restore writes: the source's own place, a registered target or a free-form one.

Each is normalised and validated before a restore is created: no system database, no
path through a symbolic link or outside DR_ALLOWED_ROOTS, no overlap with a source or
the portal (recovery.restore_targets holds the registrations and who may use them).
"""

import os
from pathlib import Path

from django.core.exceptions import ValidationError

from backups.models import Source
from dr_portal.lib.paths import check_allowed_path
from recovery import restore_targets
from recovery.engine.pg import PgServer
from recovery.models import RestoreTarget, TargetKind


def target_kind_for(kind: str) -> str:
    return {"postgresql": TargetKind.DATABASE, "sqlite": TargetKind.FILE}.get(
        kind, TargetKind.DIRECTORY
    )


def source_kind(source: Source) -> str:
    if source.is_portal_db:
        return source.portal_db_spec_config()[0]
    return source.kind


def source_target(source: Source) -> tuple[str, str, str]:
    """(target kind, target, password) of the source itself."""
    spec = source.to_spec()
    if spec.kind == "postgresql":
        c = spec.config
        url = f"postgresql://{c['user']}@{c['host']}:{c.get('port') or 5432}/{c['database']}"
        return TargetKind.DATABASE, url, spec.password
    return target_kind_for(spec.kind), spec.config["path"], ""


def is_source_target(source: Source, target: str) -> bool:
    """Does `target` (URL or path) name the source's own data?"""
    kind, own, _ = source_target(source)
    if kind == TargetKind.DATABASE:
        try:
            theirs = PgServer.from_url(target)
            mine = PgServer.from_url(own)
        except ValueError:
            return False
        return (theirs.host, theirs.port, theirs.dbname) == (mine.host, mine.port, mine.dbname)
    try:
        return Path(target).resolve() == Path(own).resolve()
    except (OSError, ValueError):
        return False


def validate_target(kind: str, target: str, *, onto_source: bool = False) -> tuple[str, str]:
    """Return (normalised target without password, password); raise ValueError with a reason."""
    if kind == TargetKind.DATABASE:
        server = PgServer.from_url(target)
        if server.dbname in ("postgres", "template0", "template1"):
            raise ValueError(
                f"{server.dbname} is a system database; name a database to restore into"
            )
        return server.public_url(), server.password
    if not onto_source and os.path.realpath(target) != os.path.normpath(target):
        # A link planted at (or above) the path would send the restore somewhere else.
        raise ValueError(f"{target} goes through a symbolic link; give the real path")
    try:
        path = check_allowed_path(target)
    except ValidationError as exc:
        if onto_source:
            path = Path(target)
        else:
            raise ValueError(" ".join(exc.messages)) from None
    if kind == TargetKind.FILE and path.is_dir():
        raise ValueError(f"{path} is a directory; give the SQLite file's path")
    if kind == TargetKind.DIRECTORY and path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; give a directory")
    if not path.parent.is_dir():
        raise ValueError(f"{path.parent} does not exist")
    return str(path), ""


def registered_target(source: Source, data_kind: str, restore_target: RestoreTarget, database=""):
    """(target URL or path, sealed password) of a registered target for `source`'s backup."""
    if restore_target.kind != data_kind:
        raise ValueError(
            f"target {restore_target.name} receives {restore_target.get_kind_display()} "
            f"backups, not {data_kind}"
        )
    compatible = RestoreTarget.objects.compatible_with(source, data_kind)
    if not compatible.filter(pk=restore_target.pk).exists():
        raise ValueError(f"target {restore_target.name} is not registered for {source}")
    if restore_target.kind == RestoreTarget.Kind.POSTGRESQL:
        server = PgServer(
            host=restore_target.host,
            port=restore_target.port or 5432,
            user=restore_target.user or "postgres",
            dbname=restore_targets.database_for(restore_target, database),
        )
        # The sealed secret is copied to the restore, never revealed here.
        return server.public_url(), restore_target.password
    path, _ = validate_target(target_kind_for(data_kind), restore_target.path)
    return path, ""


def target_conflict(kind: str, target: str) -> str:
    """Why `target` may not be written ("" if it may): it overlaps a source or the portal."""
    sources = list(Source.objects.all())
    if kind == TargetKind.DATABASE:
        server = PgServer.from_url(target)
        return restore_targets.database_conflict(server.host, server.port, server.dbname, sources)
    return restore_targets.path_conflict(Path(target).resolve(), sources)


def resolve_target(
    source, data_kind, target, restore_target, database_name, onto_source
) -> tuple[str, str, str]:
    """(target kind, normalised target, password) for the one target chosen; ValueError."""
    kind = target_kind_for(data_kind)
    if onto_source:
        if source.is_portal_db:
            raise ValueError(
                "the portal's own database cannot be restored onto itself from inside the "
                "portal (this restore's own record lives there): restore it to a new database "
                "or file, then swap it in with the portal stopped"
            )
        kind, target, password = source_target(source)
        target, _ = validate_target(kind, target, onto_source=True)
        return kind, target, password
    if restore_target is not None:
        target, password = registered_target(source, data_kind, restore_target, database_name)
    else:
        if not target:
            raise ValueError(
                "give a target: a registered restore target, or (managers) a PostgreSQL URL, "
                "a file path or a directory"
            )
        target, password = validate_target(kind, target)
        if is_source_target(source, target):
            raise ValueError("that is the source itself: choose “onto the source” to overwrite it")
    conflict = target_conflict(kind, target)
    if conflict:
        raise ValueError(conflict)
    return kind, target, password
