"""A real PostgreSQL cluster archiving into a real pgBackRest repository, and a writer.

`pitr_cluster()` runs initdb as the postgres OS user on a free port (unix socket in its
own directory, loopback TCP for the tests), appends the lines `postgresql_conf_lines()`
prints (archive_timeout small), writes the pgBackRest configuration for a local repository
in a temporary directory and runs stanza-create. `Writer` inserts a row every ~0.2 s and
the portal heartbeat every second, so a restore has commits to land between.

Everything runs as the `postgres` OS user when the tests run as root (the usual case in
CI), like the failover tests (tests/failover/test_pg_failover.py).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import psycopg

from backups.engine import pgbackrest
from recovery.engine import heartbeat
from recovery.engine.pg import PgServer

BIN = Path("/usr/lib/postgresql/15/bin")
OS_USER = "postgres"
ARCHIVE_TIMEOUT_S = 5
CIPHER_PASS = "test-cipher-pass-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(*args, timeout=120) -> str:
    prefix = ["runuser", "-u", OS_USER, "--"] if os.geteuid() == 0 else []
    done = subprocess.run(
        [*prefix, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd="/"
    )
    if done.returncode != 0:
        raise AssertionError(f"{args[0]} failed: {done.stdout}{done.stderr}")
    return done.stdout


def owned_tempdir(prefix: str) -> Path:
    """A temporary directory the postgres OS user owns (it writes the repo and clusters)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, OS_USER, OS_USER)
    path.chmod(0o755)
    return path


@dataclass
class Cluster:
    base: Path
    port: int
    stanza: pgbackrest.Stanza
    started: bool = False
    extra_conf: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> str:
        return str(self.base / "sock")

    @property
    def repo_dir(self) -> Path:
        return Path(self.stanza.repos[0].path) / "pgbackrest"

    def connect(self, dbname: str = "postgres"):
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def sql(self, query: str, *params):
        with self.connect() as conn:
            cur = conn.execute(query, params or None)
            return cur.fetchall() if cur.description else None

    def pg_ctl(self, *args):
        as_postgres(BIN / "pg_ctl", "-D", self.data, "-l", self.base / "server.log", *args)

    def start(self):
        self.pg_ctl("-w", "start")
        self.started = True

    def restart(self):
        self.pg_ctl("-w", "-m", "fast", "restart")

    def stop(self):
        if self.started:
            as_postgres(BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            self.started = False

    def archive_lines(self) -> list[str]:
        return pgbackrest.postgresql_conf_lines(self.stanza)


def make_stanza(
    base: Path,
    port: int,
    name: str = "pitrtest",
    cipher: bool = True,
    repos: tuple = (),
    cipher_pass: str = "",
):
    return pgbackrest.Stanza(
        name=name,
        pg_data=str(base / "data"),
        pg_port=port,
        pg_user="postgres",
        pg_socket_dir=str(base / "sock"),
        repos=repos or (pgbackrest.Repo(kind="local", path=str(base / "repo")),),
        cipher_pass=(cipher_pass or CIPHER_PASS) if cipher else "",
        config_dir=str(base / "conf"),
        os_user=OS_USER if os.geteuid() == 0 else "",
        pg_bin_dir=str(BIN),
        archive_timeout_s=ARCHIVE_TIMEOUT_S,
    )


@contextmanager
def pitr_cluster(
    *,
    archiving: bool = True,
    name: str = "pitrtest",
    cipher: bool = True,
    repos: tuple = (),
    stanza=None,
    cipher_pass: str = "",
):
    """A running cluster; with `archiving`, its archive lines in effect and the stanza made.
    `repos` replaces the default local repository (in the cluster's temporary directory);
    `cipher_pass` the test passphrase (a portal source's derived one, for Source.to_stanza);
    `stanza(base, port)`, when given, builds the whole stanza (a portal source's)."""
    base = owned_tempdir("dr-pitr-test-")
    port = free_port()
    made = (
        stanza(base, port) if stanza else make_stanza(base, port, name, cipher, repos, cipher_pass)
    )
    cluster = Cluster(base, port, made)
    try:
        (base / "sock").mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(base / "sock", OS_USER, OS_USER)
        as_postgres(
            BIN / "initdb", "-D", cluster.data, "-U", "postgres", "-A", "trust", "--no-sync"
        )
        lines = [
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{cluster.socket_dir}'",
            "fsync = off",
            "shared_buffers = 16MB",
            "track_commit_timestamp = on",  # the tests compare rows by their commit time
            "autovacuum = off",  # no commits but the writer's: the tests pick points between
        ]
        if archiving:
            lines += cluster.archive_lines()
        with open(cluster.data / "postgresql.conf", "a") as conf:
            conf.write("\n" + "\n".join(lines) + "\n")
        cluster.start()
        pgbackrest.stanza_create(cluster.stanza)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


ROWS_TABLE = "pitr_rows"


class Writer(threading.Thread):
    """Inserts a row every `every` seconds and writes the heartbeat each second, until
    stopped. Each row's commit time is what recovery_target_time compares against:
    `commit_times()` reads it back with pg_xact_commit_timestamp (track_commit_timestamp)."""

    def __init__(self, cluster: Cluster, every: float = 0.2):
        super().__init__(daemon=True)
        self.cluster, self.every = cluster, every
        self.halt = threading.Event()
        self.error: BaseException | None = None
        cluster.sql(
            f"CREATE TABLE IF NOT EXISTS {ROWS_TABLE} (id serial PRIMARY KEY,"
            " committed_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        self.server = PgServer(host="127.0.0.1", port=cluster.port, user="postgres")

    def run(self):
        last_beat = 0.0
        try:
            with self.cluster.connect() as conn:
                while not self.halt.wait(self.every):
                    conn.execute(f"INSERT INTO {ROWS_TABLE} DEFAULT VALUES")
                    if time.monotonic() - last_beat >= 1:
                        heartbeat.write_pg(self.server)
                        last_beat = time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def stop(self):
        self.halt.set()
        self.join(timeout=10)
        if self.error:
            raise AssertionError(f"the writer failed: {self.error!r}")


def commit_times(conn) -> list[tuple[int, datetime]]:
    """(id, commit time) of every row, in id order."""
    return conn.execute(
        f"SELECT id, pg_xact_commit_timestamp(xmin) FROM {ROWS_TABLE} ORDER BY id"
    ).fetchall()


def wait_until(predicate, timeout: float = 60, every: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def with_cipher(stanza: pgbackrest.Stanza, passphrase: str) -> pgbackrest.Stanza:
    return replace(stanza, cipher_pass=passphrase)
