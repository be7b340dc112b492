"""Choosing a backup and its best copy, and reading that copy back verified.

Copies are ranked local first, then S3, then archive-class storage (which needs a
retrieval before it can be read). A copy found missing or holding a bad artifact is
marked lost; when every copy held a bad artifact the backup is marked not restorable.
Plaintext only ever lands in the run's private work directory, 0600.
"""

import os
import shutil
from dataclasses import dataclass

from django.db.models import Exists, OuterRef

from backups.engine import ArtifactError, EngineError, open_destination, unpack_artifact
from backups.models import BackupCopy, BackupRun, Destination, Source
from dr_portal.lib import keyring, readiness_version
from dr_portal.lib.redact import redact
from dr_portal.runs import RunStatus
from recovery.engine.dumpdir import DumpDirWriter
from recovery.engine.pg import RestoreError
from recovery.engine.staging import create_private
from recovery.runner import NeedsRetrieval, RecoveryFailure

KEY_NOT_IN_RING = "not in the key ring"


def good_backups(source: Source, destination: Destination | None = None):
    """Good backups of `source`; with `destination`, only those with a live copy there."""
    runs = BackupRun.objects.good().filter(source=source)
    if destination is not None:
        there = BackupCopy.objects.live().filter(run=OuterRef("pk"), destination=destination)
        runs = runs.filter(Exists(there))
    return runs


def newest_good_backup(source: Source, destination: Destination | None = None) -> BackupRun | None:
    return good_backups(source, destination).order_by("-data_taken_at", "-finished", "-pk").first()


def newest_proven_backup(source: Source) -> BackupRun | None:
    """The newest backup that passed a restore test (the default for a restore)."""
    return (
        good_backups(source)
        .filter(restore_tests__status=RunStatus.SUCCEEDED)
        .order_by("-data_taken_at", "-finished", "-pk")
        .first()
    )


def is_directory_dump(run: BackupRun) -> bool:
    """A parallel dump: a tar of a `pg_dump -Fd` directory (restored with pg_restore -j)."""
    return (run.manifest or {}).get("dump_format") == "directory"


def dump_jobs(run: BackupRun, default: int) -> int:
    """pg_restore jobs for `run`: a parallel dump restores with as many jobs as dumped it."""
    if is_directory_dump(run):
        parallel = (run.manifest or {}).get("parallel")
        return parallel if isinstance(parallel, int) and parallel > 0 else default
    return default


def artifact_kind(run: BackupRun) -> str:
    manifest = run.manifest or {}
    return manifest.get("source_kind") or manifest.get("kind") or run.source.kind


def _copy_rank(copy: BackupCopy) -> tuple:
    dest = copy.destination
    if dest.kind == "local":
        return (0, copy.pk)
    if dest.is_archive or copy.storage_class in ("GLACIER", "DEEP_ARCHIVE"):
        return (2, copy.pk)
    return (1, copy.pk)


def rank_copies(
    run: BackupRun, destination: Destination | None = None
) -> tuple[list[BackupCopy], list[BackupCopy]]:
    """(readable copies best first: local, then S3; archive-class copies needing retrieval).

    With `destination` (a test pinned to it: "the local site is lost"), only its copy.
    """
    live = run.copies.live().select_related("destination")
    if destination is not None:
        live = live.filter(destination=destination)
    copies = sorted(live, key=_copy_rank)
    readable = [c for c in copies if _copy_rank(c)[0] < 2]
    archived = [c for c in copies if _copy_rank(c)[0] == 2]
    return readable, archived


def copy_label(copy: BackupCopy) -> str:
    """What a run records as the copy it read."""
    return f"{copy.destination.name}: {copy.location}"[:300]


def read_copy(store, copy: BackupCopy, out, master_keys, sha256: str) -> dict:
    """Stream one copy through unpack_artifact (authenticate, decrypt, decompress) into `out`.

    Returns the unpacking's info (bytes_in, encrypted, ...); raises the backups engine's
    errors (ArtifactError for a bad artifact).
    """
    reader = store.open_read(copy.location)
    try:
        return unpack_artifact(reader, out, master_keys, expected_sha256=sha256)
    finally:
        close = getattr(reader, "close", None)
        if close:
            close()


@dataclass
class Fetched:
    path: str
    copy: BackupCopy
    bytes_fetched: int


class _CopyFailed(Exception):
    """One copy could not be read; `bad_artifact` when it held a bad artifact."""

    def __init__(self, message: str, bad_artifact: bool = False):
        super().__init__(message)
        self.bad_artifact = bad_artifact


