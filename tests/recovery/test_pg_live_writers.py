"""A PostgreSQL restore onto the source while an application keeps writing: the restore
succeeds, the old database is kept aside, and no write the application saw committed is
lost — each one is in the kept-aside database or in the restored one."""

import threading
import time

import psycopg
import pytest

from recovery.engine.pg import drop_database
from tests.recovery.pgutil import SERVER
from tests.support.data import backup

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class Writer(threading.Thread):
    """Inserts a row at a time, reconnecting whenever the restore cuts it off."""

    def __init__(self, dbname: str):
        super().__init__(daemon=True)
        self.dbname = dbname
        self.acknowledged: list[str] = []
        self.refused = 0
        self.stop = threading.Event()

    def run(self):
        n, conn = 0, None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(
                        host=SERVER.host, port=SERVER.port, user=SERVER.user,
                        dbname=self.dbname, autocommit=True, connect_timeout=2,
                    )  # fmt: skip
                name = f"live-{n}"
                conn.execute("INSERT INTO workflows (name) VALUES (%s)", (name,))
                self.acknowledged.append(name)
                n += 1
            except psycopg.Error:
                self.refused += 1
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.005)
        if conn is not None:
            conn.close()

    def wait_for(self, count: int, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.acknowledged) >= count, "the writer made no progress"


def names(dbname: str) -> set[str]:
    with SERVER.connect(dbname=dbname) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM workflows WHERE name LIKE 'live-%'")}


def test_restore_onto_a_written_source_keeps_every_acknowledged_write(pg_source, work_dir):
    from recovery import restores

    dbname = pg_source.database
    writer = Writer(dbname)
    writer.start()
    aside = None
    try:
        writer.wait_for(20)
        run = backup(pg_source)
        in_backup = len(writer.acknowledged)
        writer.wait_for(in_backup + 20)
        restore = restores.execute_restore(
            restores.start_restore(pg_source, onto_source=True, backup_run=run)
        )
        assert restore.status == "succeeded", restore.error
        aside = restore.kept_aside.rsplit("/", 1)[1]
        writer.wait_for(len(writer.acknowledged) + 20)  # it writes into the restored database
    finally:
        writer.stop.set()
        writer.join(10)
    try:
        kept, restored = names(aside), names(dbname)
        lost = [n for n in writer.acknowledged if n not in kept | restored]
        assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
        # The kept-aside database holds everything written before the switch, and the
        # restored one the backup's rows plus what came after the switch.
        assert {f"live-{i}" for i in range(in_backup)} <= kept
        assert writer.refused >= 1  # the writer really was cut off and came back
    finally:
        if aside:
            drop_database(SERVER, aside)
