"""Fixtures for drills: plans, contacts, real sources backed up through the backups app."""

from datetime import timedelta

import pytest

from tests.factories import (
    COUNT_WORKFLOWS,
    BackupJobFactory,
    ContactFactory,
    DestinationFactory,
    DrillPlanFactory,
    ScenarioFactory,
    SourceFactory,
)
from tests.marks import needs
from tests.recovery.pgutil import fill_toolhub, temp_database


@pytest.fixture
def contacts(db):
    return [
        ContactFactory(role="DevOps", name="Dana Ops", email="dana@example.com"),
        ContactFactory(role="DBA", name="Bea Base", email="bea@example.com"),
    ]


def make_plan(name="Quarterly DR drill", systems=(), participants=(), **fields):
    return DrillPlanFactory(name=name, systems=systems, participants=participants, **fields)


def add_scenario(plan, kind, title, order=None, sources=(), **fields):
    if order:
        fields["order"] = order
    return ScenarioFactory(plan=plan, kind=kind, title=title, sources=sources, **fields)


@pytest.fixture
@needs("postgres")
def pg_source(db, system, tmp_path):
    """A PostgreSQL source on a real temporary database, with a local-disk backup job."""
    with temp_database("dr_drill_src_") as pg:
        fill_toolhub(pg)
        source = SourceFactory(
            system=system,
            name="toolhub-pg",
            postgresql=True,
            data_class="critical",
            host=pg.host,
            port=pg.port,
            database=pg.dbname,
            user=pg.user,
            checks=COUNT_WORKFLOWS,
        )
        source.job = local_job(source, "toolhub-pg nightly", tmp_path)
        yield source


@pytest.fixture
def sqlite_source(db, system, tmp_path):
    from dr_portal.lib.demo import create_tool_hub

    path = create_tool_hub(tmp_path / "tool_hub.db", executions=50)
    source = SourceFactory(
        system=system,
        name="toolhub-db",
        sqlite=True,
        data_class="critical",
        path=str(path),
        checks=COUNT_WORKFLOWS,
    )
    source.job = local_job(source, "toolhub-db nightly", tmp_path)
    return source


def local_job(source, name, tmp_path):
    dest = DestinationFactory(name="local", path=str(tmp_path / "store"))
    return BackupJobFactory(name=name, source=source, destinations=[dest])


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
def fast_password_hashing(fast_password_hashing):
    """Every test here: the root fixture's fast hashing (personas are made per test)."""
