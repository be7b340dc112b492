"""The pgBackRest engine: the configuration it writes, the WAL arithmetic of the window, and
real clusters archiving into a real repository (check, backups, window, cipher, gaps)."""

import os
import re
import stat
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import sql

from backups.engine import pgbackrest
from backups.engine import pgbackrest_wal as wal
from backups.engine.errors import Cancelled
from backups.engine.pgbackrest_run import explain
from tests.marks import needs
from tests.support.pitr import Writer, pitr_cluster, wait_until


def stanza(**overrides) -> pgbackrest.Stanza:
    base = {
        "name": "toolhub-pg",
        "pg_data": "/var/lib/postgresql/15/main",
        "repos": (pgbackrest.Repo(kind="local", path="/srv/backups"),),
        "config_dir": "/var/lib/dr-portal/pgbackrest",
        "os_user": "",
    }
    return pgbackrest.Stanza(**{**base, **overrides})


S3 = pgbackrest.Repo(
    kind="s3",
    bucket="dr-offsite",
    prefix="dr/",
    endpoint_url="https://minio.internal:9000",
    region="eu-west-1",
    storage_class="STANDARD_IA",
    access_key_id="AKIAEXAMPLE",
    secret_access_key="s3-secret-value-123",
    ca_file="/etc/ssl/private-ca.pem",
)


# --- configuration -------------------------------------------------------------------------


def test_config_names_every_repository_and_the_cluster():
    text = pgbackrest.conf.render(
        stanza(
            repos=(pgbackrest.Repo(kind="local", path="/srv/backups"), S3),
            cipher_pass="ring-derived-pass",
            pg_port=5433,
            pg_socket_dir="/run/postgresql",
        )
    )
    lines = text.splitlines()
    for expected in [
        "[global]",
        "log-path=/var/lib/dr-portal/pgbackrest/log",
        "lock-path=/var/lib/dr-portal/pgbackrest/lock",
        "spool-path=/var/lib/dr-portal/pgbackrest/spool",
        "compress-type=zst",
        "repo1-path=/srv/backups/pgbackrest",
        "repo1-cipher-type=aes-256-cbc",
        "repo1-cipher-pass=ring-derived-pass",
        "repo1-retention-full=9999999",
        "repo2-type=s3",
        "repo2-path=/dr/pgbackrest",
        "repo2-s3-bucket=dr-offsite",
        "repo2-s3-endpoint=minio.internal",
        "repo2-storage-port=9000",
        "repo2-s3-uri-style=path",
        "repo2-s3-region=eu-west-1",
        "repo2-s3-key=AKIAEXAMPLE",
        "repo2-s3-key-secret=s3-secret-value-123",
        "repo2-s3-storage-class=STANDARD_IA",
        "repo2-storage-ca-file=/etc/ssl/private-ca.pem",
        "repo2-cipher-pass=ring-derived-pass",
        "[toolhub-pg]",
        "pg1-path=/var/lib/postgresql/15/main",
        "pg1-port=5433",
        "pg1-user=postgres",
        "pg1-socket-path=/run/postgresql",
    ]:
        assert expected in lines, expected
    assert "pg1-host" not in text


def test_aws_s3_gets_the_regional_endpoint_and_a_remote_cluster_its_host():
    aws = replace(S3, endpoint_url="", storage_class="STANDARD", ca_file="")
    text = pgbackrest.conf.render(
        stanza(repos=(aws,), pg_host="db1.internal", pg_host_user="postgres")
    )
    assert "repo1-s3-endpoint=s3.eu-west-1.amazonaws.com" in text
    assert "uri-style" not in text and "storage-class" not in text
    assert "pg1-host=db1.internal\npg1-host-user=postgres" in text
    assert pgbackrest.archive_command(stanza(pg_host="db1.internal")) == (
        "pgbackrest --stanza=toolhub-pg archive-push %p"
    )


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"name": "main]\n[global"}, "stanza name"),
        ({"name": "a=b"}, "stanza name"),
        ({"pg_data": "/data\nrepo1-path=/tmp/evil"}, "data directory"),
        ({"pg_data": "relative/dir"}, "data directory"),
        ({"pg_data": "/data/$(reboot)"}, "data directory"),
        ({"cipher_pass": "pass\nrepo1-cipher-type=none"}, "encryption passphrase"),
        ({"pg_user": "postgres\npg1-host=evil"}, "PostgreSQL user"),
        ({"repos": (replace(S3, secret_access_key="x\ny=z"),)}, "secret access key"),
        ({"repos": (replace(S3, endpoint_url="http://minio:9000"),)}, "HTTPS only"),
        ({"repos": (replace(S3, bucket="Bad_Bucket"),)}, "bucket"),
        ({"repos": ()}, "no repository"),
        ({"pg_port": 70000}, "port"),
    ],
)
def test_a_value_cannot_inject_options(overrides, complaint, tmp_path):
    bad = stanza(config_dir=str(tmp_path / "conf"), **overrides)
    with pytest.raises(pgbackrest.ConfigError, match=complaint):
        pgbackrest.write_config(bad)
    assert not (tmp_path / "conf").exists()


