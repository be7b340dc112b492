"""The plain data the engine takes and returns (no Django: tasks build these from models)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

COMPRESSIONS = ("zstd", "gzip", "none")
SOURCE_KINDS = ("postgresql", "sqlite", "files")
DESTINATION_KINDS = ("local", "s3")
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE")
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")  # S3 Object Lock retention modes


@dataclass
class SourceSpec:
    """What to read. config: host/port/database/user and parallel (postgresql: above 1,
    pg_dump -Fd -j N stored as a tar), or path (sqlite, files)
    with exclude (files) and protected: real paths the reader refuses to include (the
    portal's key ring, secret key and database; the backup fails if it meets one)."""

    kind: str
    config: dict[str, Any]
    password: str = field(default="", repr=False)


@dataclass
class DestinationSpec:
    name: str
    kind: str
    config: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class BackupOptions:
    artifact_key: str
    compression: str = "zstd"
    level: int | None = None
    encrypt: bool = True
    master_keys: list = field(default_factory=list, repr=False)
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    # Where the SQLite online backup writes its consistent copy (system temp dir if None).
    scratch_dir: str | None = None
    # zstd worker threads: 1 moves compression off the calling thread (and, with zstd's
    # multi-threaded framing, stores slightly smaller); 0 compresses inline.
    threads: int = 1


@dataclass
class CopyResult:
    destination: str
    ok: bool
    location: str = ""
    manifest_location: str = ""
    bytes_stored: int = 0
    error: str = ""
    storage_class: str = ""
    # S3 Object Lock: the artifact and its manifest cannot be deleted before this moment.
    locked_until: datetime | None = None


@dataclass
class BackupResult:
    status: str  # "succeeded" | "partial" | "failed"
    bytes_read: int = 0
    bytes_stored: int = 0
    sha256: str = ""
    started: datetime | None = None
    finished: datetime | None = None
    data_taken_at: datetime | None = None
    copies: list[CopyResult] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    cancelled: bool = False  # status is "failed" and the cancel event caused it
    warnings: list[str] = field(default_factory=list)  # what the source could not keep
