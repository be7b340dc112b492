"""The scrub: every live copy read back through full verification, within a byte budget;
a corrupt or missing copy is marked lost, alerts once and stops counting."""

import json
import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backups import scrub, services, tasks
from backups.models import BackupCopy, BackupRun
from dr_portal.runs import RunStatus
from incidents.models import Alert


@pytest.fixture
def two_site_job(job, second_dest):
    job.destinations.set([job.destinations.get(), second_dest])
    return job


def _backup(job) -> BackupRun:
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def _flip_one_byte(path: str) -> None:
    with open(path, "r+b") as fh:
        fh.seek(os.path.getsize(path) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x01]))


def test_a_good_copy_is_proven(job):
    run = _backup(job)
    result = scrub.scrub()
    copy = run.copies.get()
    assert copy.proven_at is not None and copy.proof_error == "" and copy.is_live
    [local] = result.destinations
    assert local.count("proven") == 1 and local.bytes_read == copy.bytes_stored
    assert "SHA-256 and authentication verified" in local.proofs[0].detail


def test_one_corrupt_byte_marks_the_copy_lost_alerts_once_and_stops_it_counting(
    two_site_job, local_dest
):
    run = _backup(two_site_job)
    corrupt = run.copies.get(destination=local_dest)
    _flip_one_byte(corrupt.location)

    result = scrub.scrub()
    corrupt.refresh_from_db()
    assert corrupt.lost_at is not None and not corrupt.is_live
    assert "scrub: unreadable" in corrupt.error and corrupt.proven_at is None
    assert result.lost == 1
    # The other site's copy is proven and is now the only one that counts.
    assert list(BackupCopy.objects.live().filter(run=run)) == [
        run.copies.get(destination__name="second")
    ]
    assert run.copies.get(destination__name="second").proven_at is not None
    [alert] = Alert.objects.filter(kind="copy_lost")
    assert alert.key == "scrub:local" and f"run #{run.pk}" in alert.detail
    assert alert.recovered is None

    # A second pass: the lost copy is not read again and the alert is not raised again.
    again = scrub.scrub()
    assert again.lost == 0
    assert Alert.objects.filter(kind="copy_lost").count() == 1
    assert Alert.objects.get(kind="copy_lost").seen_count == 1


def test_a_copy_whose_only_site_is_corrupt_is_no_good_backup_any_more(job):
    run = _backup(job)
    _flip_one_byte(run.copies.get().location)
    scrub.scrub()
    assert not BackupRun.objects.good().filter(pk=run.pk).exists()


def test_a_missing_copy_is_lost(job):
    run = _backup(job)
    os.unlink(run.copies.get().location)
    result = scrub.scrub()
    assert result.destinations[0].lost[0].detail == "missing at local"
    assert run.copies.get().lost_at is not None


def test_the_budget_stops_the_pass_and_the_next_pass_continues_oldest_proven_first(job):
    runs = [_backup(job) for _ in range(3)]
    size = max(r.copies.get().bytes_stored for r in runs)

    first = scrub.scrub(budget=int(size * 1.5))
    [local] = first.destinations
    assert local.count("proven") == 1 and local.left == 2
    assert local.bytes_read <= size * 1.5
    proven = [r.copies.get().proven_at for r in runs]
    assert proven[0] is not None and proven[1:] == [None, None]  # oldest first

    scrub.scrub(budget=int(size * 1.5))
    proven = [r.copies.get().proven_at for r in runs]
    assert proven[1] is not None and proven[2] is None  # never proven before proven again

    scrub.scrub(budget=10 * size)
    assert all(r.copies.get().proven_at for r in runs)


def test_an_unmounted_store_keeps_its_copies_live_with_the_error(job, local_dest):
    runs = [_backup(job) for _ in range(2)]
    os.rename(local_dest.path, local_dest.path + "-unmounted")
    [local] = scrub.scrub().destinations
    assert local.lost == [] and "not a directory" in local.error
    assert local.left == 1  # the rest would fail the same way: not tried
    copies = [r.copies.get() for r in runs]
    assert all(c.is_live and c.lost_at is None and c.proven_at is None for c in copies)
    assert "not a directory" in copies[0].proof_error
    assert not Alert.objects.filter(kind="copy_lost").exists()


def test_scrub_command_json_and_exit_status(job, capsys):
    run = _backup(job)
    call_command("scrub", "--json")
    report = json.loads(capsys.readouterr().out)
    [local] = report["destinations"]
    assert local["destination"] == "local" and local["proven"] == 1 and local["lost"] == 0
    _flip_one_byte(run.copies.get().location)
    BackupCopy.objects.update(proven_at=None)
    with pytest.raises(CommandError, match="lost copies"):
        call_command("scrub", "--destination", "local")
    assert "LOST run #" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no destination named nope"):
        call_command("scrub", "--destination", "nope")


def test_dashboard_and_compliance_count_copies_proven_in_the_last_n_days(
    two_site_job, settings, manager_client
):
    from datetime import timedelta

    from django.utils import timezone

    from dashboard import board, compliance

    settings.DR_PROVEN_WITHIN_DAYS = 30
    runs = [_backup(two_site_job) for _ in range(2)]
    scrub.scrub()
    # One copy proven long ago no longer counts as proven within 30 days.
    old = runs[0].copies.get(destination__name="second")
    BackupCopy.objects.filter(pk=old.pk).update(proven_at=timezone.now() - timedelta(days=31))

    figures = {d["name"]: (d["copy_count"], d["proven"]) for d in board.storage()}
    assert figures == {"local": (2, 2), "second": (2, 1)}
    now = timezone.now()
    report = compliance.build(now - timedelta(days=7), now + timedelta(minutes=1))
    assert report["copies_proven"] == {
        "within_days": 30,
        "destinations": [
            {"destination": "local", "live": 2, "proven": 2, "restore_tested": None},
            {"destination": "second", "live": 2, "proven": 1, "restore_tested": None},
        ],
    }
    body = manager_client.get("/").content.decode()
    assert "1 proven in the last 30 days" in body and "2 proven in the last 30 days" in body


def test_a_pass_out_of_time_leaves_the_rest_for_the_next(job, settings):
    runs = [_backup(job) for _ in range(2)]
    settings.Q_TIMEOUT = -1  # the deadline has passed before the first copy
    [local] = scrub.scrub().destinations
    assert local.out_of_time and local.left == 2 and local.proofs == []
    assert not any(r.copies.get().proven_at for r in runs)
