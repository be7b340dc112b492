"""Source readers: pg_dump custom archive, SQLite online backup, tar of a directory.

Each opens as a stream with read(n), finish() (raises SourceError if the source did not
complete) and close() (always; kills child processes, removes temporary files).
"""

import fcntl
import fnmatch
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from dr_portal.lib.redact import redact

from .errors import SourceError

F_SETPIPE_SZ = 1031  # Linux: a 1 MiB pipe lets pg_dump run ahead while we compress
F_GETPIPE_SZ = 1032
PIPE_SIZE = 1024 * 1024
# pg_dump writes 4 KiB at a time: a reader that wakes for each write costs two context
# switches per 4 KiB. After a short read the reader naps this long so the next read takes
# a large piece; a 1 MiB pipe holds ~4 ms of the fastest dump, so pg_dump never waits.
COALESCE_BELOW = 128 * 1024
COALESCE_NAP = 0.001
# pg_dump runs in its own session (so a cancel can kill its group), which also means a worker
# killed by SIGKILL or the OOM killer would leave it running, holding a connection and a
# snapshot until it next writes or its lock wait ends. util-linux's setpriv sets the
# parent-death signal and execs pg_dump (no preexec_fn, which is unsafe beside threads).
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


def _now() -> datetime:
    return datetime.now(UTC)


class Protected:
    """Real paths a source must never read (the portal's keys and database), as the spec lists
    them in config["protected"]. Checked by path before reading starts and by inode for every
    file read, so a parent directory, a symlink or a hard link cannot smuggle one out.
    A backup that meets one fails: skipping it silently would hide the misconfiguration.
    """

    def __init__(self, paths: list[str] | None):
        self.paths = [Path(p).resolve() for p in paths or []]
        self._ids: dict[tuple[int, int], Path] = {}
        for path in self.paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            self._ids[(st.st_dev, st.st_ino)] = path

    def refuse_path(self, value: str | Path) -> None:
        """Raise SourceError if `value` (after following links) is or contains a protected path."""
        resolved = Path(value).resolve()
        for path in self.paths:
            if resolved == path or resolved in path.parents:
                raise SourceError(self._message(value, path))
        try:
            st = os.stat(resolved)
        except OSError:
            return
        self.refuse_inode(st, value)

    def refuse_inode(self, st: os.stat_result, name: str | Path) -> None:
        path = self._ids.get((st.st_dev, st.st_ino))
        if path is not None:
            raise SourceError(self._message(name, path))

    @staticmethod
    def _message(name, path) -> str:
        return (
            f"refusing to back up {name}: it is or contains {path}, the portal's key ring, "
            "secret key or database, which never leave this host"
        )


