"""SQLite restores onto a file that may be live, through SQLite's own backup API.

The restored database is copied INTO the live one (`restored.backup(live)`): the inode,
its mode and owner stay, locks are respected, and connected writers see the restored
content on their next transaction instead of writing into a renamed file. Before the
first page is overwritten, while the backup holds the live database's write lock, the
committed state is copied to `<name>.before_restore_<stamp>`: a standalone file in
journal_mode DELETE (no -wal/-shm to pair) that holds every row committed before the
restore took the lock. Writers that keep the lock longer than the busy timeout make the
restore fail with nothing changed.
"""

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from recovery.engine.files import sqlite_integrity
from recovery.engine.pg import RestoreError
from recovery.engine.staging import copy_private, create_private, private_dir

SQLITE_BUSY, SQLITE_LOCKED, SQLITE_DONE = 5, 6, 101
# Pages per backup step. Small enough that the first step never spills the page cache
# (so in rollback-journal mode the file on disk is still the committed state while the
# kept-aside copy is read from it), large enough that a big database is not slow.
STEP_PAGES = 16


class _NotADatabase(Exception):
    """The live target cannot be opened as SQLite (corrupt, or another kind of file)."""


@dataclass
class SqliteRestore:
    kept_aside: str | None = None
    waited_s: float = 0.0  # time spent waiting for other connections' locks
    method: str = ""
    notes: list[str] = field(default_factory=list)


def restore_sqlite(
    restored: str, target: str, stamp: str, *, busy_timeout: float = 60.0
) -> SqliteRestore:
    """Put the SQLite file `restored` at `target`, keeping a live target's data aside.

    The restored copy is staged (0600, exclusive, no-follow) in a private 0700 directory
    beside the target and checked with integrity_check first; the staging directory is
    removed on every path.
    """
    path = Path(target)
    if path.is_symlink():
        raise RestoreError(f"{path} is a symbolic link; refusing to restore through it")
    if os.path.lexists(path) and not path.is_file():
        raise RestoreError(f"{path} exists and is not a regular file; nothing was changed")
    staging = private_dir(path.parent)
    try:
        staged = staging / "restored.db"
        copy_private(restored, staged)
        sqlite_integrity(str(staged))
        if not os.path.lexists(path):
            _link_new(staged, path)
            return SqliteRestore(method="new file (0600)")
        kept = path.with_name(f"{path.name}.before_restore_{stamp}")
        os.close(create_private(kept))  # claims the name; an empty file is an empty database
        try:
            return _into_live(staged, path, kept, busy_timeout)
        except _NotADatabase as exc:
            return _replace_unreadable(staged, path, kept, str(exc))
        except BaseException:
            kept.unlink(missing_ok=True)
            for suffix in ("-journal", "-wal", "-shm"):
                Path(f"{kept}{suffix}").unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _link_new(staged: Path, path: Path) -> None:
    """A hard link never replaces anything: whatever appeared at `path` meanwhile wins."""
    try:
        os.link(staged, path, follow_symlinks=False)
    except FileExistsError:
        raise RestoreError(f"{path} appeared during the restore; nothing was changed") from None
    except OSError as exc:
        raise RestoreError(f"cannot create {path}: {exc.strerror}") from None


def _into_live(staged: Path, path: Path, kept: Path, busy_timeout: float) -> SqliteRestore:
    # Opened before SQLite takes any lock and closed only after every SQLite connection of
    # ours to the file is closed: closing any descriptor of a file drops all of this
    # process's POSIX locks on it, which would let writers in mid-restore.
    raw = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return _into_live_locked(staged, path, kept, busy_timeout, raw)
    finally:
        os.close(raw)


def _mode_and_pages(live, source, path: Path) -> tuple[str, int]:
    """The live database's journal mode and the restored copy's page count; refuses what the
    backup API cannot do (a WAL database with another page size) before anything changes."""
    try:
        mode = live.execute("PRAGMA journal_mode").fetchone()[0].lower()
    except sqlite3.OperationalError as exc:  # locked, unreadable: not a verdict on the file
        raise RestoreError(f"cannot read {path}, nothing was changed: {exc}") from None
    except sqlite3.DatabaseError as exc:  # not a database, malformed
        raise _NotADatabase(str(exc)) from None
    pages = source.execute("PRAGMA page_count").fetchone()[0]
    sizes = (
        source.execute("PRAGMA page_size").fetchone()[0],
        live.execute("PRAGMA page_size").fetchone()[0],
    )
    if mode == "wal" and sizes[0] != sizes[1]:
        raise RestoreError(
            f"{path} uses {sizes[1]}-byte pages and the backup {sizes[0]}-byte pages: SQLite "
            "cannot restore across page sizes into a WAL database; nothing was changed "
            "(restore to a new file, or switch the live database to journal_mode=DELETE)"
        )
    return mode, pages


