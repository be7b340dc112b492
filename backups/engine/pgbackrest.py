"""Point-in-time recovery on pgBackRest: the portal writes its configuration and drives it.

pgBackRest takes base backups, archives WAL, keeps both, encrypts and restores; the portal
owns configuration, schedules, tests and evidence. One source is one stanza; its
repositories are the source's destinations. Plain Python, no Django: the backups app builds
a `Stanza` from a source (`Source.to_stanza()`) and calls these functions.

INTERFACE SKELETON — filled in by the engine work of issue 16.
"""

from dataclasses import dataclass, field
from datetime import datetime

from .errors import EngineError

BACKUP_TYPES = ("full", "diff", "incr")


class PgBackRestError(EngineError):
    """pgBackRest failed or is not set up; the message names what is missing, never a secret."""


@dataclass(frozen=True)
class Repo:
    """One repository: a local directory (the repo lives in `<path>/pgbackrest`) or S3."""

    kind: str  # "local" | "s3"
    path: str = ""
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    region: str = ""
    storage_class: str = "STANDARD"
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    ca_file: str = ""  # a private CA for an S3-compatible store's TLS certificate


@dataclass(frozen=True)
class Stanza:
    """A PostgreSQL cluster under pgBackRest, and where the portal keeps its files."""

    name: str  # the source's name; letters, digits, '.', '_' and '-'
    pg_data: str  # the cluster's data directory
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_socket_dir: str = ""  # blank: libpq's default
    pg_host: str = ""  # blank: the cluster is on this host; else pgBackRest's pg1-host
    pg_host_user: str = ""
    repos: tuple[Repo, ...] = ()
    cipher_pass: str = field(default="", repr=False)  # blank: the repositories are not encrypted
    config_dir: str = ""  # holds <name>.conf (0600), log/, lock/, spool/
    os_user: str = ""  # run pgBackRest as this OS user (the data directory's owner) when root
    pg_bin_dir: str = ""  # the server binaries of the cluster's major version
    archive_timeout_s: int = 60


@dataclass(frozen=True)
class BackupSet:
    """One base backup in the repository (`pgbackrest info`)."""

    label: str
    kind: str  # full | diff | incr
    prior: str | None  # the label this diff/incr depends on
    started: datetime
    stopped: datetime  # the earliest point a restore from this backup can reach
    wal_start: str
    wal_stop: str
    size: int  # database bytes
    repo_size: int  # bytes stored in the repository
    repo_delta: int  # bytes this backup added to the repository
    repo: int = 1


@dataclass(frozen=True)
class Window:
    """The points in time a stanza can be restored to, as its repository stands."""

    oldest: datetime | None  # the oldest backup's stop time
    newest: datetime | None  # end of the newest archived WAL segment of the unbroken run
    newest_segment: str = ""
    gap_after: str = ""  # the last segment before a missing one ("" when none is missing)
    missing_segment: str = ""
    checked_at: datetime | None = None
    error: str = ""


def config_path(stanza: Stanza) -> str:
    raise NotImplementedError


def write_config(stanza: Stanza) -> str:
    """Write `<config_dir>/<name>.conf` atomically, mode 0600, owned by `os_user`."""
    raise NotImplementedError


def archive_command(stanza: Stanza) -> str:
    raise NotImplementedError


def postgresql_conf_lines(stanza: Stanza) -> list[str]:
    """The lines the DBA adds to postgresql.conf (archive_mode, archive_command, …)."""
    raise NotImplementedError


def stanza_create(stanza: Stanza) -> None:
    raise NotImplementedError


def check(stanza: Stanza) -> str:
    """Archive a WAL segment and read it back; raise PgBackRestError naming what is missing."""
    raise NotImplementedError


def backup(stanza: Stanza, kind: str = "full", *, cancel=None, progress=None) -> BackupSet:
    raise NotImplementedError


def backups(stanza: Stanza) -> list[BackupSet]:
    raise NotImplementedError


def window(stanza: Stanza, now: datetime | None = None) -> Window:
    raise NotImplementedError


def expire(stanza: Stanza, label: str) -> None:
    """Remove one backup set (and what depends on it) and the WAL no kept backup needs."""
    raise NotImplementedError
