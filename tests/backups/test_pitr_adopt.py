"""Adopting a stanza made OUTSIDE the portal, on a real cluster: a DBA's own pgBackRest
configuration (stanza "main", its own passphrase, its own archive_command), a full backup
taken by hand with plain `pgbackrest`; then a portal source adopting it reads the catalog
and the window, passes a PITR restore test, and never writes to the repository."""

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from backups import physical, physical_retention, pitr_adopt
from backups.engine import pgbackrest
from backups.engine.errors import PgBackRestError
from backups.models import BackupCopy, BackupJob, BackupRun, PitrWindow, Trigger
from backups.tasks import refresh_pitr_windows
from dr_portal.models import AuditEntry
from dr_portal.runs import RunStatus
from recovery.engine import pitr as pitr_engine
from tests.factories import BackupJobFactory, DestinationFactory, SourceFactory
from tests.marks import needs
from tests.support.pitr import (
    ARCHIVE_TIMEOUT_S,
    BIN,
    OS_USER,
    Cluster,
    Writer,
    as_postgres,
    free_port,
    make_stanza,
    owned_tempdir,
    wait_until,
)
from tests.support.pitr_portal import ROWS_CHECK, call

DBA_PASS = "the-dbas-own-passphrase-7f3a9c"
STANZA = "main"
WAL_FILE = re.compile(r"^archive/main/[^/]+/[0-9A-F]{16}/[0-9A-F]{24}-[0-9a-f]{40}(\.\w+)?$")
pytestmark = pytest.mark.django_db(transaction=True)


def dba_config(base: Path, port: int) -> str:
    """What a DBA writes by hand: nothing of it comes from the portal."""
    return "\n".join(
        [
            "[global]",
            f"repo1-path={base}/repo/pgbackrest",
            "repo1-cipher-type=aes-256-cbc",
            f"repo1-cipher-pass={DBA_PASS}",
            "repo1-retention-full=2",
            f"log-path={base}/dba/log",
            f"lock-path={base}/dba/lock",
            "",
            f"[{STANZA}]",
            f"pg1-path={base}/data",
            f"pg1-port={port}",
            f"pg1-socket-path={base}/sock",
            "",
        ]
    )


def dba(cluster, *args) -> str:
    """Plain pgbackrest with the DBA's configuration, as the postgres OS user."""
    return as_postgres(
        "pgbackrest", f"--config={cluster.dba_conf}", f"--stanza={STANZA}", *args, timeout=300
    )


def make_dir(path: Path, mode=0o700):
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, OS_USER, OS_USER)


@pytest.fixture(scope="module")
@needs("postgres", "slow")
def cluster():
    base = owned_tempdir("dr-pitr-adopt-")
    port = free_port()
    # The engine's stanza object only serves Cluster's helpers (start, stop, sql).
    cluster = Cluster(base, port, make_stanza(base, port, STANZA, cipher_pass=DBA_PASS))
    cluster.dba_conf = base / "dba" / "pgbackrest.conf"
    try:
        for sub in ("sock", "dba", "dba/log", "dba/lock", "repo", "repo/pgbackrest"):
            make_dir(base / sub, 0o750)
        cluster.dba_conf.write_text(dba_config(base, port))
        cluster.dba_conf.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(cluster.dba_conf, OS_USER, OS_USER)
        as_postgres(BIN / "initdb", "-D", base / "data", "-U", "postgres", "-A", "trust")
        command = f"pgbackrest --config={cluster.dba_conf} --stanza={STANZA} archive-push %p"
        lines = [
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{cluster.socket_dir}'",
            "fsync = off",
            "shared_buffers = 16MB",
            "autovacuum = off",
            "archive_mode = on",
            f"archive_command = '{command}'",
            f"archive_timeout = {ARCHIVE_TIMEOUT_S}",
            "wal_level = replica",
        ]
        with open(base / "data" / "postgresql.conf", "a") as conf:
            conf.write("\n" + "\n".join(lines) + "\n")
        cluster.start()
        dba(cluster, "stanza-create")
        writer = Writer(cluster)
        writer.start()
        try:
            cluster.sql("SELECT pg_switch_wal()")
            dba(cluster, "backup", "--type=full", "--start-fast")
            yield cluster
        finally:
            writer.stop()
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def scratch(settings):
    parent = owned_tempdir("dr-pitr-adopt-scratch-")
    settings.DR_PITR_SCRATCH_DIR = str(parent)
    yield parent
    pitr_engine.sweep(str(parent), older_than_s=-60)
    parent.rmdir()