def _into_live_locked(
    staged: Path, path: Path, kept: Path, busy_timeout: float, raw: int
) -> SqliteRestore:
    header = os.pread(raw, 16, 0)
    if header and header != b"SQLite format 3\x00":
        # Not opened with SQLite at all: it would discard a -wal it cannot pair.
        raise _NotADatabase("the file does not start with the SQLite header")
    try:
        live = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise RestoreError(f"cannot open {path}: {exc}") from None
    source = sqlite3.connect(f"file:{staged}?mode=ro", uri=True)
    try:
        mode, pages = _mode_and_pages(live, source, path)
        result = SqliteRestore(method=f"SQLite backup API into the live database ({mode} mode)")
        state = {"kept": False}
        started = time.monotonic()
        deadline = started + busy_timeout
        # The kept-aside copy is taken after the first step: the copy must not finish in it.
        step = STEP_PAGES if pages > STEP_PAGES else 1
        if pages <= 1:
            # An empty database: one step would finish it. Keep aside now (nothing holds the
            # lock yet, so a write landing in between would be in neither copy; noted).
            _keep_aside(path, kept, mode, busy_timeout, raw)
            state["kept"] = True
            result.notes.append("empty restored database: the old one was kept aside first")

        def progress(status: int, remaining: int, total: int) -> None:
            # The first step waits for the lock in the live connection's busy handler, then
            # returns BUSY when that gives up; SQLite's backup loop would retry forever.
            if status in (SQLITE_BUSY, SQLITE_LOCKED):
                if time.monotonic() > deadline:
                    raise RestoreError(
                        f"other connections kept {path} locked for {busy_timeout:.0f} s; "
                        "nothing was changed (stop the writers or try again)"
                    )
                return
            if not state["kept"]:
                # The backup now holds the live database's write lock and has not committed:
                # what is on disk (and in the WAL) is exactly the last committed state.
                result.waited_s = time.monotonic() - started
                _keep_aside(path, kept, mode, busy_timeout, raw)
                state["kept"] = True

        try:
            source.backup(live, pages=step, progress=progress, sleep=0.05)
        except sqlite3.DatabaseError as exc:
            if not state["kept"] and "not a database" in str(exc):
                raise _NotADatabase(str(exc)) from None
            # The backup writes in one transaction on the live database: a failure rolls it back.
            raise RestoreError(
                f"restoring into {path} failed, nothing was changed: {exc}"
            ) from None
        result.kept_aside = str(kept)
        if result.waited_s >= 0.01:
            result.notes.append(f"waited {result.waited_s:.1f} s for other connections' locks")
        return result
    finally:
        source.close()
        live.close()


def _keep_aside(path: Path, kept: Path, mode: str, busy_timeout: float, raw: int) -> None:
    """Copy the live database's committed state into `kept` (a standalone DELETE-mode file)."""
    if mode == "wal":
        # Committed data may sit in the WAL: read it through SQLite (readers never wait
        # for the writer in WAL mode).
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_timeout)
        copy = sqlite3.connect(str(kept), isolation_level=None)
        try:
            reader.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
            reader.close()
    else:
        # Rollback-journal mode: the file is the committed state while the lock is held
        # (SQLite copies a database file the same way while holding a lock).
        # Read through the descriptor opened before the lock (see _into_live).
        flags = os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW
        with os.fdopen(os.open(kept, flags), "wb") as writer:
            offset = 0
            while block := os.pread(raw, 1024 * 1024, offset):
                writer.write(block)
                offset += len(block)
            writer.flush()
            os.fsync(writer.fileno())
    check = sqlite3.connect(f"file:{kept}?mode=ro", uri=True)
    try:
        check.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise RestoreError(f"the kept-aside copy {kept} cannot be read: {exc}") from None
    finally:
        check.close()


def _replace_unreadable(staged: Path, path: Path, kept: Path, why: str) -> SqliteRestore:
    """The target is not a readable SQLite database (corrupt): rename it aside, with its
    -wal/-shm/-journal renamed to `<kept>-wal` etc. so they stay paired, then link the
    restored file in."""
    os.replace(path, kept)  # over the empty placeholder this restore created
    for suffix in ("-wal", "-shm", "-journal"):
        side = Path(f"{path}{suffix}")
        if os.path.lexists(side):
            os.replace(side, Path(f"{kept}{suffix}"))
    _link_new(staged, path)
    return SqliteRestore(
        kept_aside=str(kept),
        method="renamed aside (not readable as SQLite), restored file put in place",
        notes=[f"the previous file could not be read as SQLite ({why}); it was renamed aside"],
    )
