"""Restore to a point on a real cluster: a writer commits rows every 0.2 s while pgBackRest
archives WAL; restores must hold exactly the rows committed at or before the point asked,
never archive into the source's stanza, and leave nothing behind."""

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backups.engine import pgbackrest
from recovery.engine import pitr
from tests.marks import needs
from tests.support.pitr import (
    ARCHIVE_TIMEOUT_S,
    Writer,
    commit_times,
    owned_tempdir,
    pitr_cluster,
    wait_until,
)
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, MotoS3
from tests.support.s3_tls import TlsProxy, write_certificate


@pytest.fixture(scope="module")
@needs("postgres", "slow")
def source():
    """A cluster with a full backup and a writer running for the whole module."""
    with pitr_cluster() as cluster:
        writer = Writer(cluster)
        writer.start()
        try:
            wait_until(lambda: cluster.sql("SELECT count(*) FROM pitr_rows")[0][0] >= 3, 10)
            cluster.full = pgbackrest.backup(cluster.stanza, "full")
            cluster.writer = writer
            yield cluster
        finally:
            writer.stop()


@pytest.fixture
def scratch_parent():
    parent = owned_tempdir("dr-pitr-scratch-")
    yield parent
    pitr.sweep(str(parent), older_than_s=-60)  # a failed test's copy: stop its server too
    shutil.rmtree(parent, ignore_errors=True)


