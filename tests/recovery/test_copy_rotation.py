"""Restore tests by destination: pinned to one copy ("local site lost"), rotated by the
schedule so every destination is read, recorded per destination. Real SQLite backups to a
local directory and to moto's S3 server over HTTP."""

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from backups.models import Destination
from dr_portal.runs import RunStatus
from recovery import restore_tests, rotation, tasks
from recovery.models import RestoreTest
from tests.factories import DestinationFactory
from tests.recovery.conftest import run_test
from tests.recovery.test_s3_copies import SECRET, moto_url, s3_destination  # noqa: F401
from tests.support.data import backup

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_sites(sqlite_source, s3_destination, work_dir):  # noqa: F811
    """A SQLite source backed up once to "local" and to "offsite" (moto S3)."""
    sqlite_source.job.destinations.add(s3_destination)
    run = backup(sqlite_source)
    assert sorted(run.copies.values_list("destination__name", flat=True)) == ["local", "offsite"]
    sqlite_source.run = run
    return sqlite_source


def _local_path(copy) -> Path:
    path = Path(copy.location)
    return path if path.is_absolute() else Path(copy.destination.path) / copy.location


def _delete_s3_copy(copy):
    from recovery.copies import open_destination

    open_destination(copy.destination.to_spec()).delete(copy.location)


def test_a_pinned_test_reads_only_that_destination(two_sites):
    offsite = Destination.objects.get(name="offsite")
    test = run_test(two_sites, destination=offsite)
    assert test.passed, test.error
    assert test.copy_used.startswith("offsite: s3://")
    assert test.copy_destination == offsite
    assert "reading only the copy at offsite" in test.log
    assert SECRET not in test.log


def test_a_pinned_test_fails_when_its_copy_is_gone_and_never_reads_another(two_sites):
    offsite_copy = two_sites.run.copies.get(destination__name="offsite")
    _delete_s3_copy(offsite_copy)
    test = run_test(two_sites, destination=offsite_copy.destination)
    assert test.status == RunStatus.FAILED
    assert "offsite" in test.error and "missing" in test.error
    assert test.copy_destination is None and test.copy_used == ""
    offsite_copy.refresh_from_db()
    assert offsite_copy.lost_at is not None  # found missing: stops counting at once
    two_sites.run.refresh_from_db()
    assert two_sites.run.restorable  # the local copy is fine: the backup is not condemned
    # Unpinned, the same backup still restores from the local copy.
    assert run_test(two_sites).passed


def test_pinning_to_a_destination_without_a_copy_is_refused_and_changes_nothing(two_sites):
    empty = DestinationFactory(name="empty-site", path=str(Path(two_sites.path).parent / "e"))
    with pytest.raises(restore_tests.NoCopyThere, match="empty-site holds no live copy"):
        restore_tests.start_restore_test(two_sites, destination=empty)
    with pytest.raises(restore_tests.NoCopyThere, match=f"run #{two_sites.run.pk}"):
        restore_tests.start_restore_test(two_sites, backup_run=two_sites.run, destination=empty)
    assert not RestoreTest.objects.exists()


def test_a_copy_lost_after_queueing_fails_the_test_clearly(two_sites):
    offsite = Destination.objects.get(name="offsite")
    test = restore_tests.start_restore_test(two_sites, destination=offsite)
    two_sites.run.copies.filter(destination=offsite).update(ok=False)
    test = restore_tests.execute_restore_test(test)
    assert test.status == RunStatus.FAILED
    assert "offsite holds no live copy of a good backup" in test.error


def test_scheduled_tests_rotate_over_the_destinations(two_sites):
    read = []
    for _ in range(3):
        tasks.scheduled_restore_test(two_sites.pk)
        test = RestoreTest.objects.order_by("-pk").first()
        assert test.passed, test.error
        read.append(test.copy_destination.name)
    # Never read first (by name on a tie), then the one read longest ago.
    assert read == ["local", "offsite", "local"]