def test_config_is_written_atomically_with_mode_0600(tmp_path):
    target = stanza(
        config_dir=str(tmp_path / "conf"),
        repos=(pgbackrest.Repo(kind="local", path=str(tmp_path / "repo")),),
        cipher_pass="ring-derived-pass",
    )
    path = pgbackrest.write_config(target)
    assert path == str(tmp_path / "conf" / "toolhub-pg.conf")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path / "conf")) == ["lock", "log", "spool", "toolhub-pg.conf"]
    assert (tmp_path / "repo" / "pgbackrest").is_dir()
    pgbackrest.write_config(replace(target, pg_port=6543))
    assert "pg1-port=6543" in open(path).read()
    assert sorted(os.listdir(tmp_path / "conf")) == ["lock", "log", "spool", "toolhub-pg.conf"]


def test_postgresql_conf_lines_quote_the_archive_command():
    lines = pgbackrest.postgresql_conf_lines(stanza(archive_timeout_s=60))
    assert lines == [
        "archive_mode = on",
        "archive_command = 'pgbackrest --config=/var/lib/dr-portal/pgbackrest/toolhub-pg.conf"
        " --stanza=toolhub-pg archive-push %p'",
        "archive_timeout = 60",
        "wal_level = replica",
    ]


@pytest.mark.parametrize(
    ("said", "plain"),
    [
        ("ERROR: [087]: archive_mode must be enabled", "archive_mode is off"),
        ("ERROR: [068]: archive_command '' must contain pgbackrest", "archive_command is not"),
        (
            "ERROR: [082]: WAL segment 000000010000000000000005 was not archived before the "
            "60000ms timeout",
            "WAL was not archived in time",
        ),
        ("ERROR: [050]: unable to acquire lock on file '/x/s-backup.lock'", "already running"),
        (
            "ERROR: [055]: unable to load info file '/r/archive/s/archive.info':\n"
            "FileMissingError: unable to open missing file\nHINT: has a stanza-create been performed?",
            "does not exist in the repository",
        ),
        ("ERROR: [075]: no backup set found to restore", "the repository holds no backup"),
        ("ERROR: [049]: HostConnectError: unable to connect to 's3.x:443'", "could not be reached"),
        (
            "ERROR: [095]: unable to load info file\nCryptoError: unable to flush\n"
            "HINT: is or was the repo encrypted?",
            pgbackrest.CIPHER_MISMATCH,
        ),
    ],
)
def test_common_failures_are_said_in_plain_words(said, plain):
    message = explain(stanza(cipher_pass="the-pass-phrase"), "check", 1, said)
    assert message.splitlines()[0].startswith(plain) or plain in message.splitlines()[0]
    assert "the-pass-phrase" not in message


def test_secrets_are_masked_in_errors():
    target = stanza(repos=(S3,), cipher_pass="the-pass-phrase")
    said = "ERROR: [999]: odd: repo1-s3-key-secret=s3-secret-value-123 the-pass-phrase"
    message = explain(target, "backup", 1, said)
    assert "s3-secret-value-123" not in message and "the-pass-phrase" not in message


# --- WAL arithmetic ------------------------------------------------------------------------

SHA = "0" * 40
STORED = re.compile(r"^[0-9A-F]{24}-[0-9a-f]{40}\.zst$")


def listing(*names: str, at: int = 1000) -> dict:
    entries = {".": {"type": "path"}}
    for i, name in enumerate(names):
        entries[f"{name[:16]}/{name}"] = {"type": "file", "size": 10, "time": at + i}
    return entries


def stored(name: str) -> str:
    return f"{name}-{SHA}.zst"


def backup_set(start: str, stop: str, stopped: int = 900) -> pgbackrest.BackupSet:
    when = datetime.fromtimestamp(stopped, UTC)
    return pgbackrest.BackupSet("20250101-000000F", "full", None, when, when, start, stop, 0, 0, 0)


