"""The JSON manifest written beside each artifact, and the tool versions it records."""

import functools
import platform
import shutil
import sqlite3
import subprocess
from datetime import datetime
from typing import Any

import cryptography
import zstandard

from .crypto import FORMAT_VERSION
from .sources import RESTORE_FORMS

MANIFEST_VERSION = 1


@functools.lru_cache(maxsize=1)
def _pg_dump_version() -> str:
    if not shutil.which("pg_dump"):
        return "not installed"
    try:
        out = subprocess.run(
            ["pg_dump", "--version"], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def tool_versions() -> dict[str, str]:
    return {
        "pg_dump": _pg_dump_version(),
        "sqlite": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "zstandard": zstandard.__version__,
        "zstd": ".".join(map(str, zstandard.ZSTD_VERSION)),
        "cryptography": cryptography.__version__,
        "artifact_format": str(FORMAT_VERSION),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def build_manifest(
    *,
    extra: dict[str, Any],
    source_kind: str,
    artifact_key: str,
    compression: str,
    level: int | None,
    key_id: str,
    bytes_read: int,
    bytes_stored: int,
    sha256: str,
    started: datetime,
    finished: datetime,
    data_taken_at: datetime | None,
) -> dict[str, Any]:
    """Engine fields win over manifest_extra keys of the same name."""
    manifest = dict(extra)
    manifest.update(
        manifest_version=MANIFEST_VERSION,
        format_version=FORMAT_VERSION,
        artifact_key=artifact_key,
        source_kind=source_kind,
        restore_as=RESTORE_FORMS.get(source_kind, ""),
        compression=compression,
        compression_level=level,
        encrypted=bool(key_id),
        key_id=key_id,
        bytes_read=bytes_read,
        bytes_stored=bytes_stored,
        sha256=sha256,
        started=_iso(started),
        finished=_iso(finished),
        data_taken_at=_iso(data_taken_at),
        tool_versions=tool_versions(),
    )
    manifest.setdefault("kind", source_kind)
    return manifest
