"""Parallel dumps: `pg_dump -Fd -j N -Z0` into private staging, read back as one tar.

A custom-format dump is one stream written by one process; big databases need several
connections dumping tables at once, which only the directory format allows. pg_dump
writes the directory into a fresh 0700 staging directory on the worker; when it has
exited 0, the directory is read as a USTAR tar (toc.dat first, then the data files in
name order, fixed owner, mode and mtime: the same dump always gives the same bytes), and
that stream goes through the pipeline's compression, encryption, checksums and atomic
commit like any artifact. Restores unpack it (recovery/engine/dumpdir.py, or `tar -x`
without the portal) and run `pg_restore -j N` on the directory.

The staging directory is removed in every outcome: close() kills pg_dump's process group
first (its workers too), so a cancel or a failure never leaves a dump behind, and the
per-run scratch directory it lives in is swept if the worker itself dies.
"""

import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import psycopg

from .errors import SourceError
from .sources import PgDumpStream

log = logging.getLogger(__name__)

MAX_PARALLEL = 16
TAR_BLOCK = 512
READ_CHUNK = 1024 * 1024
# Kept free beside the dump: a full file system fails pg_dump and everything else there.
SPACE_MARGIN = 64 * 1024 * 1024
# What pg_dump -Fd writes (-Z0: no .gz/.lz4/.zst suffixes); anything else is not ours.
DUMP_FILE_NAMES = r"^(toc\.dat|blobs(_\d+)?\.toc|(blob_)?\d+\.dat)$"

# pg_dump -j forks its workers, and a parent-death signal set on the leader is not
# inherited: a worker process killed by SIGKILL, the OOM killer or the task timeout would
# leave the workers dumping into staging until their table ends (hours for a big one). A
# shell leads the process group instead: the worker's death sends it SIGTERM, and it kills
# the whole group (itself, pg_dump and every worker). Otherwise it exits with pg_dump's status.
GROUP_GUARD = 'trap "kill -KILL 0" TERM; "$@" & wait $!'
DIE_WITH_GROUP = (
    ["setpriv", "--pdeathsig", "TERM", "--", "sh", "-c", GROUP_GUARD, "pg_dump"]
    if shutil.which("setpriv")
    else []
)

# Heap and TOAST of every table and materialized view: close to what an uncompressed
# dump writes (COPY text of compressed TOAST can be larger; SPACE_MARGIN absorbs some).
_SIZE_QUERY = (
    "SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c WHERE c.relkind IN ('r', 'm')"
)
_DATABASE_SIZE = "SELECT pg_database_size(current_database())"


def parallel_jobs(config: dict) -> int:
    """The source's `parallel` (1 when absent); SourceError when out of range."""
    value = config.get("parallel") or 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLEL:
        raise SourceError(f"parallel must be a whole number from 1 to {MAX_PARALLEL}")
    return value


