"""Fixtures of the backups tests: a real SQLite source, real local destinations in tmp_path."""

import pytest

from dr_portal.lib import demo
from tests.factories import (
    COUNT_WORKFLOWS,
    BackupJobFactory,
    DestinationFactory,
    SourceFactory,
)


@pytest.fixture(autouse=True)
def fast_password_hashing(fast_password_hashing):
    """Every test here: the root fixture's fast hashing (personas are made per test)."""


@pytest.fixture
def sqlite_path(tmp_path):
    return demo.create_tool_hub(tmp_path / "src" / "tool_hub.db", executions=300)


@pytest.fixture
def sqlite_source(system, sqlite_path):
    return SourceFactory(
        system=system,
        name="toolhub-db",
        sqlite=True,
        path=str(sqlite_path),
        data_class="critical",
        checks=COUNT_WORKFLOWS,
    )


@pytest.fixture
def local_dest(db, tmp_path):
    return DestinationFactory(name="local", path=str(tmp_path / "dest-a"), keep_days=7, keep_last=3)


@pytest.fixture
def second_dest(db, tmp_path):
    return DestinationFactory(
        name="second", path=str(tmp_path / "dest-b"), keep_days=7, keep_last=3
    )


@pytest.fixture
def job(sqlite_source, local_dest):
    return BackupJobFactory(
        name="toolhub-hourly",
        source=sqlite_source,
        schedule="0 * * * *",
        timezone="UTC",
        destinations=[local_dest],
    )
