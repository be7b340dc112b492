"""`make run` loads the demo on every start: it creates what is missing and never reverts
what the user changed in the demo's objects."""

import io

import pytest
from django.core.management import call_command

from backups.models import BackupJob, Destination, Source
from drills.models import DrillPlan
from incidents.models import Contact

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_dirs(settings, tmp_path):
    settings.DR_DEMO_DIR = tmp_path / "demo"
    settings.DR_LOCAL_BACKUP_DIR = tmp_path / "backups"


def load_demo() -> str:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def test_a_second_load_keeps_the_users_edits_to_demo_objects(demo_dirs):
    load_demo()
    source = Source.objects.get(name="toolhub-db")
    source.data_class = "standard"
    source.checks = [{"name": "mine", "sql": "SELECT 1", "expect": "= 1"}]
    source.save()
    Source.objects.filter(is_portal_db=True).update(restore_test_after_backup=False)
    BackupJob.objects.filter(name="toolhub-db-hourly").update(schedule="*/15 * * * *")
    Destination.objects.filter(name="local").update(keep_days=30)
    Contact.objects.filter(role="DBA").update(phone="+1 555 0100")
    plan = DrillPlan.objects.get()
    plan.participants.clear()

    out = load_demo()

    source.refresh_from_db()
    assert source.data_class == "standard"
    assert source.checks == [{"name": "mine", "sql": "SELECT 1", "expect": "= 1"}]
    assert not Source.objects.get(is_portal_db=True).restore_test_after_backup
    assert BackupJob.objects.get(name="toolhub-db-hourly").schedule == "*/15 * * * *"
    assert Destination.objects.get(name="local").keep_days == 30
    assert Contact.objects.get(role="DBA").phone == "+1 555 0100"
    assert not plan.participants.exists()
    assert "backups demo: 0 created" in out


def test_a_deleted_demo_job_is_created_again_and_nothing_else_changes(demo_dirs):
    load_demo()
    BackupJob.objects.filter(name="portal-db-daily").delete()
    Destination.objects.filter(name="local").update(keep_days=30)
    out = load_demo()
    assert BackupJob.objects.filter(name="portal-db-daily").exists()
    assert Destination.objects.get(name="local").keep_days == 30
    assert "backups demo: 1 created" in out


def test_the_first_load_proves_both_demo_databases_after_every_backup(demo_dirs):
    load_demo()
    assert set(
        Source.objects.filter(restore_test_after_backup=True).values_list("name", flat=True)
    ) == {"toolhub-db", "portal-db"}
