"""The stanza, its repositories, its backup sets and its recoverable window, as plain data.

Kept apart from pgbackrest.py so the configuration writer and the runner can name them
without importing the module that uses both; import them from `backups.engine.pgbackrest`.
"""

from dataclasses import dataclass, field
from datetime import datetime

from .pgbackrest_wal import DEFAULT_SEGMENT_SIZE


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
    process_max: int = 1  # pgBackRest's parallel processes for backup and restore
    wal_segment_size: int = DEFAULT_SEGMENT_SIZE  # initdb --wal-segsize, in bytes
    # An adopted stanza: someone else's archive_command and schedule write the repository,
    # so the portal only reads it (no stanza-create, backup or expire; no directory made).
    read_only: bool = False


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
