"""PITR restore tests on a real archiving cluster with a writer: restore to a point in
scratch, checks, heartbeat, RTO by phase, RPO proven ≤ archive_timeout + 10 s; nothing left
behind on any exit path; a failing check or a wrong repository key fails the test."""

import base64
import os
from datetime import timedelta

import pytest

from backups.engine import pgbackrest
from dr_portal.lib import keyring
from recovery import pitr_tests, restore_tests
from recovery.cleanup import after_lost
from recovery.engine import pitr
from recovery.models import PitrPoint, Restore, RestoreTarget, RestoreTest
from tests.environment import TEST_MASTER_KEY
from tests.factories import DestinationFactory, RestoreTargetFactory, RunbookFactory
from tests.failover.runs import run_inline
from tests.marks import needs
from tests.support.pitr import ARCHIVE_TIMEOUT_S, Writer, owned_tempdir, pitr_cluster
from tests.support.pitr_portal import call, make_portal_source, portal_passphrase, wait_for_archive

NAME = "pitr-rt"


@pytest.fixture(scope="module")
@needs("postgres", "slow")
def cluster():
    with pitr_cluster(name=NAME, cipher_pass=portal_passphrase(NAME)) as cluster:
        writer = Writer(cluster)
        writer.start()
        try:
            cluster.sql("SELECT pg_switch_wal()")
            cluster.full = pgbackrest.backup(cluster.stanza, "full")
            yield cluster
        finally:
            writer.stop()


@pytest.fixture
def scratch(settings):
    parent = owned_tempdir("dr-pitr-rt-scratch-")
    settings.DR_PITR_SCRATCH_DIR = str(parent)
    yield parent
    pitr.sweep(str(parent), older_than_s=-60)
    parent.rmdir()


@pytest.fixture
def source(cluster, settings, db, scratch):
    wait_for_archive(cluster, 4)
    return make_portal_source(cluster, settings)


