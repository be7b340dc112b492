"""Shared fixtures, one per idea: personas and their clients, django-q2 tasks run inline,
a local destination, the restore work directory.

Rows come from tests/factories.py. Fixtures that need a real outside part mark the test
that uses them (see docs/testing.md): the PostgreSQL server `postgres`, Chromium `browser`,
a real worker cluster `slow`.
"""

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import PASSWORD, DestinationFactory, SystemFactory, UserFactory
from tests.marks import add_fixture_markers, needs

__all__ = ["PASSWORD"]


def pytest_collection_modifyitems(items):
    add_fixture_markers(items)  # tests/marks.py: a fixture's markers go on its users


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
def system(db):
    """The "Tool Hub" system the sources of most tests belong to."""
    return SystemFactory(name="Tool Hub")


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


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
@needs("browser")
def browser():
    """Debian's Chromium through Playwright, one per test module."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash .ci/test-deps` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only browser tests pay for it

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser steps are ordinary synchronous calls. Only while this module runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
