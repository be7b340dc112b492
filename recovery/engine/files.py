"""SQLite and files restores: a temporary file checked with PRAGMA integrity_check,
a tar extracted into a directory and compared with its own listing."""

import os
import shutil
import sqlite3
import tarfile
from pathlib import Path

from recovery.engine.pg import RestoreError


def sqlite_integrity(path: str) -> None:
    """Raise RestoreError unless PRAGMA integrity_check says ok."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise RestoreError(f"the restored SQLite file cannot be opened: {exc}") from None
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise RestoreError(f"the restored file is not a usable SQLite database: {exc}") from None
    finally:
        conn.close()
    if rows != ["ok"]:
        raise RestoreError("PRAGMA integrity_check: " + "; ".join(rows[:5]))


def tar_listing(tar_path: str) -> dict[str, tuple[str, int]]:
    """{name: (type, size)} of a tar's members."""
    listing = {}
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            for member in tar:
                kind = "dir" if member.isdir() else "file" if member.isfile() else "link"
                listing[member.name.rstrip("/")] = (kind, member.size if member.isfile() else 0)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RestoreError(f"the restored tar cannot be read: {exc}") from None
    return listing


def extract_tar(tar_path: str, target: str) -> dict[str, tuple[str, int]]:
    """Extract safely (no absolute paths, no escaping links) and return the listing."""
    listing = tar_listing(tar_path)
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise RestoreError(f"extracting the files failed: {exc}") from None
    return listing


def compare_tree(target: str, listing: dict[str, tuple[str, int]]) -> list[str]:
    """Differences between an extracted directory and the tar listing (empty = identical)."""
    problems = []
    root = Path(target)
    for name, (kind, size) in sorted(listing.items()):
        if name in ("", "."):
            continue
        path = root / name
        if kind == "dir":
            if not path.is_dir():
                problems.append(f"missing directory {name}")
        elif kind == "file":
            if not path.is_file():
                problems.append(f"missing file {name}")
            elif path.stat().st_size != size:
                problems.append(f"{name}: {path.stat().st_size} bytes, expected {size}")
        elif not os.path.lexists(path):
            problems.append(f"missing link {name}")
    return problems


def keep_aside(path: Path, suffix: str) -> Path | None:
    """Move an existing file or directory to `<path>.<suffix>`; return where it went."""
    if not os.path.lexists(path):
        return None
    aside = path.with_name(f"{path.name}.{suffix}")
    if os.path.lexists(aside):
        raise RestoreError(f"{aside} already exists; not overwriting it")
    shutil.move(str(path), str(aside))
    return aside