@pytest.fixture
def source(cluster, settings, scratch):
    settings.VAR_DIR = owned_tempdir("dr-pitr-adopt-var-")
    row = SourceFactory(
        postgresql=True,
        name="erp-db",
        host=cluster.socket_dir,
        port=cluster.port,
        user="postgres",
        database="postgres",
        pitr=True,
        pitr_adopted=True,
        pitr_stanza=STANZA,
        pitr_cipher_pass=DBA_PASS,
        data_directory=str(cluster.data),
        archive_timeout_s=ARCHIVE_TIMEOUT_S,
        checks=[ROWS_CHECK],
    )
    row.full_clean()
    row.repo = DestinationFactory(name="dba-repo", local=True, path=str(cluster.base / "repo"))
    row.pitr_destinations.add(row.repo)
    yield row
    shutil.rmtree(settings.VAR_DIR, ignore_errors=True)


def listing(root: Path) -> dict[str, tuple]:
    """Every file and directory under the repository: content digest, size, owner, mode."""
    found = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(root))] = (digest, stat.st_size, stat.st_uid, stat.st_mode)
    return found


def dba_sets(cluster) -> list[str]:
    info = json.loads(dba(cluster, "info", "--output=json"))[0]
    return [b["label"] for b in info["backup"]]


def test_adopted_stanza_is_catalogued_read_and_restored_and_its_repository_left_alone(
    source, cluster, scratch
):
    repo_root = cluster.base / "repo" / "pgbackrest"
    dba_conf_before = cluster.dba_conf.read_bytes()
    before = listing(repo_root)
    (label,) = dba_sets(cluster)

    code, out = call("pitr_adopt", source.name, "--json")

    assert code == 0, out
    assert out["stanza"] == STANZA and out["runs_created"] == [label] and out["sets"] == [label]
    run = BackupRun.objects.get(source=source)
    assert run.trigger == Trigger.CATALOG and run.status == RunStatus.SUCCEEDED
    listed = {b.label: b for b in pgbackrest.backups(source.to_stanza())}
    assert run.manifest["method"] == "physical" and run.manifest["pgbackrest"]["label"] == label
    assert run.manifest["pgbackrest"]["type"] == "full"
    assert run.data_taken_at == listed[label].stopped and run.bytes_read == listed[label].size > 0
    copy = run.copies.get()
    assert copy.destination == source.repo and copy.is_live
    assert copy.location == f"pgbackrest:{STANZA}/{label}"
    assert BackupRun.objects.good().filter(pk=run.pk).exists()
    assert AuditEntry.objects.filter(action="pitr adopt", detail__contains="1 backup sets").exists()

    # a second run finds the same set and creates nothing
    code, again = call("pitr_adopt", source.name, "--json")
    assert code == 0 and again["runs_created"] == [] and again["copies_created"] == 0
    assert BackupRun.objects.filter(source=source).count() == 1

    # the window task reads the window of the adopted stanza (and syncs its catalog)
    def window_past_the_backup():
        refresh_pitr_windows()
        row = PitrWindow.objects.get(source=source)
        assert row.error == "" and row.oldest is not None, row.error
        return row.newest and row.newest > run.data_taken_at

    wait_until(window_past_the_backup, ARCHIVE_TIMEOUT_S + 30, what="WAL after the backup")

    # pitr_setup in adopt mode: no lines to add, what is in effect shown, check passes
    code, setup = call("pitr_setup", source.name, "--json")
    assert code == 0, setup
    assert setup["adopted"] and setup["lines"] == [] and setup["message"].startswith("WAL segment")
    assert any(str(cluster.dba_conf) in line for line in setup["in_effect"])
    portal_conf = Path(setup["config"])
    assert portal_conf.is_relative_to(Path(str(source.to_stanza().config_dir)))
    assert "adopted" in portal_conf.parts and portal_conf.stat().st_mode & 0o777 == 0o600
    assert DBA_PASS not in str(setup) and DBA_PASS not in json.dumps([out, again])

    # a PITR restore test of the newest point passes
    code, verified = call("verify_backup", "--source", source.name, "--json")
    assert code == 0, verified
    assert verified["status"] == "passed" and verified["point"] == "newest"

    # nothing the portal did changed the repository: every file is as it was, and the only
    # new files are WAL segments the DBA's archive_command pushed meanwhile
    after = listing(repo_root)
    changed = [p for p, v in before.items() if after.get(p) != v]
    added = [p for p in after if p not in before and not WAL_FILE.match(p)]
    added = [p for p in added if not (after[p][0] == "dir" and p.startswith("archive/main/"))]
    assert changed == [] and added == [], (changed, added)
    assert cluster.dba_conf.read_bytes() == dba_conf_before


