"""Where a restore may write: registered restore targets, and who may choose what.

Operators restore only to scratch (a restore test) or to a target a manager registered
for the source's kind; a free-form target (any host, credentials or path), replacing
data at an existing target and restoring onto the source itself are for managers.
A target never overlaps a source's own data, the portal's database or its var dir.
"""

import fnmatch
import ipaddress
import re
import socket
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied

from backups.models import Destination
from dr_portal.lib import paths
from dr_portal.lib.roles import MANAGER, has_role

SYSTEM_DATABASES = ("postgres", "template0", "template1")
# A PostgreSQL database name as the portal writes it: no quoting tricks, at most 63 bytes.
DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
DB_PATTERN = re.compile(r"^[A-Za-z_*][A-Za-z0-9_*]{0,62}$")


class NotAllowed(PermissionDenied):
    """The person asking may not restore there; the message says who may."""


def is_pattern(database: str) -> bool:
    return "*" in (database or "")


def database_problem(database: str) -> str:
    """Why a registered database name or pattern is unusable ("" when it is fine)."""
    if not database:
        return "Give the database to restore into, or a pattern such as restored_*."
    if not DB_PATTERN.match(database):
        return "Use letters, digits, underscores and * only, at most 63 characters."
    if database in SYSTEM_DATABASES:
        return f"{database} is a system database."
    if is_pattern(database) and not database.replace("*", ""):
        return "A pattern needs a fixed part, such as restored_*."
    return ""


def database_for(target, requested: str) -> str:
    """The database a restore to `target` writes: its fixed name, or `requested` on its pattern."""
    if not is_pattern(target.database):
        if requested and requested != target.database:
            raise ValueError(f"target {target.name} restores into {target.database} only")
        return target.database
    requested = (requested or "").strip()
    if not requested:
        raise ValueError(f"target {target.name} needs a database name matching {target.database}")
    if not DB_NAME.match(requested) or requested in SYSTEM_DATABASES:
        raise ValueError(f"{requested!r} is not a usable database name")
    if not fnmatch.fnmatchcase(requested, target.database):
        raise ValueError(f"{requested} does not match {target.database} (target {target.name})")
    return requested


# --- what a target must never touch ----------------------------------------------


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def protected_paths() -> list[Path]:
    """The portal's own files: its whole var dir, and the files no source may read either
    (key ring, secret key, the SQLite database with its -wal/-shm/-journal)."""
    return [Path(settings.VAR_DIR).resolve(), *paths.protected_paths()]


def path_conflict(path: Path, sources) -> str:
    """Why `path` may not be a restore target ("" when it may): it overlaps protected data."""
    for protected in protected_paths():
        if _overlaps(path, protected):
            return f"{path} overlaps the portal's own files ({protected})"
    for source in sources:
        kind, own = _source_location(source)
        if kind != "postgresql" and own and _overlaps(path, Path(own).resolve()):
            return f"{path} overlaps the data of source {source.name}"
        data_dir = getattr(source, "data_directory", "")
        if data_dir and _overlaps(path, Path(data_dir).resolve()):
            return f"{path} overlaps the data directory of source {source.name}"

    for dest in Destination.objects.filter(kind="local").only("name", "path"):
        if dest.path and _overlaps(path, Path(dest.path).resolve()):
            return f"{path} overlaps the backups kept at destination {dest.name}"
    return ""


def database_conflict(host: str, port: int, database: str, sources) -> str:
    """Why a PostgreSQL target may not be used: it is a source's (or the portal's) database."""
    candidates = [database] if not is_pattern(database) else []
    for source in sources:
        kind, own = _source_location(source)
        if kind != "postgresql":
            continue
        s_host, s_port, s_db = own
        if not (
            s_db in candidates or (is_pattern(database) and fnmatch.fnmatchcase(s_db, database))
        ):
            continue
        if int(s_port) != int(port or 5432) or not same_host(s_host, host):
            continue
        return f"{s_db} on {host}:{port or 5432} is the database of source {source.name}"
    return ""


def same_host(a: str, b: str) -> bool:
    """Do two host names reach the same server? (localhost and 127.0.0.1 are one host.)"""
    a, b = (a or "localhost").lower(), (b or "localhost").lower()
    if a == b:
        return True
    if a.startswith("/") or b.startswith("/"):
        return False  # a Unix socket directory is named, not resolved
    return bool(_addresses(a) & _addresses(b))


def _addresses(host: str) -> set[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return {host}
    addresses = {info[4][0] for info in infos}
    if any(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        addresses.add("loopback")  # ::1 and 127.0.0.1 are the same machine
    return addresses


def _source_location(source):
    """(kind, (host, port, database) or path) of a source, without revealing its password."""
    if source.is_portal_db:
        kind, config, _ = source.portal_db_spec_config()
    else:
        kind = source.kind
        config = {
            "host": source.host,
            "port": source.port,
            "database": source.database,
            "path": source.path,
        }
    if kind == "postgresql":
        return kind, (config["host"] or "", config.get("port") or 5432, config["database"])
    return kind, config.get("path") or ""


# --- who may choose what ---------------------------------------------------------


def check_allowed(
    user,
    *,
    source,
    restore_target=None,
    free_form: bool = False,
    onto_source: bool = False,
    overwrite: bool = False,
):
    """Raise NotAllowed unless `user` may start this restore.

    `user=None` is a trusted caller: `manage.py restore`, run by someone with a shell on the
    host, which asks for its own explicit flag before a free-form target.
    """
    if user is None or has_role(user, MANAGER):
        return
    # A manager of the source's system may restore onto it and replace data at a registered
    # target; a free-form target can name any host (another system's server), so it stays
    # with global managers.
    system_manager = has_role(user, MANAGER, source.system_id)
    if onto_source:
        if system_manager:
            return
        raise NotAllowed("Only managers may restore onto the source itself.")
    if free_form or restore_target is None:
        raise NotAllowed(
            "Only managers may restore to a free-form target: choose a registered restore "
            "target, or run a restore test to prove the backup in scratch."
        )
    if overwrite and not restore_target.allow_replace and not system_manager:
        raise NotAllowed(f"Only managers may replace data already at target {restore_target.name}.")
    if source.is_portal_db and not restore_target.sources.filter(pk=source.pk).exists():
        raise NotAllowed(
            "The portal's own database is restored only to a target registered for it by name."
        )
