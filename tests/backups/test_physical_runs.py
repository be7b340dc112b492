"""Physical backup runs, pitr_setup and the window task on a real cluster archiving into a
real pgBackRest repository, configured exactly as the portal's source row says (the same
config path and passphrase Source.to_stanza() builds), so archive_command and the portal
agree on one stanza."""

import json
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from backups import physical, pitr, retention, services
from backups.engine import pgbackrest
from backups.models import BackupJob, BackupRun, PitrWindow
from backups.tasks import refresh_pitr_windows
from dr_portal.lib import keyring
from dr_portal.runs import RunStatus
from incidents.models import Alert
from incidents.tasks import check_rpo_targets
from tests.factories import (
    BackupJobFactory,
    DestinationFactory,
    RestoreTestFactory,
    SourceFactory,
)
from tests.marks import needs
from tests.support.pitr import (
    ARCHIVE_TIMEOUT_S,
    Writer,
    make_stanza,
    owned_tempdir,
    pitr_cluster,
    wait_until,
)

NAME = "pitrsrc"
# pgBackRest's progress lines reach the run row from the runner's reader thread, through
# its own database connection, as in a worker: the test's rows must be committed for it.
pytestmark = pytest.mark.django_db(transaction=True)


def portal_stanza(var_dir: Path):
    """The stanza the portal builds for NAME with this var dir (config path, passphrase)."""

    def build(base, port):
        stanza = make_stanza(base, port, NAME)
        passphrase = pitr.cipher_pass(keyring.newest(), NAME)
        return replace(stanza, cipher_pass=passphrase, config_dir=str(var_dir / "pgbackrest"))

    return build


@pytest.fixture(scope="module")
@needs("postgres", "slow")
def cluster():
    var_dir = owned_tempdir("dr-pitr-var-")
    with override_settings(VAR_DIR=var_dir), pitr_cluster(stanza=portal_stanza(var_dir)) as c:
        c.var_dir = var_dir
        yield c
    subprocess.run(["rm", "-rf", str(var_dir)], check=False)


@pytest.fixture
def source(cluster, system):
    with override_settings(VAR_DIR=cluster.var_dir):
        row = SourceFactory(
            system=system,
            name=NAME,
            postgresql=True,
            host=cluster.socket_dir,
            port=cluster.port,
            database="postgres",
            pitr=True,
            data_directory=str(cluster.data),
            archive_timeout_s=ARCHIVE_TIMEOUT_S,
        )
        repo = DestinationFactory(name="repo", path=str(Path(cluster.stanza.repos[0].path)))
        row.job = BackupJobFactory(
            source=row,
            name="pitrsrc-physical",
            method=BackupJob.Method.PHYSICAL,
            backup_type=BackupJob.BackupType.INCR,
            destinations=[repo],
        )
        row.repo = repo
        yield row


def test_the_portal_builds_the_stanza_the_cluster_archives_with(source, cluster):
    assert source.to_stanza() == cluster.stanza


def test_physical_runs_record_sets_chains_and_the_window_and_a_failure_keeps_nothing(
    source, cluster, sync_queue, operator_client
):
    # "Run now" (the portal) → the task → execute(): pgBackRest promotes the first incr to full
    before = {b.label for b in pgbackrest.backups(cluster.stanza)}
    response = sync_queue(operator_client.post, f"/backups/jobs/{source.job.pk}/run/")
    assert response.status_code == 302
    first = BackupRun.objects.get(job=source.job)
    assert first.status == RunStatus.SUCCEEDED, first.log
    info = first.manifest["pgbackrest"]
    assert first.manifest["method"] == "physical"
    assert info["label"] == first.artifact_key and info["label"] not in before
    assert info["type"] == "full" and "no prior backup" in first.log  # the REAL type, said so
    listed = {b.label: b for b in pgbackrest.backups(cluster.stanza)}
    assert listed[first.artifact_key].kind == "full"
    assert first.bytes_read == listed[first.artifact_key].size > 0
    assert first.bytes_stored == listed[first.artifact_key].repo_delta > 0
    assert first.data_taken_at == listed[first.artifact_key].stopped
    copy = first.copies.get()
    assert copy.location == f"pgbackrest:{NAME}/{first.artifact_key}" and copy.is_live
    window = PitrWindow.objects.get(source=source)
    assert window.error == "" and window.oldest == first.data_taken_at + timedelta(seconds=1)
    assert window.newest is not None

    # backup_now: an incremental based on the full
    cluster.sql("CREATE TABLE IF NOT EXISTS more AS SELECT generate_series(1, 10000) AS n")
    second = services.backup_now(source.job)
    assert second.status == RunStatus.SUCCEEDED, second.log
    assert second.manifest["pgbackrest"]["type"] == "incr"
    assert second.manifest["pgbackrest"]["prior"] == first.artifact_key
    page = operator_client.get(f"/backups/runs/{second.pk}/").content.decode()
    for shown in (second.artifact_key, first.artifact_key, info["wal_start"][:8], "incr"):
        assert shown in page

    # the cluster is down: pgBackRest keeps no set, the run is failed, the incr stays newest
    cluster.stop()
    try:
        sets_before = {b.label for b in pgbackrest.backups(cluster.stanza)}
        third = services.backup_now(source.job)
        assert third.status == RunStatus.FAILED and third.error
        assert cluster.stanza.cipher_pass not in third.log + third.error
        assert not third.copies.exists() and not third.is_good
        assert {b.label for b in pgbackrest.backups(cluster.stanza)} == sets_before
        newest = BackupRun.objects.good().filter(source=source).order_by("-data_taken_at").first()
        assert newest.pk == second.pk
    finally:
        cluster.start()


