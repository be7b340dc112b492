"""Paths chosen by users must stay below the configured allowed roots."""

import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError


def check_allowed_path(value: str, *, must_exist: bool = False) -> Path:
    """Resolve a path (following links and '..') and refuse it outside DR_ALLOWED_ROOTS."""
    if not value or "\x00" in value:
        raise ValidationError("Give an absolute path.")
    path = Path(value)
    if not path.is_absolute():
        raise ValidationError(f"{value} is not an absolute path.")
    resolved = path.resolve()
    roots = settings.DR_ALLOWED_ROOTS
    if not any(resolved == root or root in resolved.parents for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise ValidationError(f"{value} is outside the allowed roots ({allowed}).")
    if must_exist and not resolved.exists():
        raise ValidationError(f"{value} does not exist.")
    return resolved


# --- Files that never leave the host ------------------------------------------
# The key ring, the secret key and the report signing key generated into var/, and the portal's own SQLite
# database: a backup of them in the clear (or even encrypted with the keys it contains)
# hands an attacker every stored secret. The built-in portal-db source is the one
# sanctioned way to back up the database.
KEY_FILES = ("dr_encryption_keys", "django_secret_key", "dr_signing_key")
SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def protected_paths(*, include_portal_db: bool = True) -> list[Path]:
    """Real paths no files or SQLite source may read, whether they exist today or not."""
    var_dir = Path(settings.VAR_DIR)
    paths = [var_dir / name for name in KEY_FILES]
    if include_portal_db:
        db = settings.DATABASES["default"]
        if db["ENGINE"].endswith("sqlite3"):
            names = {str(db["NAME"]), str((db.get("TEST") or {}).get("NAME") or db["NAME"])}
            for name in names:
                if name and not name.startswith(":memory:") and "mode=memory" not in name:
                    paths += [Path(name + suffix) for suffix in SQLITE_SIDE_FILES]
    return sorted({p.resolve() for p in paths})


def protected_problem(value: str, *, include_portal_db: bool = True) -> str:
    """Why a source path may not be backed up ("" if it may): it is, or holds, a protected file."""
    resolved = Path(value).resolve()
    try:
        stat = resolved.stat()
    except OSError:
        stat = None
    for protected in protected_paths(include_portal_db=include_portal_db):
        if resolved == protected or resolved in protected.parents:
            return (
                f"{value} holds {protected}, the portal's key ring, secret key, signing key or "
                "database: these never leave the host (with or without encryption)."
            )
        try:
            same = stat is not None and os.path.samestat(stat, protected.stat())
        except OSError:
            same = False
        if same:
            return f"{value} is {protected} under another name: it never leaves the host."
    return ""