class PgDumpStream:
    """`pg_dump -Fc -Z0` of one database; the connection goes through PG* variables, not argv.

    A custom archive always holds the database's own entries (encoding, locale, owner,
    ACL, settings, comment; `--create` only matters for plain SQL output): restores read
    them from its TOC (recovery.engine.pgarchive).
    """

    program = "pg_dump"
    parent_death = DIE_WITH_PARENT  # what runs pg_dump so the worker's death ends it

    def arguments(self, config: dict) -> list[str]:
        return [
            "pg_dump",
            "--format=custom",
            "--compress=0",  # the pipeline compresses, faster and smaller
            "--no-password",
            # fail instead of queueing behind an exclusive lock (ALTER TABLE) forever
            f"--lock-wait-timeout={config.get('lock_wait_timeout') or '300s'}",
        ]

    def __init__(self, config: dict, password: str):
        self.password = password
        args = self.arguments(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        # Environment variables are never parsed as conninfo strings, unlike a dbname argument.
        env.update(
            PGHOST=str(config.get("host") or "127.0.0.1"),
            PGPORT=str(config.get("port") or 5432),
            PGDATABASE=str(config["database"]),
            PGUSER=str(config.get("user") or "postgres"),
            PGCONNECT_TIMEOUT=str(config.get("connect_timeout", 15)),
            PGAPPNAME="dr-portal backup",
        )
        if config.get("sslmode"):
            env["PGSSLMODE"] = str(config["sslmode"])
        if password:
            env["PGPASSWORD"] = password  # never on the command line (visible in ps)
        self._stderr = tempfile.TemporaryFile()
        # pg_dump takes its snapshot as it starts: this is the data timestamp.
        self.data_taken_at = _now()
        try:
            self.proc = subprocess.Popen(
                [
                    *(
                        self.parent_death
                        if shutil.which(self.program, path=env.get("PATH"))
                        else []
                    ),
                    *args,
                ],
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._stderr.close()
            raise SourceError(f"cannot start {self.program}: {exc}") from None
        self._fd = self.proc.stdout.fileno()
        try:
            fcntl.fcntl(self._fd, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        # Napping on a default 64 KiB pipe would throttle pg_dump: coalesce only on a big one.
        self._nap = COALESCE_NAP if fcntl.fcntl(self._fd, F_GETPIPE_SZ) >= PIPE_SIZE else 0.0

    def readinto(self, buffer) -> int:
        """Fill `buffer` from pg_dump's pipe in few large reads; fewer bytes only at the end."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            got = os.readv(self._fd, [view[filled:]])
            if not got:
                break
            filled += got
            if got < COALESCE_BELOW and self._nap:
                time.sleep(self._nap)
        return filled

    def read(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(buffer)])

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read()[-4000:].decode(errors="replace").strip()
        return redact(text, [self.password])

    def finish(self) -> None:
        code = self.proc.wait()
        if code == 0:
            return
        detail = self._stderr_tail()
        if code < 0:
            reason = f"{self.program} was killed by signal {-code}"
        else:
            reason = f"{self.program} exited with code {code}"
        raise SourceError(f"{reason}: {detail}" if detail else reason)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.stdout.close()
        self.proc.wait()
        self._stderr.close()


class PgGlobalsStream(PgDumpStream):
    """`pg_dumpall --globals-only --no-role-passwords`: roles, memberships, role settings and
    tablespaces of the source's server, as a SQL script for psql.

    Without password hashes: pg_authid is readable only by superusers, and a backup that
    holds every role's password hash is a credential store. Restored roles get no password.
    """

    program = "pg_dumpall"

    def arguments(self, config: dict) -> list[str]:
        database = str(config["database"])
        # pg_dumpall ignores PGDATABASE; -l would parse a conninfo string, so refuse one.
        if "=" in database or "://" in database:
            raise SourceError("the database name must not look like a connection string")
        return [
            "pg_dumpall",
            "--globals-only",
            "--no-role-passwords",
            "--no-password",
            "-l",
            database,
        ]


class SqliteStream:
    """The online backup API into a temporary file, then the file is streamed.

    The temporary copy is the one full extra copy DESIGN.md allows: SQLite has no
    streaming snapshot, and the backup API is what keeps the copy consistent while the
    application writes.
    """

    def __init__(self, config: dict, scratch_dir: str | None):
        path = Path(config["path"])
        if not path.is_file():
            raise SourceError(f"SQLite database not found: {path}")
        Protected(config.get("protected")).refuse_path(path)
        self._dir = tempfile.mkdtemp(prefix="dr-sqlite-", dir=scratch_dir)
        copy_path = os.path.join(self._dir, "copy.db")
        try:
            # A plaintext copy of the database: 0600 whatever the umask, never through a link.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            os.close(os.open(copy_path, flags, 0o600))
            os.chmod(copy_path, 0o600)
            src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                dst = sqlite3.connect(copy_path)
                try:
                    # One step (pages=-1): one read transaction, so one consistent snapshot,
                    # taken when the step starts. WAL databases keep accepting writes; in
                    # rollback-journal mode writers wait for the copy (their busy timeout).
                    self.data_taken_at = _now()
                    src.backup(dst, pages=-1)
                finally:
                    dst.close()
            finally:
                src.close()
            self._file = open(copy_path, "rb")  # noqa: SIM115 - closed in close()
        except (sqlite3.Error, OSError) as exc:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise SourceError(f"SQLite backup of {path} failed: {exc}") from None

    def read(self, size: int) -> bytes:
        return self._file.read(size)

    def finish(self) -> None:
        pass

    def close(self) -> None:
        self._file.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class _ReportingTar(tarfile.TarFile):
    """tarfile skips what it cannot store (sockets) silently: name each one instead."""

    not_kept: list[str]

    def gettarinfo(self, name=None, arcname=None, fileobj=None):
        info = super().gettarinfo(name, arcname, fileobj)
        if info is None:
            try:
                kind = "a socket" if stat.S_ISSOCK(os.lstat(name).st_mode) else "unsupported"
            except OSError:
                kind = "unreadable"
            self.not_kept.append(f"{arcname or name} ({kind}: tar cannot store it)")
        return info


class TarStream:
    """A PAX tar (any file name survives) of a directory, produced by a thread into a pipe.

    Symlinks (stored as links, absolute targets as written), hard links, FIFOs, device
    files, modes with setuid/setgid/sticky, owners (numeric and by name) and mtimes (with
    sub-second precision in PAX headers) are all kept; what cannot be stored is listed in
    `warnings` for the run to report.
    """

    def __init__(self, config: dict):
        root = Path(config["path"])
        if not root.is_dir():
            raise SourceError(f"directory not found or not readable: {root}")
        self._protected = Protected(config.get("protected"))
        self._protected.refuse_path(root)
        self._root = root
        self._excludes = [p for p in config.get("exclude") or [] if p]
        self._error: BaseException | None = None
        self._refused: SourceError | None = None
        self.warnings: list[str] = []
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb")
        self._writer = os.fdopen(write_fd, "wb")
        self.data_taken_at = _now()
        self._thread = threading.Thread(target=self._produce, name="tar-source", daemon=True)
        self._thread.start()

    def _excluded(self, name: str) -> bool:
        rel = name[2:] if name.startswith("./") else name
        base = rel.rsplit("/", 1)[-1]
        return any(
            fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(base, pattern)
            for pattern in self._excludes
        )

    def _filter(self, info: tarfile.TarInfo):
        if info.name not in (".", "") and self._excluded(info.name):
            return None
        if info.isreg() and self._protected.paths:
            # tar stores symlinks as links, but a hard link (or a bind mount) shows the key
            # ring's own inode: stop before its bytes are read.
            path = os.path.join(self._root, info.name)
            try:
                self._protected.refuse_inode(os.lstat(path), path)
            except SourceError as exc:
                self._refused = exc
                raise
        return info

    def _produce(self) -> None:
        try:
            with _ReportingTar.open(
                fileobj=self._writer,
                mode="w|",
                format=tarfile.PAX_FORMAT,
                copybufsize=1024 * 1024,  # the 16 KiB default is slow for big files
            ) as tar:
                tar.not_kept = self.warnings
                tar.add(str(self._root), arcname=".", recursive=True, filter=self._filter)
        except BaseException as exc:  # reported by finish()
            self._error = exc
        finally:
            try:
                self._writer.close()
            except OSError:
                pass

    def read(self, size: int) -> bytes:
        return self._reader.read(size)

    def finish(self) -> None:
        self._thread.join()
        if self._refused is not None:
            raise self._refused
        if self._error is not None:
            raise SourceError(f"reading {self._root} failed: {self._error}")

    def close(self) -> None:
        self._reader.close()  # a blocked producer gets a broken pipe and ends
        self._thread.join(timeout=30)


# What unpack produces for each source kind, for the manifest and the docs.
RESTORE_FORMS = {
    "postgresql": "pg_dump custom archive (pg_restore)",
    "pg_globals": "pg_dumpall --globals-only SQL script (psql)",
    "sqlite": "SQLite database file",
    "files": "tar archive (tar -x)",
}
