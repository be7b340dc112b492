"""manage.py restore --source --at on a real archiving cluster with a writer: a registered
data directory target gets exactly the rows committed at or before the point, refusals
change nothing, and a restore onto the source's own directory needs it stopped and keeps
the old directory aside."""

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from django.core.management.base import CommandError
from django.urls import reverse

from backups.engine import pgbackrest
from recovery import pitr_restores
from recovery.engine import pitr
from recovery.models import Restore, RestoreTarget
from tests.factories import RestoreTargetFactory
from tests.marks import needs
from tests.support.pitr import Writer, commit_times, owned_tempdir, pitr_cluster, wait_until
from tests.support.pitr_portal import (
    call,
    make_portal_source,
    portal_passphrase,
    wait_for_archive,
)

NAME = "pitr-cmd"


@pytest.fixture(scope="module")
@needs("postgres", "slow")
def cluster():
    with pitr_cluster(name=NAME, cipher_pass=portal_passphrase(NAME)) as cluster:
        writer = Writer(cluster)
        writer.start()
        try:
            cluster.sql("SELECT pg_switch_wal()")
            cluster.full = pgbackrest.backup(cluster.stanza, "full")
            cluster.writer = writer
            yield cluster
        finally:
            if writer.is_alive():
                writer.stop()


@pytest.fixture
def source(cluster, settings, db):
    return make_portal_source(cluster, settings)


@pytest.fixture
def parent():
    path = owned_tempdir("dr-pitr-targets-")
    yield path
    for child in path.iterdir():
        pitr.stop_and_remove(str(child))
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def target(parent, source):
    return RestoreTargetFactory(
        name="pitr copies",
        kind=RestoreTarget.Kind.DATADIR,
        path=str(parent),
        port=1024,
        port_max=65535,
        host="",
        user="",
        database="",
    )


def restore(source, at, datadir, port, *extra):
    return call(
        "restore",
        "--source",
        source.name,
        "--at",
        at,
        "--to-datadir",
        str(datadir),
        "--port",
        str(port),
        "--json",
        *extra,
    )