def servers_under(path) -> list[int]:
    """Processes whose command line names `path` (a copy's postmaster runs with -D there)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if str(path).encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_newest_point_proves_rpo_within_archive_timeout(source, scratch):
    code, out = call("verify_backup", "--source", source.name, "--json")

    assert code == 0, out
    assert out["status"] == "passed" and out["point"] == "newest"
    assert out["rpo_s"] <= ARCHIVE_TIMEOUT_S + 10, out
    assert list(out["phases"]) == ["fetch", "replay", "checks", "cleanup"]
    assert all(out["phases"][p] > 0 for p in ("fetch", "replay", "checks"))
    test = RestoreTest.objects.get(pk=out["test"])
    assert test.data_basis in ("heartbeat", "replay") and test.recovered_to <= test.target_time
    assert test.target_time >= test.started - timedelta(seconds=1)  # the newest: the test's start
    assert [c["outcome"] for c in test.checks] == ["passed"]
    assert test.copy_destination is not None and test.temporaries == []
    assert os.listdir(scratch) == [] and servers_under(scratch) == []


def test_the_next_test_restores_a_random_point_inside_the_window(source, scratch):
    first = RestoreTest.objects.create(source=source, pitr_point=PitrPoint.NEWEST)
    RestoreTest.objects.filter(pk=first.pk).update(status="succeeded")
    assert pitr_tests.next_point(source) == PitrPoint.RANDOM

    test = restore_tests.execute_restore_test(restore_tests.start_restore_test(source))

    assert test.passed, test.error
    win = pgbackrest.window(source.to_stanza())
    assert test.pitr_point == PitrPoint.RANDOM
    assert win.oldest <= test.target_time <= win.newest
    assert test.recovered_to <= test.target_time
    # The writer commits every 0.2 s and beats every second: the copy proves it to the second.
    assert test.data_age <= timedelta(seconds=2)
    assert os.listdir(scratch) == []


def test_a_given_point(source, scratch):
    at = pgbackrest.window(source.to_stanza()).newest - timedelta(seconds=3)
    code, out = call("verify_backup", "--source", source.name, "--at", at.isoformat(), "--json")
    assert code == 0, out
    assert out["point"] == "given" and out["target"] == at.isoformat()
    assert out["recovered_to"] <= out["target"]


def test_a_test_pinned_to_the_repository_reads_it_and_others_are_refused(source, scratch):
    repo = source.physical_destinations()[0]
    conf = os.path.join(str(source.to_stanza().config_dir), f"{source.name}.conf")
    before = open(conf).read()

    test = restore_tests.execute_restore_test(
        restore_tests.start_restore_test(source, destination=repo)
    )

    assert test.passed, test.error
    assert test.destination == repo and test.copy_destination == repo
    assert open(conf).read() == before  # archive_command's configuration is left whole
    with pytest.raises(restore_tests.NoCopyThere, match="no pgBackRest repository"):
        restore_tests.start_restore_test(source, destination=DestinationFactory())


def test_a_failing_check_fails_the_test_and_cleans_up(source, scratch):
    source.checks = [{"name": "rows", "sql": "SELECT count(*) FROM pitr_rows", "expect": "< 0"}]
    source.save()
    code, out = call("verify_backup", "--source", source.name, "--json")
    assert code == 1 and out["status"] == "failed"
    assert "verification: rows failed" in out["error"]
    assert os.listdir(scratch) == [] and servers_under(scratch) == []


def test_a_wrong_repository_key_fails_with_a_clear_error(source, scratch, settings):
    other = base64.urlsafe_b64encode(b"w" * 32).decode()
    settings.DR_ENCRYPTION_KEYS = f"{other},{TEST_MASTER_KEY}"
    source.pitr_key_id = keyring.newest().key_id  # the ring's new key: not the stanza's
    source.save()

    code, out = call("verify_backup", "--source", source.name, "--json")

    assert code == 1
    assert "encryption passphrase does not match" in out["error"], out["error"]
    assert portal_passphrase(NAME) not in str(out)
    assert os.listdir(scratch) == []


def test_the_reaper_stops_and_removes_a_dead_workers_scratch_copy(source, scratch):
    test = RestoreTest.objects.create(source=source)
    with pitr.ScratchRestore(source.to_stanza(), str(scratch), at=None) as got:
        path = os.path.dirname(got.data_dir)
        test.record_temporary(kind="pitr_scratch", path=path, host="")
        pitr_pid = int(open(os.path.join(got.data_dir, "postmaster.pid")).readline())
        after_lost(test)  # the worker died here: the reaper removes what it recorded
        assert not os.path.exists(path)
        assert not os.path.exists(f"/proc/{pitr_pid}/cmdline") or pitr_pid not in servers_under(
            scratch
        )
    test.refresh_from_db()
    assert test.temporaries == []


def _runbook(source, target_name, port, directory="failover-copy"):
    return RunbookFactory(
        failure_type="database_failure",
        steps=[
            {
                "name": "Restore to a point",
                "kind": "pitr_restore",
                "verification": True,
                "timeout": 600,
                "params": {
                    "source": source.name,
                    "at": "latest",
                    "target": target_name,
                    "directory": directory,
                    "port": port,
                },
            }
        ],
    )


def test_failover_step_in_test_mode_restores_into_scratch_and_removes_it(source, scratch):
    runbook = _runbook(source, "nowhere", pitr.free_port())  # test mode never writes a target

    run = run_inline(runbook, mode="test")

    assert run.status == "succeeded", run.error
    step = run.step_runs.get()
    assert step.status == "succeeded" and "in scratch" in step.output, step.output
    assert run.rto is not None  # measured, though nothing was put in service
    test = RestoreTest.objects.get(source=source)
    assert test.passed and test.pitr_point == PitrPoint.NEWEST
    assert os.listdir(scratch) == [] and servers_under(scratch) == []
    assert Restore.objects.count() == 0


def test_failover_step_live_restores_into_the_target_and_starts_it(source):
    parent = owned_tempdir("dr-pitr-failover-")
    RestoreTargetFactory(
        name="restored clusters",
        kind=RestoreTarget.Kind.DATADIR,
        path=str(parent),
        port=1024,
        port_max=65535,
        host="",
        user="",
        database="",
    )
    port = pitr.free_port()
    try:
        run = run_inline(_runbook(source, "restored clusters", port), mode="live")

        assert run.status == "succeeded", run.error
        assert run.rto is not None
        restore = Restore.objects.get(source=source)
        assert restore.status == "succeeded" and restore.declared_at == run.declared_at
        assert restore.target == str(parent / "failover-copy")
        assert servers_under(parent)  # started, and left running for service
    finally:
        pitr.stop_and_remove(str(parent / "failover-copy"))
        parent.rmdir()
