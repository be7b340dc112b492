"""The shared factories build what their names promise (tests/factories.py)."""

from backups.models import BackupRun
from tests.factories import (
    PASSWORD,
    BackupJobFactory,
    BackupRunFactory,
    DestinationFactory,
    DrillPlanFactory,
    ScenarioFactory,
    SourceFactory,
    UserFactory,
)


def test_a_good_backup_is_found_by_the_one_good_filter(db, tmp_path):
    dest = DestinationFactory(name="local", path=str(tmp_path))
    source = SourceFactory(postgresql=True)
    run = BackupRunFactory(good=True, source=source, destination=dest)
    assert list(BackupRun.objects.good()) == [run]
    assert run.copies.get().destination == dest
    assert BackupRunFactory(source=source).status == "queued"  # a plain run is not good
    assert list(BackupRun.objects.good()) == [run]


def test_source_kinds_and_defaults(db):
    pg = SourceFactory(postgresql=True)
    assert (pg.kind, pg.path, pg.host, pg.data_class) == (
        "postgresql",
        "",
        "127.0.0.1",
        "important",
    )
    assert SourceFactory(files=True).kind == "files"
    assert SourceFactory(portal_db=True).is_portal_db
    assert SourceFactory().system == pg.system  # one "Tool Hub" system, got or created


def test_relations_are_set_after_creation(db):
    dest = DestinationFactory()
    job = BackupJobFactory(destinations=[dest])
    assert list(job.destinations.all()) == [dest] and job.name == f"{job.source.name}-job"
    plan = DrillPlanFactory()
    assert [ScenarioFactory(plan=plan).order for _ in range(2)] == [1, 2]
    user = UserFactory(username="olga", role="operator")
    assert user.check_password(PASSWORD) and user.groups.get().name == "operator"
