"""Shared fixtures, one per idea: personas and their clients, django-q2 tasks run inline,
a local destination, the restore work directory.

Rows come from tests/factories.py. Fixtures that need a real outside part mark the test
that uses them (see docs/testing.md): the PostgreSQL server `postgres`, Chromium `browser`,
a real worker cluster `slow`.
"""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import PASSWORD, DestinationFactory, UserFactory

__all__ = ["PASSWORD"]


@pytest.fixture
def viewer(db):
    return UserFactory(username="vera", role="viewer")


@pytest.fixture
def operator(db):
    return UserFactory(username="otto", role="operator")


@pytest.fixture
def manager(db):
    return UserFactory(username="mona", role="manager")


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


def _client_for(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(viewer):
    return _client_for(viewer)


@pytest.fixture
def operator_client(operator):
    return _client_for(operator)


@pytest.fixture
def manager_client(manager):
    return _client_for(manager)


@pytest.fixture
def superuser_client(superuser):
    return _client_for(superuser)


@pytest.fixture
def sync_queue(monkeypatch, django_capture_on_commit_callbacks):
    """django-q2 in sync mode: async_task runs the task inline (Conf is read at import).

    Tasks enqueued on commit run when the captured callbacks do: `sync_queue(fn, *args)`
    calls fn and then runs what it enqueued, returning fn's result.
    """
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


@pytest.fixture
def work_dir(tmp_path, settings):
    """Where restore tests unpack artifacts; must be empty again after every test."""
    path = tmp_path / "restore-work"
    path.mkdir()
    settings.DR_RESTORE_TMP_DIR = str(path)
    return path


@pytest.fixture
def local_destination(tmp_path):
    """A local-directory destination named "local" under tmp_path/store."""
    return DestinationFactory(name="local", path=str(tmp_path / "store"))


@pytest.fixture
def fast_password_hashing(settings):
    """MD5 instead of PBKDF2's many rounds for users made per test and logged in with
    force_login. Not for tests whose users log in to a server process (e2e): its settings
    keep the real hashers. A directory opts in with an autouse override of this name."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
