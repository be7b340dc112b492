"""Restores stage privately: planted symlinks in /tmp are never followed, restored and
decrypted files are 0600 in 0700 directories whatever the umask, and an archive cannot
write outside its target (while absolute symlinks are still kept as link contents)."""

import io
import os
import sqlite3
import stat
import tarfile
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recovery.engine.files import extract_tar
from recovery.engine.pg import RestoreError
from recovery.engine.sqlite_restore import restore_sqlite
from tests.factories import BackupJobFactory
from tests.recovery import conftest as recovery
from tests.recovery.conftest import make_sqlite_db
from tests.support.data import backup

# The recovery tests' fixtures: a SQLite source backed up to a local destination.
sqlite_source = recovery.sqlite_source


@pytest.fixture
def umask_zero():
    """The worst umask an operator could run the worker with."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.django_db
def test_symlink_planted_at_the_predictable_staging_path_is_not_followed(
    sqlite_source, work_dir, tmp_path
):
    """The old staging name was `.<name>.restoring-<UTC second>`: plant it for the next
    minute, pointing at a file of the victim's; the restore must not write through it."""
    from recovery import restores

    run = backup(sqlite_source)
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    victim = tmp_path / "victim.conf"
    victim.write_text("the victim's data\n")
    now = datetime.now(UTC)
    for second in range(-2, 60):
        stamp = (now + timedelta(seconds=second)).strftime("%Y%m%d%H%M%S")
        (shared / f".restored.db.restoring-{stamp}").symlink_to(victim)
    target = shared / "restored.db"
    restore = restores.execute_restore(
        restores.start_restore(sqlite_source, target=str(target), backup_run=run)
    )
    assert restore.status == "succeeded", restore.error
    assert victim.read_text() == "the victim's data\n"
    assert not target.is_symlink() and mode(target) == 0o600
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 20
    conn.close()
    assert not [p for p in shared.iterdir() if p.name.startswith(".dr-restore-")]


def test_symlink_planted_at_the_kept_aside_name_is_not_followed(tmp_path):
    live = make_sqlite_db(tmp_path / "live.db")
    victim = tmp_path / "victim.conf"
    victim.write_text("the victim's data\n")
    (tmp_path / "live.db.before_restore_20260101000000").symlink_to(victim)
    restored = make_sqlite_db(tmp_path / "restored.db", rows=3)
    with pytest.raises(RestoreError, match="already exists; not overwriting it"):
        restore_sqlite(str(restored), str(live), "20260101000000")
    assert victim.read_text() == "the victim's data\n"
    conn = sqlite3.connect(live)
    assert conn.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 20
    conn.close()


def test_a_target_that_is_a_symlink_is_refused(tmp_path):
    victim = make_sqlite_db(tmp_path / "victim.db")
    (tmp_path / "target.db").symlink_to(victim)
    restored = make_sqlite_db(tmp_path / "restored.db", rows=3)
    with pytest.raises(RestoreError, match="symbolic link"):
        restore_sqlite(str(restored), str(tmp_path / "target.db"), "20260101000000")
    conn = sqlite3.connect(victim)
    assert conn.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 20
    conn.close()


@pytest.mark.django_db
def test_restored_portal_database_file_is_0600_whatever_the_umask(
    local_destination, work_dir, tmp_path, umask_zero
):
    from django.db import connection

    from backups.models import Source
    from recovery import restores

    if connection.vendor != "sqlite":
        pytest.skip("the portal runs on PostgreSQL here: its restore is a database, not a file")
    portal = Source.objects.get(is_portal_db=True)
    portal.job = BackupJobFactory(
        source=portal, destinations=[local_destination], name="portal-daily"
    )
    run = backup(portal)
    target = tmp_path / "portal-copy.db"
    restore = restores.execute_restore(
        restores.start_restore(portal, target=str(target), backup_run=run)
    )
    assert restore.status == "succeeded", restore.error
    assert mode(target) == 0o600


@pytest.mark.django_db
def test_decrypted_artifact_is_0600_in_a_0700_directory_and_removed(
    sqlite_source, work_dir, umask_zero, monkeypatch
):
    """The unpacked (decrypted) SQLite file a restore test reads, seen while it is in use."""
    from recovery import restore_tests

    seen = {}
    real = restore_tests.verify_sqlite

    def spy(db_file, *args, **kwargs):
        seen.update(file=db_file, file_mode=mode(db_file), dir_mode=mode(Path(db_file).parent))
        return real(db_file, *args, **kwargs)

    monkeypatch.setattr(restore_tests, "verify_sqlite", spy)
    backup(sqlite_source)
    test = restore_tests.execute_restore_test(restore_tests.start_restore_test(sqlite_source))
    assert test.status == "succeeded", test.error
    assert seen["file_mode"] == 0o600 and seen["dir_mode"] == 0o700
    assert Path(seen["file"]).parent.parent == work_dir  # a private directory, not /tmp itself
    assert not os.path.exists(seen["file"]) and list(work_dir.iterdir()) == []


