"""Append-only local destinations: every copy read-only and, where this machine allows,
immutable (chattr +i); retention deletes nothing there and says so. Real backups, real files,
the real ioctl: what the machine cannot do is reported, not pretended."""

import os
import stat
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from backups import health, retention, services, tasks
from backups.engine import DeletionRefused
from backups.engine.destinations import local
from backups.models import Destination
from dr_portal.runs import RunStatus
from tests.factories import DestinationFactory


def _unprotect_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            local.unprotect(path)


@pytest.fixture
def vault_dir(db, tmp_path):
    root = tmp_path / "append-only"
    destination = DestinationFactory(
        name="vault-dir", path=str(root), append_only=True, keep_days=0, keep_last=2
    )
    try:
        yield destination
    finally:
        if root.exists():
            _unprotect_tree(root)  # else pytest cannot remove tmp_path


@pytest.fixture
def flag_works(tmp_path) -> bool:
    """Whether this machine takes chattr +i in tmp_path (root with CAP_LINUX_IMMUTABLE, a
    file system that has the flag): the tests assert whichever is true."""
    scratch = tmp_path / "flag-probe"
    scratch.write_bytes(b"x")
    works = local.set_immutable(scratch) == ""
    local.unprotect(scratch)
    return works


def _backup(job):
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    return run


def test_copies_are_read_only_and_immutable_where_the_machine_allows(job, vault_dir, flag_works):
    job.destinations.set([vault_dir])
    run = _backup(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    copy = run.copies.get()
    artifact, manifest = Path(copy.location), Path(copy.manifest_location)
    for path in (artifact, manifest):
        assert stat.S_IMODE(path.stat().st_mode) == 0o444, path
        assert local.is_immutable(path) is flag_works, path
    text = manifest.read_text()  # the copy's own manifest says what was done
    if flag_works:
        assert "read-only (0444) and immutable (chattr +i)" in text
        with pytest.raises(PermissionError):
            artifact.unlink()  # not even root, until chattr -i
        with pytest.raises(PermissionError):
            artifact.open("ab")
    else:
        assert "immutable flag not supported here" in text
    assert artifact.exists() and manifest.exists()


def test_retention_deletes_nothing_and_says_so(job, vault_dir):
    job.destinations.set([vault_dir])
    old, new = _backup(job), _backup(job)
    vault_dir.keep_last = 1
    vault_dir.save()

    decisions = {d.item.run_id: d for d in retention.apply(vault_dir)}

    kept = decisions[old.pk]
    assert not kept.delete
    assert "append-only: the portal deletes nothing here" in kept.reason
    old_copy = old.copies.get()
    assert Path(old_copy.location).exists() and Path(old_copy.manifest_location).exists()
    assert old_copy.deleted_at is not None  # released from the catalog, not from the disk
    assert new.copies.get().is_live
    # The host removing it later is no loss.
    local.unprotect(Path(old_copy.location))
    os.unlink(old_copy.location)
    assert retention.find_lost_copies(vault_dir) == []


def test_the_engine_refuses_to_delete_an_append_only_copy(job, vault_dir):
    job.destinations.set([vault_dir])
    copy = _backup(job).copies.get()
    store = local.LocalDestination(vault_dir.to_spec())
    with pytest.raises(DeletionRefused, match="append-only"):
        store.delete(copy.location)
    assert Path(copy.location).exists()


def test_destination_test_says_whether_the_flag_took(vault_dir, flag_works):
    ok, detail = health.test_destination(vault_dir)
    assert ok, detail
    if flag_works:
        assert "append-only: files made read-only (0444) and immutable (chattr +i)" in detail
    else:
        assert "immutable flag not supported here" in detail
    assert not list(Path(vault_dir.path).iterdir())  # the probe is gone


def test_a_portal_not_running_as_root_reports_the_flag_unsupported(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert local.protect(path) == (
        "read-only (0444); immutable flag not supported here: the portal does not run as root"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o444 and not local.is_immutable(path)


def test_append_only_is_refused_for_s3(db):
    destination = Destination(name="s3x", kind="s3", bucket="b", append_only=True)
    with pytest.raises(ValidationError, match="Append-only is for local directories"):
        destination.full_clean()
