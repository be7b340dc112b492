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
from datetime import UTC, datetime
from pathlib import Path

from dr_portal.lib.redact import redact

from .errors import SourceError
from .specs import SourceSpec

F_SETPIPE_SZ = 1031  # Linux: a 1 MiB pipe lets pg_dump run ahead while we compress
# pg_dump runs in its own session (so a cancel can kill its group), which also means a worker
# killed by SIGKILL or the OOM killer would leave it running, holding a connection and a
# snapshot until it next writes or its lock wait ends. util-linux's setpriv sets the
# parent-death signal and execs pg_dump (no preexec_fn, which is unsafe beside threads).
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []


def _now() -> datetime:
    return datetime.now(UTC)


class PgDumpStream:
    """`pg_dump -Fc -Z0` of one database; the connection goes through PG* variables, not argv."""

    def __init__(self, config: dict, password: str):
        self.password = password
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
                    *(DIE_WITH_PARENT if shutil.which("pg_dump", path=env.get("PATH")) else []),
                    "pg_dump",
                    "--format=custom",
                    "--compress=0",  # the pipeline compresses, faster and smaller
                    "--no-password",
                    # fail instead of queueing behind an exclusive lock (ALTER TABLE) forever
                    f"--lock-wait-timeout={config.get('lock_wait_timeout') or '300s'}",
                ],
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self._stderr.close()
            raise SourceError(f"cannot start pg_dump: {exc}") from None
        try:
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, 1024 * 1024)
        except OSError:
            pass

    def read(self, size: int) -> bytes:
        return self.proc.stdout.read(size)

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
            reason = f"pg_dump was killed by signal {-code}"
        else:
            reason = f"pg_dump exited with code {code}"
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
        self._root = root
        self._excludes = [p for p in config.get("exclude") or [] if p]
        self._error: BaseException | None = None
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
        return None if info.name not in (".", "") and self._excluded(info.name) else info

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
        if self._error is not None:
            raise SourceError(f"reading {self._root} failed: {self._error}")

    def close(self) -> None:
        self._reader.close()  # a blocked producer gets a broken pipe and ends
        self._thread.join(timeout=30)


def open_source(spec: SourceSpec, scratch_dir: str | None = None):
    if spec.kind == "postgresql":
        if not spec.config.get("database"):
            raise SourceError("postgresql source needs a database name")
        return PgDumpStream(spec.config, spec.password)
    if spec.kind == "sqlite":
        return SqliteStream(spec.config, scratch_dir)
    if spec.kind == "files":
        return TarStream(spec.config)
    raise SourceError(f"unknown source kind {spec.kind!r}")


# What unpack produces for each source kind, for the manifest and the docs.
RESTORE_FORMS = {
    "postgresql": "pg_dump custom archive (pg_restore)",
    "sqlite": "SQLite database file",
    "files": "tar archive (tar -x)",
}