def test_sqlite_backup_snapshot_is_0600_whatever_the_umask(tmp_path, umask_zero):
    from backups.engine.sources import SqliteStream

    db = make_sqlite_db(tmp_path / "app.db")
    stream = SqliteStream({"path": str(db)}, str(tmp_path))
    try:
        assert mode(stream._file.name) == 0o600
        assert mode(Path(stream._file.name).parent) == 0o700
    finally:
        stream.close()


def test_unpack_command_writes_its_output_0600(tmp_path, umask_zero):
    from backups.engine.crypto import build_header
    from backups.engine.unpack import main

    artifact = tmp_path / "a.dr"
    header = build_header("none", None)
    artifact.write_bytes(header.raw + b"plaintext")
    out = tmp_path / "out.db"
    assert main([str(artifact), "-o", str(out)]) == 0
    assert out.read_bytes() == b"plaintext" and mode(out) == 0o600


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return str(path)


def member(name, kind=tarfile.REGTYPE, linkname="") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


@pytest.mark.parametrize(
    "members",
    [
        [(member("../escaped.txt"), b"x")],
        [(member("/tmp/escaped-absolute.txt"), b"x")],
        # a symlink to outside, then a file written through it
        [(member("out", tarfile.SYMTYPE, "{outside}"), b""), (member("out/escaped.txt"), b"x")],
        # a hard link to a file outside
        [(member("hard", tarfile.LNKTYPE, "../victim.txt"), b"")],
    ],
    ids=["dot-dot", "absolute-name", "write-through-symlink", "hard-link-outside"],
)
def test_archive_cannot_write_outside_its_target(tmp_path, members):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    for info, _ in members:
        info.linkname = info.linkname.replace("{outside}", str(outside))
    tar = make_tar(tmp_path / "evil.tar", members)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(RestoreError, match="extracting the files failed"):
        extract_tar(tar, str(target))
    assert list(outside.iterdir()) == [] and victim.read_text() == "victim"
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/escaped-absolute.txt").exists()
    assert os.stat(victim).st_nlink == 1


def test_absolute_symlink_is_kept_as_link_content(tmp_path):
    tar = make_tar(tmp_path / "ok.tar", [(member("etc-link", tarfile.SYMTYPE, "/etc"), b"")])
    target = tmp_path / "target"
    target.mkdir()
    extract_tar(tar, str(target))
    assert os.readlink(target / "etc-link") == "/etc"


@pytest.mark.django_db
def test_housekeeping_removes_staging_a_killed_restore_left_and_nothing_else(
    sqlite_source, tmp_path, settings
):
    """Only our own old 0700 `.dr-restore-*` directories beside a restore target go; kept-aside
    data, fresh staging and a look-alike planted by another user stay."""
    import time

    from recovery.models import Restore
    from recovery.tasks import housekeeping, leftover_age_s

    settings.DR_RESTORE_TMP_DIR = str(tmp_path / "work")
    (tmp_path / "work").mkdir()
    where = tmp_path / "targets"
    where.mkdir()
    Restore.objects.create(
        source=sqlite_source,
        failure_type="database_failure",
        target_kind="file",
        target=str(where / "copy.db"),
        status="failed",
    )
    old = time.time() - leftover_age_s() - 60
    dead = Path(tempfile.mkdtemp(prefix=".dr-restore-", dir=where))
    (dead / "restored.db").write_bytes(b"plaintext")
    fresh = Path(tempfile.mkdtemp(prefix=".dr-restore-", dir=where))
    planted = where / ".dr-restore-planted"
    planted.mkdir(mode=0o700)
    os.chown(planted, 1234, 1234)
    kept = where / "copy.db.before_restore_20260101000000"
    kept.write_bytes(b"kept")
    for path in (dead, fresh, planted, kept):
        if path is not fresh:
            os.utime(path, (old, old))
    result = housekeeping()
    assert str(dead) in result["dirs_removed"] and not dead.exists()
    assert fresh.exists() and planted.exists() and kept.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("planted", ["target", "parent"])
def test_a_restore_target_through_a_planted_symlink_is_refused(tmp_path, planted):
    """A link planted in /tmp at the target (or a directory above it) must not redirect a
    restore onto another file: the target is refused before anything is written."""
    from recovery import models, targeting

    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    victim = make_sqlite_db(victim_dir / "app.db")
    if planted == "target":
        (tmp_path / "copy.db").symlink_to(victim)
        target = tmp_path / "copy.db"
    else:
        (tmp_path / "restores").symlink_to(victim_dir)
        target = tmp_path / "restores" / "app.db"
    with pytest.raises(ValueError, match="symbolic link"):
        targeting.validate_target(models.TargetKind.FILE, str(target))
    conn = sqlite3.connect(victim)
    assert conn.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 20
    conn.close()