def test_the_hourly_sweep_tests_a_copy_not_proven_in_the_period(two_sites, settings, sync_queue):
    settings.DR_COPY_TEST_EVERY_DAYS = 7
    assert run_test(two_sites).copy_destination.name == "local"  # the usual: local first
    assert [d.name for d in rotation.overdue(two_sites)] == ["offsite"]
    assert sync_queue(tasks.copy_restore_tests) == 1
    pinned = RestoreTest.objects.order_by("-pk").first()
    assert pinned.destination.name == "offsite" and pinned.trigger == "scheduled"
    assert pinned.passed and pinned.copy_destination.name == "offsite"
    assert rotation.overdue(two_sites) == []
    assert sync_queue(tasks.copy_restore_tests) == 0
    # Eight days on, both are due again; a test of offsite that failed today waits a day.
    later = timezone.now() + timedelta(days=8)
    RestoreTest.objects.create(
        source=two_sites,
        destination=pinned.destination,
        status=RunStatus.FAILED,
        finished=later - timedelta(hours=2),
    )
    assert [d.name for d in rotation.overdue(two_sites, later)] == ["local"]
    settings.DR_COPY_TEST_EVERY_DAYS = 0
    assert rotation.overdue(two_sites, later) == []


def test_verify_backup_reads_the_named_destination(two_sites):
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command(
            "verify_backup",
            "--latest",
            two_sites.job.name,
            "--destination",
            "offsite",
            "--json",
            stdout=out,
        )
    result = json.loads(out.getvalue())
    assert exit_.value.code == 0, result
    assert result["copy_read"].startswith("offsite: s3://")
    with pytest.raises(CommandError, match="no destination named nowhere"):
        call_command("verify_backup", str(two_sites.run.pk), "--destination", "nowhere")


def test_verify_backup_fails_clearly_when_the_destination_holds_no_copy(two_sites):
    _delete_s3_copy(two_sites.run.copies.get(destination__name="offsite"))
    two_sites.run.copies.filter(destination__name="offsite").update(ok=False)
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("verify_backup", str(two_sites.run.pk), "--destination", "offsite", stdout=out)
    assert exit_.value.code == 1
    assert "offsite holds no live copy of backup run" in out.getvalue()
    assert not RestoreTest.objects.exists()


def test_test_now_from_a_destination_in_the_portal(two_sites, operator_client, sync_queue):
    offsite = Destination.objects.get(name="offsite")
    page = operator_client.get(f"/recovery/sources/{two_sites.pk}/").content.decode()
    assert "Test now from offsite" in page and "Test now from local" in page
    response = sync_queue(
        operator_client.post,
        f"/recovery/sources/{two_sites.pk}/test/",
        {"destination": offsite.pk},
    )
    test = RestoreTest.objects.get()
    assert response.status_code == 302 and response["Location"] == test.get_absolute_url()
    assert test.destination == offsite and test.passed, test.error
    detail = operator_client.get(test.get_absolute_url()).content.decode()
    assert "Pinned to" in detail and "offsite" in detail


def test_test_now_from_refuses_bad_input_and_viewers(two_sites, operator_client, viewer_client):
    url = f"/recovery/sources/{two_sites.pk}/test/"
    assert viewer_client.post(url, {"destination": 1}).status_code == 403
    assert operator_client.get(url).status_code in (302, 405)
    response = operator_client.post(url, {"destination": "99999"}, follow=True)
    assert "does not exist" in response.content.decode()
    empty = DestinationFactory(name="empty-site", path=str(Path(two_sites.path).parent / "e"))
    response = operator_client.post(url, {"destination": empty.pk}, follow=True)
    assert "empty-site holds no live copy" in response.content.decode()
    assert not RestoreTest.objects.exists()


def test_compliance_report_shows_when_each_destination_was_last_restore_tested(two_sites):
    from dashboard import compliance

    offsite = Destination.objects.get(name="offsite")
    test = run_test(two_sites, destination=offsite)
    assert test.passed, test.error
    now = timezone.now()
    report = compliance.build(now - timedelta(days=7), now + timedelta(minutes=1))
    rows = {d["destination"]: d["restore_tested"] for d in report["copies_proven"]["destinations"]}
    assert rows["local"] is None
    assert rows["offsite"] == compliance._ts(test.finished)
