"""Fixtures for drills: plans, contacts, real sources backed up through the backups app."""

from datetime import timedelta

import pytest

from tests.recovery.pgutil import fill_toolhub, temp_database


@pytest.fixture
def sync_tasks(monkeypatch):
    """django-q2 in sync mode: a task runs inline when its on_commit enqueue fires."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def work_dir(tmp_path, settings):
    path = tmp_path / "restore-work"
    path.mkdir()
    settings.DR_RESTORE_TMP_DIR = str(path)
    return path


@pytest.fixture
def system(db):
    from backups.models import System

    return System.objects.get_or_create(name="Tool Hub")[0]


@pytest.fixture
def contacts(db):
    from incidents.models import Contact

    return [
        Contact.objects.create(role="DevOps", name="Dana Ops", email="dana@example.com"),
        Contact.objects.create(role="DBA", name="Bea Base", email="bea@example.com"),
    ]


def make_plan(name="Quarterly DR drill", systems=(), participants=(), **fields):
    from drills.models import DrillPlan

    plan = DrillPlan.objects.create(name=name, **fields)
    plan.systems.set(systems)
    plan.participants.set(participants)
    return plan


def add_scenario(plan, kind, title, order=None, sources=(), **fields):
    from drills.models import Scenario, ScenarioSource

    order = order or plan.scenarios.count() + 1
    scenario = Scenario.objects.create(plan=plan, kind=kind, title=title, order=order, **fields)
    for source in sources:
        ScenarioSource.objects.create(scenario=scenario, source=source)
    return scenario


@pytest.fixture
def pg_source(db, system, tmp_path):
    """A PostgreSQL source on a real temporary database, with a local-disk backup job."""
    from backups.models import BackupJob, Destination, Source

    with temp_database("dr_drill_src_") as pg:
        fill_toolhub(pg)
        source = Source.objects.create(
            system=system,
            name="toolhub-pg",
            kind="postgresql",
            data_class="critical",
            host=pg.host,
            port=pg.port,
            database=pg.dbname,
            user=pg.user,
            checks=[
                {"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"}
            ],
        )
        dest = Destination.objects.create(name="local", kind="local", path=str(tmp_path / "store"))
        job = BackupJob.objects.create(name="toolhub-pg nightly", source=source)
        job.destinations.set([dest])
        source.job = job
        yield source


@pytest.fixture
def sqlite_source(db, system, tmp_path):
    from backups.models import BackupJob, Destination, Source
    from dr_portal.lib.demo import create_tool_hub

    path = create_tool_hub(tmp_path / "tool_hub.db", executions=50)
    source = Source.objects.create(
        system=system,
        name="toolhub-db",
        kind="sqlite",
        data_class="critical",
        path=str(path),
        checks=[{"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"}],
    )
    dest = Destination.objects.create(name="local", kind="local", path=str(tmp_path / "store"))
    job = BackupJob.objects.create(name="toolhub-db nightly", source=source)
    job.destinations.set([dest])
    source.job = job
    return source


def backup(source):
    from backups.services import backup_now

    run = backup_now(source.job)
    assert run.status == "succeeded", run.error
    return run


@pytest.fixture
def manual_plan(db, system, contacts):
    """A plan with a manual checklist then a call-out of two participants (no workers needed)."""
    plan = make_plan(systems=[system], participants=contacts)
    add_scenario(
        plan,
        "manual",
        "Simulate network failure",
        failure_type="network_outage",
        checklist="Cut the link to the database\nConfirm the service reports degraded\n"
        "Restore the link",
    )
    add_scenario(plan, "callout", "Call the participants", time_budget=timedelta(minutes=15))
    return plan


@pytest.fixture
def running_drill(manual_plan, operator):
    from drills.services import start_drill

    return start_drill(manual_plan, operator)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The persona fixtures hash a password per user; PBKDF2 would dominate these tests."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
