"""Restore tests run by a real cluster fail, and name the cause, when the artifact or the
scratch server is bad: a corrupted artifact, a truncated one, one sealed with a key that is
not in the ring, and a PostgreSQL backup whose scratch server is down.

The backups are real (taken in this process through the same service the worker uses);
the damage is done to the stored files with plain file operations.
"""

import base64
import os
from pathlib import Path

import pytest

from backups import services as backup_services
from backups.models import BackupRun
from incidents.events import process_events
from incidents.models import Alert
from recovery import restore_tests
from recovery.models import RestoreTest
from tests.factories import BackupJobFactory, DestinationFactory
from tests.faults.conftest import wait_run
from tests.support import data
from tests.support.cluster import running_cluster
from tests.support.portal import free_port

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OTHER_KEY = base64.urlsafe_b64encode(b"w" * 32).decode()


def backed_up(name, tmp_path, **source_fields):
    source = data.sqlite_source(name, data.small_sqlite(tmp_path / f"{name}.db"), **source_fields)
    job = BackupJobFactory(
        name=f"{name}-job",
        source=source,
        destinations=[DestinationFactory(name=name, path=str(tmp_path / name))],
    )
    run = backup_services.backup_now(job)
    assert run.status == "succeeded", run.error
    return source, Path(run.copies.get().location)


@pytest.mark.postgres
def test_restore_tests_fail_naming_the_cause(tmp_path, settings):
    corrupt_src, corrupt = backed_up("corrupt-db", tmp_path)
    raw = bytearray(corrupt.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 16] = bytes(b ^ 0xFF for b in raw[middle : middle + 16])
    corrupt.write_bytes(bytes(raw))

    truncated_src, truncated = backed_up("truncated-db", tmp_path)
    size = truncated.stat().st_size
    with open(truncated, "r+b") as fh:
        fh.truncate(size - 100)

    settings.DR_ENCRYPTION_KEYS = OTHER_KEY  # sealed with a key the workers do not hold
    wrong_key_src, _ = backed_up("wrong-key-db", tmp_path)
    settings.DR_ENCRYPTION_KEYS = os.environ["DR_ENCRYPTION_KEYS"]

    with data.pg_database(prefix="dr_faults_") as dbname:
        pg_src = data.pg_source("pg-db", dbname)
        pg_job = BackupJobFactory(
            name="pg-db-job",
            source=pg_src,
            destinations=[DestinationFactory(name="pg", path=str(tmp_path / "pg"))],
        )
        pg_run = backup_services.backup_now(pg_job)
        assert pg_run.status == "succeeded", pg_run.error

        dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
        sources = [corrupt_src, truncated_src, wrong_key_src, pg_src]
        with running_cluster(workers=2, DR_SCRATCH_DATABASE_URL=dead):
            tests = {}
            for source in sources:
                test = restore_tests.start_restore_test(source)
                restore_tests.enqueue_restore_test(test)
                tests[source.name] = test
            done = {
                name: wait_run(RestoreTest, t.pk, {"failed", "succeeded"}, timeout=90)
                for name, t in tests.items()
            }

    for name, test in done.items():
        assert test.status == "failed", (name, test.error)
        assert not test.error.startswith("unexpected error"), test.error
    assert "could be read" in done["corrupt-db"].error
    assert "authentication failed" in done["corrupt-db"].error
    assert "truncated" in done["truncated-db"].error
    assert "not in the key ring" in done["wrong-key-db"].error
    assert "scratch" in done["pg-db"].error.lower() or "connect" in done["pg-db"].error
    assert str(dead.rsplit(":", 1)[1].split("/")[0]) in done["pg-db"].error  # names the server

    # A bad artifact marks its backup not restorable; a missing key or a down scratch server
    # says nothing about the artifact, so those backups stay restorable.
    def restorable(source):
        return BackupRun.objects.get(source=source).restorable

    assert not restorable(corrupt_src) and not restorable(truncated_src)
    assert restorable(wrong_key_src) and restorable(pg_src)

    # One alert per source, each naming its test's cause (they follow the tests' events;
    # whatever the workers left is processed here).
    process_events()
    alerts = Alert.objects.filter(kind="restore_test_failed")
    assert alerts.count() == len(sources)
    assert all(a.seen_count == 1 for a in alerts)
