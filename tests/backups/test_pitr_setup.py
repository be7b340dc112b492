"""pitr_setup without a cluster: which lines differ, the source page's check button, the
window schedule. The real-cluster runs are in test_physical_runs.py."""

import pytest
from django_q.models import Schedule

from backups.engine import pgbackrest
from backups.models import Source
from backups.pitr_setup import differences
from backups.schedules import PITR_WINDOW_SCHEDULE, ensure_system_schedules
from dr_portal.models import AuditEntry
from tests.factories import SourceFactory

STANZA = pgbackrest.Stanza(
    name="orders",
    pg_data="/var/lib/postgresql/15/main",
    repos=(pgbackrest.Repo(kind="local", path="/backups/pg"),),
    config_dir="/var/lib/dr-portal/pgbackrest",
    archive_timeout_s=60,
)


def test_settings_in_effect_are_not_reported():
    good = {
        "archive_mode": ("on", False),
        "archive_command": (pgbackrest.archive_command(STANZA), False),
        "archive_timeout": ("60", False),
        "wal_level": ("replica", False),
    }
    assert differences(STANZA, good) == []


def test_each_missing_or_different_line_is_named():
    found = differences(
        STANZA,
        {
            "archive_mode": ("off", True),
            "archive_command": ("cp %p /mnt/wal/%f", False),
            "archive_timeout": ("0", False),
            "wal_level": ("minimal", False),
        },
    )
    assert found[0] == "archive_mode is off, not on (changed in the file: restart PostgreSQL)"
    assert found[1].startswith("archive_command is not the line pitr_setup prints")
    assert "cp %p" in found[1]
    assert found[2] == "archive_timeout is 0 s, not 60"
    assert found[3] == "wal_level is minimal, not replica"


@pytest.fixture
def pitr_source(system):
    return SourceFactory(
        system=system, name="orders", postgresql=True, pitr=True, data_directory="/srv/pg"
    )


def test_operator_checks_archiving_as_a_task_and_sees_the_result(
    operator_client, pitr_source, sync_queue
):
    response = sync_queue(operator_client.post, f"/backups/sources/{pitr_source.pk}/pitr-check/")
    assert response.status_code == 302
    pitr_source.refresh_from_db()
    assert pitr_source.pitr_checked_at is not None and not pitr_source.pitr_check_ok
    assert "no enabled physical job" in pitr_source.pitr_check_message
    page = operator_client.get(f"/backups/sources/{pitr_source.pk}/").content.decode()
    assert "no enabled physical job" in page and "Check archiving" in page
    assert AuditEntry.objects.filter(action="check pitr archiving").exists()


def test_viewer_cannot_check_archiving(viewer_client, pitr_source, sync_queue):
    response = sync_queue(viewer_client.post, f"/backups/sources/{pitr_source.pk}/pitr-check/")
    assert response.status_code == 403
    assert Source.objects.get(pk=pitr_source.pk).pitr_checked_at is None
    assert (
        "Check archiving</button>"
        not in viewer_client.get(pitr_source.get_absolute_url()).content.decode()
    )


def test_get_on_the_check_is_refused(operator_client, pitr_source):
    assert operator_client.get(f"/backups/sources/{pitr_source.pk}/pitr-check/").status_code == 405


def test_the_window_refresh_runs_every_minute(db):
    ensure_system_schedules()
    ensure_system_schedules()
    (schedule,) = Schedule.objects.filter(name=PITR_WINDOW_SCHEDULE)
    assert schedule.func == "backups.tasks.refresh_pitr_windows" and schedule.minutes == 1