def test_pitr_setup_exits_0_when_a_segment_was_archived_and_read_back(source, capsys):
    call_command("pitr_setup", NAME, "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["problems"] == []
    assert out["message"].startswith("WAL segment") and "repo1" in out["message"]
    assert out["lines"] == pgbackrest.postgresql_conf_lines(source.to_stanza())
    assert source.to_stanza().cipher_pass not in json.dumps(out)


def test_pitr_setup_names_archive_mode_on_a_cluster_without_the_lines(system, capsys):
    var_dir = owned_tempdir("dr-pitr-var-")
    try:
        with (
            override_settings(VAR_DIR=var_dir),
            pitr_cluster(archiving=False, stanza=portal_stanza(var_dir)) as bare,
        ):
            src = SourceFactory(
                system=system,
                name=NAME,
                postgresql=True,
                host=bare.socket_dir,
                port=bare.port,
                database="postgres",
                pitr=True,
                data_directory=str(bare.data),
                archive_timeout_s=ARCHIVE_TIMEOUT_S,
            )
            BackupJobFactory(
                source=src,
                method=BackupJob.Method.PHYSICAL,
                destinations=[DestinationFactory(path=bare.stanza.repos[0].path)],
            )
            with pytest.raises(SystemExit) as exited:
                call_command("pitr_setup", NAME)
            assert exited.value.code == 1
            out = capsys.readouterr().out
            assert "missing: archive_mode is off, not on" in out
            assert "missing: archive_command" in out and "archive_mode = on" in out
    finally:
        subprocess.run(["rm", "-rf", str(var_dir)], check=False)


def test_the_window_task_records_newest_within_a_minute_with_the_writer_running(source, cluster):
    full = pgbackrest.backup(cluster.stanza, "full")
    writer = Writer(cluster)
    writer.start()
    try:

        def fresh():
            refresh_pitr_windows()
            row = PitrWindow.objects.get(source=source)
            return (
                row.newest
                # WAL the writer filled after the backup, archived by archive_timeout …
                and row.newest >= full.stopped + timedelta(seconds=2 * ARCHIVE_TIMEOUT_S)
                # … and read by the task within a minute of now
                and timezone.now() - row.newest < timedelta(seconds=60)
            )

        wait_until(fresh, 4 * ARCHIVE_TIMEOUT_S + 30, every=2, what="a window newer than a minute")
    finally:
        writer.stop()
    row = PitrWindow.objects.get(source=source)
    assert row.error == "" and row.oldest < row.newest


def test_one_sources_failure_does_not_stop_the_window_task(source, cluster, system):
    broken = SourceFactory(
        system=system, name="aaa-broken", postgresql=True, pitr=True, data_directory="/nonexistent"
    )
    results = physical.refresh_all_windows()
    assert "no repository" in PitrWindow.objects.get(source=broken).error
    assert results[NAME] and PitrWindow.objects.get(source=source).error == ""


def test_retention_expires_whole_chains_but_never_the_verified_or_the_newest(source, cluster):
    source.repo.keep_last, source.repo.keep_days = 1, 1
    source.repo.save()
    source.job.backup_type = BackupJob.BackupType.FULL
    source.job.save()
    fulls = []
    for _ in range(3):
        run = services.backup_now(source.job)  # retention after each: all younger than a day
        assert run.status == RunStatus.SUCCEEDED, run.log
        fulls.append(run)
    oldest, middle, newest = fulls
    RestoreTestFactory(source=source, backup_run=oldest, status=RunStatus.SUCCEEDED)
    later = timezone.now() + timedelta(days=2)

    retention.apply(source.repo, source_ids=[source.pk], now=later)

    labels = {b.label for b in pgbackrest.backups(cluster.stanza)}
    assert middle.artifact_key not in labels
    assert {oldest.artifact_key, newest.artifact_key} <= labels
    gone = middle.copies.get()
    assert gone.deleted_at is not None and gone.deleted_reason.startswith(
        f"pgbackrest expire {middle.artifact_key}"
    )
    assert oldest.copies.get().is_live and newest.copies.get().is_live
    # the WAL the kept backups need is still there: the window still reaches back to the
    # verified backup (earlier tests of this module may have left older sets in the repo)
    window = physical.refresh_window(source)
    assert window.error == "" and window.oldest <= oldest.data_taken_at + timedelta(seconds=1)


def test_a_lost_wal_segment_ends_the_window_and_raises_the_gap_alert_once(source, cluster):
    """End to end: a segment deleted from the repository → the window task records the gap
    → the periodic RPO check raises one wal_gap alert naming the segment. Last in the module:
    the gap stays in this repository."""
    # The database is emptied between tests: give the source its history back (a source
    # that never ran a backup is new, and new sources do not page before their first slot).
    services.backup_now(source.job)
    switched = []
    for _ in range(3):
        cluster.sql("CREATE TABLE IF NOT EXISTS t_gap (id int); INSERT INTO t_gap VALUES (1)")
        switched.append(cluster.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
    wait_until(
        lambda: pgbackrest.window(cluster.stanza).newest_segment >= switched[-1],
        30,
        what="the switched segments to be archived",
    )
    victim = switched[1]
    lost = list(cluster.repo_dir.rglob(f"{victim}-*"))
    assert lost, f"segment {victim} is not in the repository"
    for path in lost:
        path.unlink()

    refresh_pitr_windows()
    row = PitrWindow.objects.get(source=source)
    assert row.missing_segment == victim and row.gap_after < victim
    assert row.newest_segment < victim  # the window ends before the gap
    check_rpo_targets()
    check_rpo_targets()  # deduplicated: still one open alert
    alerts = Alert.objects.filter(key=f"wal_gap:{source.pk}", recovered__isnull=True)
    assert alerts.count() == 1
    assert victim in f"{alerts[0].title} {alerts[0].detail}"