def test_restore_to_a_point_into_a_registered_target_and_start_it(cluster, source, target, parent):
    wait_for_archive(cluster, 6)
    with cluster.connect() as conn:
        rows = commit_times(conn)
    win = pgbackrest.window(cluster.stanza)
    inside = [(i, t) for i, t in rows if win.oldest < t <= win.newest]
    _, point = inside[len(inside) // 2]
    expected = [i for i, t in rows if t <= point]
    port = pitr.free_port()

    code, out = restore(source, point.isoformat(), parent / "copy1", port, "--start", "--yes")

    assert code == 0, out
    assert set(out) >= {"status", "target", "recovered_to", "rto_s", "error"}
    assert out["status"] == "succeeded" and out["error"] == ""
    assert out["target"] == point.isoformat() and out["recovered_to"] == point.isoformat()
    assert 0 < out["rto_s"] < 300
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres") as c:
        got = [r[0] for r in c.execute("SELECT id FROM pitr_rows ORDER BY id")]
        assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        assert c.execute("SHOW archive_mode").fetchone()[0] == "off"  # never into the stanza
    assert got == expected and len(got) < len(rows)
    row = Restore.objects.get(pk=out["restore"])
    assert [p["name"] for p in row.phases] == ["fetch", "replay", "checks", "start"]
    assert all(p["ok"] for p in row.phases)
    assert row.checks[0]["outcome"] == "passed" and row.restore_target == target
    assert row.target_time == point and row.pitr and row.rto is not None


def test_without_start_the_copy_is_stopped_and_ready_to_start(cluster, source, target, parent):
    wait_for_archive(cluster, 2)
    code, out = restore(source, "latest", parent / "copy2", pitr.free_port(), "--yes")
    assert code == 0, out
    data = parent / "copy2"
    assert not (data / "postmaster.pid").exists()
    auto = (data / "postgresql.auto.conf").read_text()
    assert "restore overrides" not in auto and f"port = '{out['port']}'" in auto
    assert not (data / "dr_portal_restore_hba.conf").exists()


@pytest.mark.parametrize(
    ("at", "extra", "message"),
    [
        ("yesterday noon", ("--yes",), "not an ISO-8601 date"),
        ("2001-01-01T00:00:00Z", ("--yes",), "outside the recoverable window"),
        ("latest", (), "add --yes"),
    ],
)
def test_bad_points_and_missing_yes_change_nothing(source, target, parent, at, extra, message):
    code, out = _refused(source, at, parent / "copy3", extra)
    assert code != 0
    assert message in str(out)
    assert not (parent / "copy3").exists() and Restore.objects.count() == 0


def _refused(source, at, datadir, extra):
    try:
        return restore(source, at, datadir, pitr.free_port(), *extra)
    except CommandError as exc:
        return 1, str(exc)


def test_a_directory_outside_registered_targets_is_refused(source, parent):
    code, out = restore(source, "latest", parent / "unregistered", pitr.free_port(), "--yes")
    assert code == 1 and "not directly under a registered data directory target" in out["error"]
    assert not (parent / "unregistered").exists() and Restore.objects.count() == 0


def test_the_portal_form_restores_to_the_chosen_point(
    cluster, source, target, parent, manager_client, sync_queue
):
    wait_for_archive(cluster, 4)
    point = pgbackrest.window(cluster.stanza).newest - timedelta(seconds=2)
    port = pitr.free_port()
    data = {
        "at": point.strftime("%Y-%m-%dT%H:%M:%S"),
        "restore_target": target.pk,
        "directory": "from-portal",
        "port": port,
        "failure_type": "database_failure",
        "confirm": source.name,
    }
    url = reverse("recovery:pitr_restore_new", args=[source.pk])

    page = sync_queue(manager_client.post, url, data)

    restore = Restore.objects.get()
    assert page.status_code == 302 and page.url == restore.get_absolute_url()
    assert restore.status == "succeeded", restore.error
    assert restore.target_time == point.replace(microsecond=0) >= restore.recovered_to
    shown = manager_client.get(page.url).content.decode()
    assert "Recovered to" in shown and f"{restore.recovered_to:%Y-%m-%d %H:%M:%S}" in shown
    assert "Measured RTO" in shown and "stopped and ready to start" in shown


def _a_failed_restore_puts_the_source_back(source, data, port):
    """The window moved on between queueing and running (retention expired the point): the
    restore fails after the directory was moved aside, so the old one must come back."""
    before = sorted(os.listdir(data))
    queued = pitr_restores.start_pitr_restore(source, at=None, data_dir=str(data), port=port)
    Restore.objects.filter(pk=queued.pk).update(target_time=datetime(2001, 1, 1, tzinfo=UTC))

    failed = pitr_restores.execute_pitr_restore(Restore.objects.get(pk=queued.pk))

    assert failed.status == "failed" and "outside the recoverable window" in failed.error
    assert "the previous data directory was put back" in failed.error
    assert sorted(os.listdir(data)) == before and failed.kept_aside == ""
    assert not [p for p in data.parent.iterdir() if ".before-restore-" in p.name]


def test_onto_the_source_refused_while_running_then_done_when_stopped(cluster, source):
    """Last in the module: it replaces the source cluster's data directory."""
    data = Path(cluster.data)
    before = sorted(os.listdir(data))
    code, out = restore(source, "latest", data, cluster.port, "--yes")
    assert code == 1 and "is not stopped" in out["error"] and "Nothing was changed" in out["error"]
    assert sorted(os.listdir(data)) == before and Restore.objects.count() == 0

    wait_for_archive(cluster, 4)
    cluster.writer.stop()
    with cluster.connect() as conn:
        rows = commit_times(conn)
    point = rows[-1][1] - timedelta(seconds=1)
    cluster.sql("CHECKPOINT")
    cluster.sql("SELECT pg_switch_wal()")
    wait_until(lambda: pgbackrest.window(cluster.stanza).newest >= point, 30, what="archive")
    cluster.stop()
    _a_failed_restore_puts_the_source_back(source, data, cluster.port)

    code, out = restore(source, point.isoformat(), data, cluster.port, "--start", "--yes")
    cluster.started = True  # the restored source runs now: teardown stops it

    assert code == 0, out
    aside = Path(out["kept_aside"])
    assert aside.name.startswith(data.name + ".before-restore-") and (aside / "PG_VERSION").exists()
    got = [r[0] for r in cluster.sql("SELECT id FROM pitr_rows ORDER BY id")]
    assert got == [i for i, t in rows if t <= point]
    shutil.rmtree(aside, ignore_errors=True)