def test_segment_numbers_wrap_from_ff_to_the_next_log():
    names = ["0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000"]
    segs = wal.archived_segments(listing(*map(stored, names)), 0x100)
    run = wal.unbroken_run(segs, wal.parse_name(names[0], 0x100))
    assert run.last.name(0x100) == "000000010000000100000000" and run.missing is None


def test_partial_backup_and_history_files_are_not_segments():
    files = [
        stored("000000010000000000000003"),
        "000000010000000000000003.00000028.backup",
        f"000000010000000000000004.partial-{SHA}.zst",
        "00000002.history",
    ]
    segs = wal.archived_segments(listing(*files), 0x100)
    assert [s.name(0x100) for s in segs] == ["000000010000000000000003"]


def test_a_promotion_continues_on_the_next_timeline():
    names = [
        "000000010000000000000003",
        "000000010000000000000004",
        "000000020000000000000005",
        "000000020000000000000006",
    ]
    files = [*map(stored, names), f"000000010000000000000005.partial-{SHA}.zst"]
    segs = wal.archived_segments(listing(*files), 0x100)
    run = wal.unbroken_run(segs, wal.parse_name(names[0], 0x100))
    assert run.last.name(0x100) == "000000020000000000000006" and run.missing is None


def test_the_window_ends_before_a_missing_segment():
    names = ["000000010000000000000003", "000000010000000000000004", "000000010000000000000006"]
    win = pgbackrest._window_from(
        [backup_set(names[0], names[0])],
        listing(*map(stored, names)),
        wal.DEFAULT_SEGMENT_SIZE,
        None,
    )
    assert win.newest_segment == win.gap_after == "000000010000000000000004"
    assert win.missing_segment == "000000010000000000000005"
    assert win.newest == datetime.fromtimestamp(1001, UTC)
    assert win.oldest == datetime.fromtimestamp(901, UTC)  # whole seconds, rounded up


def test_a_newer_backup_past_a_gap_carries_the_window_and_the_gap_stays_reported():
    names = [
        "000000010000000000000003",
        "000000010000000000000004",  # 05 lost
        "000000010000000000000006",
        "000000010000000000000007",
    ]
    old, new = backup_set(names[0], names[0], 900), backup_set(names[2], names[2], 950)
    win = pgbackrest._window_from(
        [old, new], listing(*map(stored, names)), wal.DEFAULT_SEGMENT_SIZE, None
    )
    assert win.oldest == datetime.fromtimestamp(951, UTC)
    assert win.newest_segment == "000000010000000000000007"
    assert win.missing_segment == "000000010000000000000005"


# --- real clusters -------------------------------------------------------------------------


@pytest.fixture(scope="module")
@needs("postgres", "slow")
def cluster():
    with pitr_cluster() as made:
        yield made


@pytest.fixture
@needs("postgres", "slow")
def plain_cluster():
    with pitr_cluster(archiving=False, name="plain") as made:
        yield made


def test_check_names_what_is_missing_until_the_lines_are_in_effect(plain_cluster):
    with pytest.raises(pgbackrest.PgBackRestError, match="archive_mode is off") as first:
        pgbackrest.check(plain_cluster.stanza)
    assert "archive_mode = on" in str(first.value)
    plain_cluster.sql("ALTER SYSTEM SET archive_mode = on")
    plain_cluster.restart()
    with pytest.raises(pgbackrest.PgBackRestError, match="archive_command is not") as second:
        pgbackrest.check(plain_cluster.stanza)
    assert pgbackrest.archive_command(plain_cluster.stanza) in str(second.value)
    command = pgbackrest.archive_command(plain_cluster.stanza)
    plain_cluster.sql(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(sql.Literal(command)))
    plain_cluster.sql("SELECT pg_reload_conf()")
    summary = pgbackrest.check(plain_cluster.stanza)
    assert summary.startswith("WAL segment ") and "archived and found in repo1" in summary