def fetch_verified(
    run: BackupRun,
    into_dir: str,
    log_line,
    secrets: list[str],
    destination: Destination | None = None,
) -> Fetched:
    """Stream the best copy through verification into a file; try the next copy on failure.

    Raises RecoveryFailure naming every copy's cause. When every copy held a bad artifact
    (not a missing one, not a key missing from the ring) the run is marked not restorable.
    With `destination`, only that destination's copy is read (never another one).
    """
    readable = _readable_copies(run, destination)
    try:
        master_keys = keyring.ring()
    except keyring.KeyRingError as exc:
        raise RecoveryFailure(f"the key ring cannot be read: {exc}") from None
    problems, bad_artifact = [], 0
    for copy in readable:
        path = os.path.join(into_dir, f"artifact-{copy.pk}")
        try:
            return _fetch_copy(run, copy, path, master_keys, log_line, secrets)
        except _CopyFailed as exc:
            bad_artifact += exc.bad_artifact
            problems.append(f"{copy.destination.name}: {exc}")
        log_line(f"copy at {problems[-1]}")
        remove_fetched(path)
    message = "; ".join(problems)
    if bad_artifact == len(readable) and destination is None:
        BackupRun.objects.filter(pk=run.pk).update(
            restorable=False,
            not_restorable_reason=f"restore test found a bad artifact: {message}"[:2000],
        )
        readiness_version.bump()  # an update(): no model signal sees it
        log_line(f"backup run #{run.pk} marked not restorable")
    raise RecoveryFailure(f"no copy of backup run #{run.pk} could be read: {message}")


def _readable_copies(run: BackupRun, destination: Destination | None = None) -> list[BackupCopy]:
    """The copies that can be read now; raise when there are none (naming archived ones)."""
    readable, archived = rank_copies(run, destination)
    if readable:
        return readable
    if destination is not None and not archived:
        raise RecoveryFailure(
            f"{destination.name} holds no live copy of backup run #{run.pk}: "
            "nothing to read there (the test reads no other destination)"
        )
    if archived:
        where = ", ".join(
            f"{c.destination.name} ({c.storage_class or 'archive'})" for c in archived
        )
        raise NeedsRetrieval(
            f"backup run #{run.pk} is only stored in archive storage ({where}): "
            "it needs a retrieval (hours) before it can be read; start one in S3, then test again"
        )
    raise RecoveryFailure(f"backup run #{run.pk} has no intact copy left to read")


def _fetch_copy(run, copy, path, master_keys, log_line, secrets) -> Fetched:
    """Read one copy into `path`; raise _CopyFailed (marking the copy lost where it is)."""
    try:
        spec = copy.destination.to_spec()
        secrets.extend(spec.secrets.values())
        store = open_destination(spec)
        if not store.exists(copy.location):
            copy.mark_lost(f"missing at {copy.destination.name} (found by run #{run.pk}'s read)")
            raise _CopyFailed("the artifact is missing; copy marked lost")
        # Plaintext on disk: 0600, exclusive, never through a planted link, inside the
        # run's private 0700 directory; removed with it on every exit path.
        if is_directory_dump(run):  # unpacked into the dump directory as it is verified
            info = _read_dump_dir(store, copy, path, master_keys, run.sha256)
        else:
            with os.fdopen(create_private(path), "wb") as out:
                info = read_copy(store, copy, out, master_keys, run.sha256)
    except RestoreError as exc:  # the verified tar is not a dump directory
        copy.mark_lost(f"unreadable: {exc}")
        raise _CopyFailed(str(exc), bad_artifact=True) from None
    except ArtifactError as exc:
        message = redact(str(exc), secrets)
        bad = KEY_NOT_IN_RING not in message
        if bad:
            copy.mark_lost(f"unreadable: {message}")
        raise _CopyFailed(message, bad_artifact=bad) from None
    except (EngineError, OSError, keyring.KeyRingError) as exc:
        raise _CopyFailed(redact(str(exc), secrets) or type(exc).__name__) from None
    log_line(
        f"read {copy.destination.name}: {info['bytes_in']} stored bytes, SHA-256 and "
        f"{'authentication' if info.get('encrypted') else 'checksum'} verified"
    )
    return Fetched(path, copy, int(info["bytes_in"]))


def _read_dump_dir(store, copy, path: str, master_keys, sha256: str) -> dict:
    """A parallel dump's copy into a new private dump directory at `path`."""
    os.mkdir(path, 0o700)
    writer = DumpDirWriter(path)
    info = read_copy(store, copy, writer, master_keys, sha256)
    writer.close()
    return info


def remove_fetched(path: str) -> None:
    """Remove what fetch_verified wrote: an artifact file or a dump directory."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)
