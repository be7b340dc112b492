"""Fixtures of the backups tests: a real SQLite source, real local destinations in tmp_path."""

import pytest

from backups.models import BackupJob, Destination, Source, System
from dr_portal.lib import demo


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The personas log in with force_login; hashing their passwords slowly buys nothing here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def system(db):
    return System.objects.create(name="Tool Hub")


@pytest.fixture
def sqlite_path(tmp_path):
    return demo.create_tool_hub(tmp_path / "src" / "tool_hub.db", executions=300)


@pytest.fixture
def sqlite_source(system, sqlite_path):
    return Source.objects.create(
        system=system,
        name="toolhub-db",
        kind="sqlite",
        path=str(sqlite_path),
        data_class="critical",
        checks=[{"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"}],
    )


@pytest.fixture
def local_dest(db, tmp_path):
    return Destination.objects.create(
        name="local", kind="local", path=str(tmp_path / "dest-a"), keep_days=7, keep_last=3
    )


@pytest.fixture
def second_dest(db, tmp_path):
    return Destination.objects.create(
        name="second", kind="local", path=str(tmp_path / "dest-b"), keep_days=7, keep_last=3
    )


@pytest.fixture
def job(sqlite_source, local_dest):
    job = BackupJob.objects.create(
        name="toolhub-hourly", source=sqlite_source, schedule="0 * * * *", timezone="UTC"
    )
    job.destinations.set([local_dest])
    return job


@pytest.fixture
def q_sync(monkeypatch):
    """django-q2 in sync mode: async_task runs the task inline (Conf is read at import)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)
    return Conf