def running(pid: int) -> bool:
    """Alive and not a zombie (pg_ctl's server is reaped by init, not by us)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def rows_committed_since_backup(source, seconds: float) -> list[tuple[int, datetime]]:
    """Wait until the writer has committed for `seconds` after the backup and the window
    covers those commits; return (id, commit time) from the source."""
    wait_until(
        lambda: (
            pgbackrest.window(source.stanza).newest
            >= source.full.stopped + timedelta(seconds=seconds)
        ),
        seconds + ARCHIVE_TIMEOUT_S + 30,
        what="the archive to cover the writer's commits",
    )
    with source.connect() as conn:
        return commit_times(conn)


def test_restore_to_a_point_holds_exactly_the_rows_committed_until_then(source, scratch_parent):
    rows = rows_committed_since_backup(source, 6)
    win = pgbackrest.window(source.stanza)
    inside = [(i, t) for i, t in rows if win.oldest < t <= win.newest]
    target_id, target = inside[len(inside) // 2]
    expected = [i for i, t in rows if t <= target]
    assert expected[-1] == target_id and len(expected) < len(rows)

    phases = []
    with pitr.ScratchRestore(
        source.stanza, str(scratch_parent), at=target, on_phase=phases.append
    ) as got:
        with got.connect() as conn:
            restored = [r[0] for r in conn.execute("SELECT id FROM pitr_rows ORDER BY id")]
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            archive_mode = conn.execute("SHOW archive_mode").fetchone()[0]
        scratch = Path(got.data_dir).parent
        assert scratch.name.startswith("dr_pitr_") and scratch.parent == scratch_parent
        beat = pitr.read_heartbeat(got)

    assert restored == expected  # every commit ≤ T, none after
    assert got.target == target and got.recovered_to == target
    assert got.label == source.full.label and not got.replayed_to_end
    assert in_recovery is False and archive_mode == "off"
    assert phases == ["fetch", "replay"] and got.phases["fetch"] > 0 and got.phases["replay"] > 0
    assert beat is not None and target - timedelta(seconds=2) <= beat <= target
    assert not scratch.exists()


def test_restore_to_the_latest_point_is_within_archive_timeout_of_now(source, scratch_parent):
    rows_committed_since_backup(source, 2)
    asked = datetime.now(UTC)
    with pitr.ScratchRestore(source.stanza, str(scratch_parent), at=None) as got:
        with got.connect() as conn:
            newest = conn.execute("SELECT max(pg_xact_commit_timestamp(xmin)) FROM pitr_rows")
            newest = newest.fetchone()[0]
    lag = (asked - newest).total_seconds()
    assert got.target is None and got.recovered_to >= newest
    assert lag <= ARCHIVE_TIMEOUT_S + 10, f"newest restored commit is {lag:.1f} s old"


def test_the_restored_copy_does_not_archive_into_the_source_stanza(source, scratch_parent):
    archive = source.repo_dir / "archive" / source.stanza.name
    with pitr.ScratchRestore(source.stanza, str(scratch_parent), at=None) as got:
        with got.connect() as conn:
            assert conn.execute("SHOW archive_mode").fetchone()[0] == "off"
            assert conn.execute("SHOW archive_command").fetchone()[0] in ("", "(disabled)")
            assert conn.execute("SHOW listen_addresses").fetchone()[0] == ""
            conn.execute("CREATE TABLE after_restore AS SELECT generate_series(1, 50000) g")
            conn.execute("SELECT pg_switch_wal()")
            timeline = conn.execute("SELECT timeline_id FROM pg_control_checkpoint()")
            timeline = timeline.fetchone()[0]
        time.sleep(1)
    # The copy promoted onto a new timeline; nothing of it reached the source's repository.
    assert timeline >= 2
    assert not list(archive.rglob(f"{timeline:08X}*")), "the copy archived into the source's stanza"


def test_the_scratch_directory_goes_also_on_an_exception(source, scratch_parent):
    with pytest.raises(RuntimeError, match="a check failed"):
        with pitr.ScratchRestore(source.stanza, str(scratch_parent), at=None) as got:
            pid = int(Path(got.data_dir, "postmaster.pid").read_text().split()[0])
            raise RuntimeError("a check failed")
    assert os.listdir(scratch_parent) == []
    wait_until(lambda: not running(pid), 10, 0.1, "the copy's postmaster to exit")


def test_sweep_stops_and_removes_a_leftover_and_keeps_a_fresh_one(source, scratch_parent):
    leftover = scratch_parent / f"dr_pitr_{int(time.time()) - 7200}_0123abcd"
    fresh = scratch_parent / f"dr_pitr_{int(time.time())}_4567cdef"
    for path in (leftover, fresh):
        path.mkdir()
        shutil.chown(path, "postgres", "postgres")
    got = pitr.restore(
        source.stanza,
        str(leftover / "data"),
        at=None,
        port=pitr.free_port(),
        socket_dir=str(leftover / "sock"),
    )
    pid = int(Path(got.data_dir, "postmaster.pid").read_text().split()[0])

    assert pitr.sweep(str(scratch_parent), older_than_s=3600) == [leftover.name]

    assert not leftover.exists() and fresh.exists()
    wait_until(lambda: not running(pid), 10, 0.1, "the leftover's postmaster to exit")


def test_points_outside_the_window_and_used_directories_are_refused(source, scratch_parent):
    win = pgbackrest.window(source.stanza)
    target_dir = scratch_parent / "target"
    for at in (win.oldest - timedelta(minutes=5), win.newest + timedelta(minutes=5)):
        with pytest.raises(pitr.PitrError, match="outside the recoverable window"):
            pitr.restore(source.stanza, str(target_dir), at=at, port=pitr.free_port())
    with pytest.raises(pitr.PitrError, match="time zone"):
        pitr.restore(source.stanza, str(target_dir), at=datetime.now(), port=5999)  # noqa: DTZ005
    target_dir.mkdir()
    (target_dir / "something").write_text("x")
    with pytest.raises(pitr.PitrError, match="not empty"):
        pitr.restore(source.stanza, str(target_dir), at=None, port=5999)
    with pytest.raises(pitr.PitrError, match="source's own data directory"):
        pitr.restore(source.stanza, source.stanza.pg_data, at=None, port=5999)
    assert [p.name for p in target_dir.iterdir()] == ["something"]


def test_expiring_an_older_full_keeps_the_newer_chain_restorable(source, scratch_parent):
    """Last in the module: it removes the first chain."""
    old_full = source.full
    old_incr = pgbackrest.backup(source.stanza, "incr")
    new_full = pgbackrest.backup(source.stanza, "full")
    pgbackrest.expire(source.stanza, old_full.label)

    left = pgbackrest.backups(source.stanza)
    assert [b.label for b in left] == [new_full.label]
    assert old_incr.label not in [b.label for b in left]
    segments = sorted(p.name[:24] for p in source.repo_dir.rglob("0000000*-*"))
    assert segments[0] >= new_full.wal_start  # the WAL only the expired chain needed is gone
    win = pgbackrest.window(source.stanza)
    assert win.oldest == new_full.stopped + timedelta(seconds=1) and win.missing_segment == ""

    rows = rows_committed_since_backup(source, 0)
    archived = [i for i, t in rows if t <= pgbackrest.window(source.stanza).newest]
    with pitr.ScratchRestore(source.stanza, str(scratch_parent), at=None) as got:
        with got.connect() as conn:
            restored = [r[0] for r in conn.execute("SELECT id FROM pitr_rows ORDER BY id")]
    assert got.label == new_full.label
    assert restored[: len(archived)] == archived  # all archived rows, in order, none lost


def test_a_point_past_the_last_archived_commit_replays_to_the_end(source, scratch_parent):
    """Last: stops the writer. The window's end is the last segment's archive time, later
    than its last commit; PostgreSQL then stops short of the target, and the restore goes
    on to the end of the archive, saying so."""
    source.writer.stop()
    with source.connect() as conn:
        rows = commit_times(conn)
    time.sleep(1.2)  # archive times have whole seconds: archive after the last commit's second
    # A checkpoint writes WAL (and commits nothing), so the switch below always closes a
    # segment now, even if archive_timeout closed the one holding the last commit already.
    source.sql("CHECKPOINT")
    last = source.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_until(
        lambda: pgbackrest.window(source.stanza).newest_segment >= last,
        ARCHIVE_TIMEOUT_S + 30,
        what="the last commit to be archived",
    )
    target = pgbackrest.window(source.stanza).newest
    assert target > rows[-1][1]
    with pitr.ScratchRestore(source.stanza, str(scratch_parent), at=target) as got:
        with got.connect() as conn:
            count = conn.execute("SELECT count(*) FROM pitr_rows").fetchone()[0]
        log = Path(got.log_path).read_text()
    assert pitr.server.NOT_REACHED in log
    assert got.replayed_to_end and count == len(rows)
    assert got.recovered_to is not None and got.recovered_to <= target


@pytest.fixture
@needs("postgres", "slow")
def s3_source(tmp_path):
    """A cluster whose only repository is S3 (moto behind a TLS proxy, trusted by ca_file)."""
    cert_dir = owned_tempdir("dr-pitr-ca-")
    cert, key = write_certificate(cert_dir)
    moto = MotoS3().start()
    proxy = TlsProxy(moto.port, cert, key).start()
    try:
        moto.client().create_bucket(Bucket="dr-pitr")
        repo = pgbackrest.Repo(
            kind="s3",
            bucket="dr-pitr",
            prefix="dr/",
            endpoint_url=proxy.endpoint,
            region="us-east-1",
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            ca_file=str(cert),
        )
        with pitr_cluster(repos=(repo,), name="pitrs3") as cluster:
            cluster.moto = moto
            yield cluster
    finally:
        proxy.stop()
        moto.stop()
        shutil.rmtree(cert_dir, ignore_errors=True)


def test_an_s3_repository_backs_up_lists_its_window_and_restores_to_a_point(
    s3_source, scratch_parent
):
    assert "archived and found in repo1" in pgbackrest.check(s3_source.stanza)
    s3_source.sql("CREATE TABLE pitr_rows (id int PRIMARY KEY)")
    full = pgbackrest.backup(s3_source.stanza, "full")
    time.sleep(1.1)  # past the backup's (whole-second) stop time: the window starts there
    for i in range(1, 6):
        s3_source.sql(f"INSERT INTO pitr_rows VALUES ({i})")
        time.sleep(0.05)
    with s3_source.connect() as conn:
        rows = conn.execute(
            "SELECT id, pg_xact_commit_timestamp(xmin) FROM pitr_rows ORDER BY id"
        ).fetchall()
    time.sleep(1.1)
    s3_source.sql("CHECKPOINT")  # WAL to switch away from, whatever archive_timeout did
    last = s3_source.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_until(
        lambda: pgbackrest.window(s3_source.stanza).newest_segment >= last,
        30,
        what="WAL to reach S3",
    )
    keys = s3_source.moto.objects("dr-pitr")
    assert any(k.startswith("dr/pgbackrest/archive/pitrs3/15-1/") for k in keys)
    assert any(k.startswith(f"dr/pgbackrest/backup/pitrs3/{full.label}/") for k in keys)
    win = pgbackrest.window(s3_source.stanza)
    assert win.oldest == full.stopped + timedelta(seconds=1) and win.error == ""

    target = rows[2][1]
    with pitr.ScratchRestore(s3_source.stanza, str(scratch_parent), at=target) as got:
        with got.connect() as conn:
            restored = [r[0] for r in conn.execute("SELECT id FROM pitr_rows ORDER BY id")]
    assert restored == [1, 2, 3] and got.label == full.label


def test_a_copy_that_cannot_start_reports_its_log_and_leaves_nothing(source, scratch_parent):
    settings = {"shared_preload_libraries": "no_such_library_dr"}
    with pytest.raises(pitr.PitrError, match="stopped during recovery") as failed:
        with pitr.ScratchRestore(source.stanza, str(scratch_parent), at=None, settings=settings):
            pass
    assert 'could not access file "no_such_library_dr"' in str(failed.value)
    assert source.stanza.cipher_pass not in str(failed.value)
    assert os.listdir(scratch_parent) == []
