"""Private places for restores: nothing another local user can predict, read or plant.

A restore stages in a fresh 0700 directory (random name, created with mkdir's exclusive
semantics) on the target's own file system, so the final move is a rename. Files are
created with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600: a symlink planted at the path is
never followed, an existing file never reused.
"""

import os
import shutil
import stat
import tempfile
from pathlib import Path

from recovery.engine.pg import RestoreError

PRIVATE_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def private_dir(parent: Path | str, prefix: str = ".dr-restore-") -> Path:
    """A new 0700 directory inside `parent` (mkdtemp: random name, exclusive create)."""
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=str(parent)))
    except OSError as exc:
        raise RestoreError(
            f"cannot create a staging directory in {parent}: {exc.strerror}"
        ) from None


def create_private(path: Path | str) -> int:
    """Create a new 0600 file exclusively, never through a symlink; return its descriptor."""
    try:
        fd = os.open(path, PRIVATE_FILE, 0o600)
    except FileExistsError:
        raise RestoreError(f"{path} already exists; not overwriting it") from None
    except OSError as exc:
        raise RestoreError(f"cannot create {path}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)  # whatever the umask
    return fd


def copy_private(src: Path | str, dst: Path | str) -> None:
    """Copy `src` into a new 0600 file `dst` (see create_private), synced to disk."""
    with open(src, "rb") as reader, os.fdopen(create_private(dst), "wb") as writer:
        shutil.copyfileobj(reader, writer, 1024 * 1024)
        writer.flush()
        os.fsync(writer.fileno())


def staging_leftovers(targets, older_than_s: float, now: float) -> list[Path]:
    """Staging directories a killed restore left beside its target (or inside it, for a
    mount point): ours (owner and 0700), real directories, untouched for `older_than_s`.
    Kept-aside data (`.dr-kept-aside-*`, `*.before_restore_*`) never matches."""
    found = set()
    for target in targets:
        path = Path(target)
        for where in (path.parent, path):
            try:
                entries = list(where.glob(".dr-restore-*")) if where.is_dir() else []
            except OSError:
                continue
            for entry in entries:
                try:
                    st = entry.lstat()
                except OSError:
                    continue
                if (
                    stat.S_ISDIR(st.st_mode)
                    and st.st_uid == os.geteuid()
                    and stat.S_IMODE(st.st_mode) == 0o700
                    and now - st.st_mtime > older_than_s
                ):
                    found.add(entry)
    return sorted(found)