def test_a_physical_job_for_an_adopted_source_is_refused(
    source, cluster, sync_queue, operator_client
):
    sets_before = dba_sets(cluster)
    job = BackupJob(
        source=source,
        name="erp-physical",
        method=BackupJob.Method.PHYSICAL,
        backup_type=BackupJob.BackupType.FULL,
    )
    # what the job form and dr_apply ask before saving
    problems = job.method_problems(source, [source.repo])
    assert "adopted pgBackRest stanza" in problems["method"], problems

    # a job that predates the adoption: its run fails with the reason, pgBackRest untouched
    old = BackupJobFactory(
        source=source,
        name="erp-old-physical",
        method=BackupJob.Method.PHYSICAL,
        destinations=[source.repo],
    )
    sync_queue(operator_client.post, f"/backups/jobs/{old.pk}/run/")
    run = BackupRun.objects.get(job=old)
    assert run.status == RunStatus.FAILED and "adopted pgBackRest stanza" in run.error
    with pytest.raises(PgBackRestError, match="read-only"):
        pgbackrest.backup(source.to_stanza(), "full")
    with pytest.raises(PgBackRestError, match="read-only"):
        pgbackrest.expire(source.to_stanza(), sets_before[0])
    assert dba_sets(cluster) == sets_before


def test_a_set_expired_by_the_dba_has_its_copy_marked_deleted(source, cluster):
    dba(cluster, "backup", "--type=full", "--start-fast")
    first, second = dba_sets(cluster)[-2:]
    refresh_pitr_windows()  # the window task catalogues the DBA's new set
    assert BackupRun.objects.get(source=source, artifact_key=second).copies.get().is_live
    dba(cluster, "expire", f"--set={first}")

    report = pitr_adopt.sync(source)

    assert report.copies_expired == [f"dba-repo: {first}"] and report.runs_created == []
    gone = BackupCopy.objects.get(run__artifact_key=first, run__source=source)
    assert gone.deleted_at is not None and gone.deleted_reason == pitr_adopt.EXPIRED_OUTSIDE
    assert BackupCopy.objects.get(run__artifact_key=second, run__source=source).is_live
    assert physical_retention.physical_copies(source.repo) == []  # retention leaves it be


def test_a_wrong_passphrase_gives_the_clear_mismatch_error(source, cluster):
    source.pitr_cipher_pass = "not-the-dbas-passphrase-000"
    source.save()

    code, out = call("pitr_adopt", source.name, "--json")

    assert code == 1 and out["ok"] is False
    assert pgbackrest.CIPHER_MISMATCH in out["error"], out
    assert "not-the-dbas-passphrase-000" not in out["error"]
    assert not BackupRun.objects.filter(source=source).exists()
    window = physical.refresh_window(source)
    assert window.newest is None and window.error