def test_full_then_incremental_backup(cluster):
    phases = []
    full = pgbackrest.backup(cluster.stanza, "full", progress=phases.append)
    writer = Writer(cluster)
    writer.start()
    try:
        wait_until(lambda: cluster.sql("SELECT count(*) FROM pitr_rows")[0][0] >= 5, 10)
    finally:
        writer.stop()
    incr = pgbackrest.backup(cluster.stanza, "incr")

    assert full.kind == "full" and full.prior is None and full.label.endswith("F")
    assert incr.kind == "incr" and incr.prior == full.label and incr.label.endswith("I")
    assert full.started <= full.stopped <= incr.started <= incr.stopped
    assert full.size > 10_000_000 and 0 < full.repo_size < full.size  # zstd, 22 MB cluster
    assert 0 < incr.repo_delta < full.repo_delta
    assert full.wal_start <= full.wal_stop < incr.wal_start
    assert "copying files" in phases and phases[0] == "checkpoint"
    assert [(b.label, b.prior) for b in pgbackrest.backups(cluster.stanza)] == [
        (full.label, None),
        (incr.label, full.label),
    ]
    win = pgbackrest.window(cluster.stanza)
    assert win.error == "" and win.missing_segment == ""
    assert win.oldest == full.stopped + timedelta(seconds=1) and win.newest >= incr.stopped
    assert win.newest_segment >= incr.wal_stop


def test_a_wrong_passphrase_fails_clearly_and_never_shows_the_passphrase(cluster):
    wrong = replace(cluster.stanza, cipher_pass="not-the-ring-passphrase-42")
    with pytest.raises(pgbackrest.PgBackRestError) as info:
        pgbackrest.backups(wrong)
    assert str(info.value).splitlines()[0] == pgbackrest.CIPHER_MISMATCH
    with pytest.raises(pgbackrest.PgBackRestError) as backing_up:
        pgbackrest.backup(wrong, "full")
    assert str(backing_up.value).splitlines()[0] == pgbackrest.CIPHER_MISMATCH
    assert pgbackrest.window(wrong).error == pgbackrest.CIPHER_MISMATCH
    for message in (str(info.value), str(backing_up.value)):
        assert "not-the-ring-passphrase-42" not in message
        assert cluster.stanza.cipher_pass not in message
    # The file archive_command reads still holds the right passphrase: archiving goes on.
    assert "archived and found" in pgbackrest.check(cluster.stanza)


def test_a_deleted_wal_segment_ends_the_window_before_the_gap(cluster):
    if not pgbackrest.backups(cluster.stanza):  # run alone, without the backup test
        pgbackrest.backup(cluster.stanza, "full")
    switched = []
    for _ in range(3):
        cluster.sql("CREATE TABLE IF NOT EXISTS t_gap (id int); INSERT INTO t_gap VALUES (1)")
        switched.append(cluster.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
    wait_until(
        lambda: pgbackrest.window(cluster.stanza).newest_segment >= switched[-1],
        30,
        what="the switched segments to be archived",
    )
    stored = {p.name[:24]: p for p in cluster.repo_dir.rglob("*.zst") if STORED.match(p.name)}
    victim = switched[1]
    kept = max(name for name in stored if name < victim)
    stored[victim].unlink()

    win = pgbackrest.window(cluster.stanza)

    assert win.missing_segment == victim
    assert win.gap_after == win.newest_segment == kept
    assert win.newest == datetime.fromtimestamp(int(stored[kept].stat().st_mtime), UTC)
    assert stored[switched[2]].exists()  # archived after the gap: the window ends before it


def test_a_cancelled_backup_stops_and_releases_its_lock(cluster):
    cancel = threading.Event()

    def on_phase(phase):
        cancel.set()

    with pytest.raises(Cancelled):
        pgbackrest.backup(cluster.stanza, "full", cancel=cancel, progress=on_phase)
    still = pgbackrest_pids(pgbackrest.config_path(cluster.stanza))
    assert not still, "pgBackRest still runs after a cancel"
    labels = [b.label for b in pgbackrest.backups(cluster.stanza)]
    assert pgbackrest.backup(cluster.stanza, "incr").label not in labels


def pgbackrest_pids(config: str) -> list[int]:
    """pgBackRest processes reading this test's configuration (not another test's cluster)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if (
                argv
                and os.path.basename(argv[0]) == b"pgbackrest"
                and f"--config={config}".encode() in argv
            ):
                found.append(int(entry))
    return found


def test_a_second_backup_while_one_runs_is_refused_in_plain_words(cluster):
    copying = threading.Event()
    first: dict = {}

    def take_first():
        try:
            first["set"] = pgbackrest.backup(
                cluster.stanza, "full", progress=lambda p: p == "copying files" and copying.set()
            )
        except Exception as exc:  # noqa: BLE001 - asserted below
            first["error"] = exc

    runner = threading.Thread(target=take_first)
    runner.start()
    try:
        assert copying.wait(30), "the first backup never started copying"
        with pytest.raises(pgbackrest.PgBackRestError, match="is already running"):
            pgbackrest.backup(cluster.stanza, "incr")
    finally:
        runner.join(60)
    assert "error" not in first and first["set"].kind == "full"