def _human(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def estimate_dump_size(config: dict, password: str) -> int | None:
    """About how many bytes the uncompressed dump takes; None when the source cannot say
    (pg_dump then reports the connection problem itself)."""
    try:
        with psycopg.connect(
            host=str(config.get("host") or "127.0.0.1"),
            port=int(config.get("port") or 5432),
            dbname=str(config["database"]),
            user=str(config.get("user") or "postgres"),
            password=password or None,
            sslmode=config.get("sslmode") or None,
            connect_timeout=int(config.get("connect_timeout", 15)),
            application_name="dr-portal backup",
        ) as conn:
            # pg_table_size locks each table: never queue behind an ALTER TABLE for it
            conn.execute("SET lock_timeout = '2s'")
            try:
                return int(conn.execute(_SIZE_QUERY).fetchone()[0])
            except psycopg.errors.LockNotAvailable:
                conn.rollback()
                # the whole database with its indexes: more than the dump, but lock-free
                return int(conn.execute(_DATABASE_SIZE).fetchone()[0])
    except (psycopg.Error, OSError, ValueError) as exc:
        log.warning("cannot estimate the dump size of %s: %s", config.get("database"), exc)
        return None


def check_free_space(parent: str, needed: int | None) -> None:
    """SourceError naming both figures when `parent` has less room than the dump needs."""
    if needed is None:
        return
    free = shutil.disk_usage(parent).free
    if free < needed + SPACE_MARGIN:
        raise SourceError(
            f"not enough free space for a parallel dump in {parent}: the tables take about "
            f"{_human(needed)} uncompressed and {_human(free)} is free (keeping "
            f"{_human(SPACE_MARGIN)} spare); free space there, point the worker's scratch "
            "directory elsewhere, or set the job's parallel to 1 (a streamed dump needs no "
            "staging)"
        )


def tar_members(directory: Path) -> list[Path]:
    """The dump's files in the tar's order: toc.dat first (a reader can plan from it),
    then the rest by name. Sub-directories, links and special files are refused."""
    files = []
    for entry in os.scandir(directory):
        if not entry.is_file(follow_symlinks=False):
            raise SourceError(f"unexpected entry in the dump directory: {entry.name}")
        files.append(entry.name)
    if "toc.dat" not in files:
        raise SourceError("pg_dump wrote no toc.dat")
    files.sort(key=lambda name: (name != "toc.dat", name))
    return [directory / name for name in files]


def tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def iter_tar(directory: Path, chunk: int = READ_CHUNK):
    """The directory as a USTAR byte stream, file by file, in `chunk`-sized pieces."""
    for path in tar_members(directory):
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            yield tar_header(path.name, size)
            left = size
            while left:
                data = fh.read(min(chunk, left))
                if not data:
                    raise SourceError(f"{path.name} shrank while it was read")
                left -= len(data)
                yield data
        pad = -size % TAR_BLOCK
        if pad:
            yield b"\0" * pad
    yield b"\0" * (2 * TAR_BLOCK)  # end of archive


class PgDirectoryDumpStream(PgDumpStream):
    """`pg_dump -Fd -j N -Z0` into a private staging directory, then read as one tar.

    read() blocks until pg_dump has finished (the pipeline's cancel and progress checks
    keep running meanwhile); a failed pg_dump reads as end of stream and finish() raises
    its error.
    """

    parent_death = DIE_WITH_GROUP

    def __init__(self, config: dict, password: str, scratch_dir: str | None):
        self.jobs = parallel_jobs(config)
        parent = scratch_dir or tempfile.gettempdir()
        check_free_space(parent, estimate_dump_size(config, password))
        self.staging = Path(tempfile.mkdtemp(prefix="dr-pgdump-", dir=parent))  # 0700
        self.dump_dir = self.staging / "dump"  # pg_dump creates it and refuses an existing one
        self._chunks = None
        self._pending = memoryview(b"")
        try:
            super().__init__(config, password)
        except BaseException:
            shutil.rmtree(self.staging, ignore_errors=True)
            raise

    def arguments(self, config: dict) -> list[str]:
        return [
            "pg_dump",
            "--format=directory",
            f"--jobs={self.jobs}",
            "--compress=0",  # the pipeline compresses the whole tar
            f"--file={self.dump_dir}",
            "--no-password",
            f"--lock-wait-timeout={config.get('lock_wait_timeout') or '300s'}",
        ]

    def _next_chunk(self) -> bytes:
        if self._chunks is None:
            if self.proc.wait() != 0:
                return b""  # finish() reports pg_dump's error
            self._chunks = iter_tar(self.dump_dir)
        return next(self._chunks, b"")

    def readinto(self, buffer) -> int:
        """Fill `buffer` from the tar stream (the pipeline reads through readinto when a
        source has it: the inherited one would read pg_dump's empty stdout)."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._pending:
                self._pending = memoryview(self._next_chunk())
                if not self._pending:
                    break  # end of the tar (iter_tar yields no empty piece before it)
            n = min(len(self._pending), len(view) - filled)
            view[filled : filled + n] = self._pending[:n]
            self._pending = self._pending[n:]
            filled += n
        return filled

    def close(self) -> None:
        try:
            super().close()  # kills pg_dump and its workers first
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    @property
    def manifest_fields(self) -> dict:
        """What the manifest says about this artifact (restores and the no-portal docs)."""
        return {
            "dump_format": "directory",
            "parallel": self.jobs,
            "restore_as": (
                "tar of a pg_dump directory-format dump "
                f"(tar -x, then pg_restore -j {self.jobs} on the directory)"
            ),
        }
