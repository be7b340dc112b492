"""Files restores keep everything and lose nothing: special files round-trip through a real
backup and restore, a restore test compares types, modes and link targets, and a restore
onto a mount point (a real tmpfs) never empties the volume."""

import os
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from recovery.engine.files import compare_tree, extract_tar, restore_tree
from tests.factories import BackupJobFactory, SourceFactory
from tests.recovery.conftest import run_test
from tests.support.data import backup

MTIME = 1_600_000_000.25  # 2020-09-13, with a fraction


def build_special_tree(root: Path) -> None:
    """A tree with every kind of entry a files source may hold."""
    root.mkdir(exist_ok=True)
    (root / "plain.txt").write_text("plain\n")
    os.chmod(root / "plain.txt", 0o640)
    (root / "suid-tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "suid-tool", 0o4755)
    (root / "shared").mkdir()
    os.chmod(root / "shared", 0o2775)
    (root / "drop").mkdir()
    os.chmod(root / "drop", 0o1777)
    os.symlink("/etc/hostname", root / "absolute-link")
    os.symlink("/nonexistent/elsewhere", root / "dangling-absolute")
    os.symlink("plain.txt", root / "relative-link")
    os.mkfifo(root / "queue.fifo", 0o620)
    os.mknod(root / "null-dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (root / "shared" / "data.bin").write_bytes(os.urandom(3000))
    os.link(root / "shared" / "data.bin", root / "hard-link.bin")
    (root / "owned").write_text("owned by someone else\n")
    os.chown(root / "owned", 1234, 2345)
    for path in (root / "plain.txt", root / "owned", root / "queue.fifo", root / "shared"):
        os.utime(path, (MTIME, MTIME))


def describe(root: Path) -> dict[str, tuple]:
    """Everything a restore must keep, per entry (mtime to the second; symlinks' own mtime
    is not restorable by tar and left out)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            out[rel] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode) if not link else 0,
                link,
                st.st_uid,
                st.st_gid,
                int(st.st_mtime) if not stat.S_ISLNK(st.st_mode) else 0,
                st.st_rdev,
                st.st_size if stat.S_ISREG(st.st_mode) else 0,
            )
    return out


def files_source(path: Path, local_destination, name="files"):
    from backups.models import System

    system, _ = System.objects.get_or_create(name="sys")
    source = SourceFactory(system=system, name=name, kind="files", path=str(path))
    source.job = BackupJobFactory(source=source, destinations=[local_destination])
    return source


@pytest.fixture
def tmpfs(tmp_path):
    """A real tmpfs mounted for this test (the suite runs as root), always unmounted."""
    mount_point = tmp_path / "volume"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {mount_point} (tests run as root): {done.stderr}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.django_db
def test_special_files_round_trip_through_backup_and_restore(tmp_path, local_destination, work_dir):
    from recovery import restores

    src = tmp_path / "app"
    build_special_tree(src)
    source = files_source(src, local_destination)
    run = backup(source)
    target = tmp_path / "restored"
    restore = restores.execute_restore(
        restores.start_restore(source, target=str(target), backup_run=run)
    )
    assert restore.status == "succeeded", restore.error
    restored, original = describe(target), describe(src)
    assert restored == original
    assert os.readlink(target / "absolute-link") == "/etc/hostname"
    assert os.stat(target / "suid-tool").st_mode & stat.S_ISUID
    assert stat.S_ISFIFO(os.lstat(target / "queue.fifo").st_mode)
    assert os.lstat(target / "hard-link.bin").st_ino == os.lstat(target / "shared/data.bin").st_ino
    assert (os.lstat(target / "owned").st_uid, os.lstat(target / "owned").st_gid) == (1234, 2345)
    # and the restore test of the same backup passes, comparing all of it
    test = run_test(source, backup_run=run)
    assert test.status == "succeeded", test.error
    assert "mode, link target" in test.integrity and "owner" in test.integrity
    assert list(work_dir.iterdir()) == []


@pytest.mark.django_db
def test_a_socket_is_reported_when_the_backup_is_made(tmp_path, local_destination, work_dir):
    src = tmp_path / "app"
    src.mkdir()
    (src / "data.txt").write_text("x")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "app.sock"))
    try:
        run = backup(files_source(src, local_destination))
    finally:
        sock.close()
    assert run.manifest["not_backed_up"] == ["./app.sock (a socket: tar cannot store it)"]
    assert "warning: not backed up: ./app.sock (a socket" in run.log


def test_restore_test_compares_types_modes_and_link_targets(tmp_path):
    src = tmp_path / "src"
    build_special_tree(src)
    tar_path = tmp_path / "files.tar"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=".")
    out = tmp_path / "out"
    listing, skipped = extract_tar(str(tar_path), str(out))
    assert compare_tree(str(out), listing, skipped=skipped) == []
    os.chmod(out / "suid-tool", 0o755)  # what the 'data' filter would have done
    os.unlink(out / "absolute-link")
    os.symlink("/etc/passwd", out / "absolute-link")
    os.unlink(out / "queue.fifo")
    (out / "queue.fifo").write_text("")
    problems = compare_tree(str(out), listing, skipped=skipped)
    assert "./suid-tool: mode 0755, expected 4755" in problems
    assert "./absolute-link: links to /etc/passwd, not /etc/hostname" in problems
    assert "./queue.fifo: not a fifo" in problems


@pytest.mark.django_db
def test_restore_onto_a_mount_point_keeps_the_old_data_inside_it(
    tmpfs, tmp_path, local_destination, work_dir
):
    from recovery import restores

    (tmpfs / "config").mkdir()
    (tmpfs / "config" / "app.env").write_text("VERSION=1\n")
    (tmpfs / "link").symlink_to("/etc/hostname")
    source = files_source(tmpfs, local_destination, name="volume")
    run = backup(source)
    (tmpfs / "config" / "app.env").write_text("VERSION=2 (after the backup)\n")
    (tmpfs / "new-since-backup.txt").write_text("new")

    restore = restores.execute_restore(
        restores.start_restore(source, onto_source=True, backup_run=run)
    )
    assert restore.status == "succeeded", restore.error
    assert os.path.ismount(tmpfs)
    assert (tmpfs / "config" / "app.env").read_text() == "VERSION=1\n"
    assert not (tmpfs / "new-since-backup.txt").exists()
    assert os.readlink(tmpfs / "link") == "/etc/hostname"
    kept = Path(restore.kept_aside)
    assert kept.parent == tmpfs and kept.name.startswith(".dr-kept-aside-")
    assert os.stat(kept).st_dev == os.stat(tmpfs).st_dev  # on the volume, not its parent
    assert (kept / "config" / "app.env").read_text() == "VERSION=2 (after the backup)\n"
    assert (kept / "new-since-backup.txt").read_text() == "new"
    assert sorted(p.name for p in tmpfs.iterdir()) == sorted(["config", "link", kept.name])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "volume"))) == [
        "volume"
    ]
    assert "mount point" in restore.log


def test_a_failed_restore_inside_a_mount_point_changes_nothing(tmpfs, tmp_path):
    (tmpfs / "live.txt").write_text("live")
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        tar.addfile(info)
    with pytest.raises(Exception, match="extracting the files failed"):
        restore_tree(str(bad), str(tmpfs), "20260101000000")
    assert sorted(p.name for p in tmpfs.iterdir()) == ["live.txt"]
    assert (tmpfs / "live.txt").read_text() == "live"


def test_restore_onto_an_existing_directory_renames_it_aside(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.env").write_text("VERSION=1\n")
    tar_path = tmp_path / "files.tar"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=".")
    live = tmp_path / "live"
    live.mkdir()
    (live / "app.env").write_text("VERSION=2\n")
    done = restore_tree(str(tar_path), str(live), "20260101000000")
    assert done.kept_aside == f"{live}.before_restore_20260101000000" and not done.in_place
    assert (live / "app.env").read_text() == "VERSION=1\n"
    assert (Path(done.kept_aside) / "app.env").read_text() == "VERSION=2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["src", "files.tar", "live", "live.before_restore_20260101000000"]
    )
