"""SQLite restores onto a live source: a writer process keeps inserting during the restore.

The kept-aside copy must open on its own with every row committed before the restore, the
live path must hold the restored data, the writer's later rows must land in it (not in a
renamed file), no committed row may be in neither, and nothing may be left behind.
"""

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recovery.engine.pg import RestoreError
from recovery.engine.sqlite_restore import restore_sqlite
from tests.recovery.conftest import make_sqlite_db
from tests.support.data import backup

WRITER = r"""
import os, sqlite3, sys, time
path, stop = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(path, timeout=30, isolation_level=None)
i = 0
while not os.path.exists(stop):
    conn.execute("INSERT INTO workflows (name) VALUES (?)", (f"writer-{i}",))
    print(i, flush=True)  # printed only once committed
    i += 1
    time.sleep(0.002)
conn.close()
"""


class Writer:
    """A separate process inserting `writer-<i>` rows, one committed transaction each."""

    def __init__(self, path: Path, tmp: Path):
        self.path, self.stop = path, tmp / "writer.stop"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(self.stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for_rows(self, n: int, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
            try:
                count = conn.execute(
                    "SELECT COUNT(*) FROM workflows WHERE name LIKE 'writer-%'"
                ).fetchone()[0]
            finally:
                conn.close()
            if count >= n:
                return
            assert self.proc.poll() is None, self.proc.stderr.read()
            time.sleep(0.02)
        raise AssertionError(f"the writer did not reach {n} rows")

    def finish(self) -> set[int]:
        self.stop.touch()
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return {int(line) for line in out.split()}

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def writer_ids(path: str) -> set[int]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM workflows")]
    finally:
        conn.close()
    return {int(n.split("-")[1]) for n in names if n.startswith("writer-")}


def names(path: str) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM workflows")}
    finally:
        conn.close()


@pytest.mark.django_db
@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_restore_onto_live_source_with_a_writer_loses_nothing(
    sqlite_source, work_dir, tmp_path, journal_mode
):
    from recovery import restores

    live = Path(sqlite_source.path)
    sqlite_source.checks = [  # the writer adds rows between the restore and its checks
        {"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": ">= 20"}
    ]
    sqlite_source.save()
    conn = sqlite3.connect(live)
    assert conn.execute(f"PRAGMA journal_mode={journal_mode}").fetchone()[0] == journal_mode
    conn.close()
    run = backup(sqlite_source)  # 20 rows w0..w19
    conn = sqlite3.connect(live)
    conn.executemany("INSERT INTO workflows (name) VALUES (?)", [(f"late{i}",) for i in range(100)])
    conn.commit()
    conn.close()
    inode = live.stat().st_ino

    writer = Writer(live, tmp_path)
    try:
        writer.wait_for_rows(20)
        restore = restores.execute_restore(
            restores.start_restore(sqlite_source, onto_source=True, backup_run=run)
        )
        written_before = len(writer_ids(str(live)))
        # the writer keeps writing into the live path after the restore
        deadline = time.monotonic() + 20
        while len(writer_ids(str(live))) < written_before + 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        committed = writer.finish()
    finally:
        writer.kill()

    assert restore.status == "succeeded", restore.error
    kept = restore.kept_aside
    assert kept == str(live.with_name(f"{live.name}.before_restore_{kept.rsplit('_', 1)[1]}"))
    # The kept-aside copy opens on its own (no WAL to pair) and holds the rows from before.
    aside = sqlite3.connect(f"file:{kept}?mode=ro", uri=True)
    assert aside.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    aside.close()
    before = names(kept)
    assert {f"w{i}" for i in range(20)} | {f"late{i}" for i in range(100)} <= before
    kept_ids = writer_ids(kept)
    assert kept_ids == set(range(len(kept_ids))) and kept_ids, "a prefix of the writer's rows"
    # The live path has the restored data, and the writer's later rows went into it.
    after = names(str(live))
    assert {f"w{i}" for i in range(20)} <= after and not any(n.startswith("late") for n in after)
    live_ids = writer_ids(str(live))
    assert live_ids and min(live_ids) >= len(kept_ids)
    # Every committed row is in exactly one of the two: nothing fell between them.
    assert kept_ids | live_ids == committed and not kept_ids & live_ids
    assert live.stat().st_ino == inode
    # Nothing left behind: no staging, no -wal/-shm beside the kept-aside copy (the live
    # database's own -wal/-shm may stay: read-only connections were the last to close it).
    left = {p.name for p in tmp_path.iterdir() if p.name.startswith(("tool_hub", "."))}
    assert left - {"tool_hub.db-wal", "tool_hub.db-shm"} == {"tool_hub.db", Path(kept).name}
    assert list(work_dir.iterdir()) == []


def _restored_copy(tmp_path: Path, rows=5) -> str:
    return str(make_sqlite_db(tmp_path / "restored.db", rows=rows))


def test_writer_holding_the_lock_past_the_timeout_fails_the_restore_with_nothing_changed(
    tmp_path,
):
    live = make_sqlite_db(tmp_path / "live.db", rows=50)
    blocker = sqlite3.connect(live, isolation_level=None)
    blocker.execute("PRAGMA journal_mode=wal")
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("INSERT INTO workflows (name) VALUES ('uncommitted')")
    try:
        with pytest.raises(RestoreError, match=r"kept .* locked for 1 s; nothing was changed"):
            restore_sqlite(_restored_copy(tmp_path), str(live), "20260101000000", busy_timeout=1)
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert len(names(str(live))) == 51
    left = {p.name for p in tmp_path.iterdir()} - {"live.db-wal", "live.db-shm"}
    assert left == {"live.db", "restored.db"}  # no kept-aside placeholder, no staging


def test_restore_waits_for_a_short_write_and_reports_it(tmp_path):
    live = make_sqlite_db(tmp_path / "live.db", rows=50)
    blocker = sqlite3.connect(live, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("INSERT INTO workflows (name) VALUES ('slow write')")
    release = threading.Timer(0.5, lambda: blocker.execute("COMMIT"))
    release.start()
    try:
        done = restore_sqlite(
            _restored_copy(tmp_path), str(live), "20260101000000", busy_timeout=10
        )
    finally:
        release.join()
        blocker.close()
    assert done.waited_s >= 0.3 and any("waited" in note for note in done.notes)
    assert "slow write" in names(done.kept_aside) and len(names(str(live))) == 5


def test_unreadable_live_file_is_renamed_aside_with_its_wal_paired(tmp_path):
    live = tmp_path / "live.db"
    live.write_bytes(b"this is not a database" * 100)
    Path(f"{live}-wal").write_bytes(b"old wal")
    done = restore_sqlite(_restored_copy(tmp_path), str(live), "20260101000000")
    assert done.kept_aside == f"{live}.before_restore_20260101000000"
    assert Path(done.kept_aside).read_bytes().startswith(b"this is not a database")
    assert Path(f"{done.kept_aside}-wal").read_bytes() == b"old wal"
    assert len(names(str(live))) == 5
    assert not os.path.exists(f"{live}-wal")


def test_restore_to_a_new_file_is_private(tmp_path):
    target = tmp_path / "new.db"
    done = restore_sqlite(_restored_copy(tmp_path), str(target), "20260101000000")
    assert done.kept_aside is None and len(names(str(target))) == 5
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db", "restored.db"]


def test_wal_database_with_another_page_size_is_refused_before_anything_changes(tmp_path):
    live = tmp_path / "live.db"
    conn = sqlite3.connect(live)
    conn.execute("PRAGMA page_size=8192")
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE kept (x)")
    conn.commit()
    try:
        with pytest.raises(RestoreError, match="8192-byte pages and the backup 4096-byte"):
            restore_sqlite(_restored_copy(tmp_path), str(live), "20260101000000")
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("kept",)]
    finally:
        conn.close()
    assert not (tmp_path / "live.db.before_restore_20260101000000").exists()
