"""pg_restore's sessions are tuned for bulk loading: in-memory index builds, no flush waits."""

import pytest

from recovery.engine.pg import pg_restore
from tests.recovery.pgutil import pg_dump, temp_database

pytestmark = pytest.mark.postgres

# pg_restore refreshes a materialized view in its own session, so the view records the
# settings that session ran with.
SETTINGS_VIEW = (
    "CREATE MATERIALIZED VIEW restore_session AS SELECT "
    "current_setting('maintenance_work_mem') AS work_mem, "
    "current_setting('synchronous_commit') AS sync, "
    "current_setting('work_mem') AS other"
)


def _restored_settings(tmp_path, monkeypatch, feed: bool, pgoptions: str = ""):
    if pgoptions:
        monkeypatch.setenv("PGOPTIONS", pgoptions)
    archive = str(tmp_path / "settings.dump")
    with temp_database() as source:
        with source.connect() as conn:
            conn.execute(SETTINGS_VIEW)
        pg_dump(source, archive)
    with temp_database() as target:
        if feed:

            def write(stdin):
                with open(archive, "rb") as fh:
                    stdin.write(fh.read())

            pg_restore(write, target)
        else:
            pg_restore(archive, target, jobs=2)
        with target.connect() as conn:
            return conn.execute("SELECT work_mem, sync, other FROM restore_session").fetchone()


@pytest.mark.parametrize("feed", [False, True], ids=["from a file", "streamed"])
def test_restore_sessions_sort_in_memory_and_do_not_wait_for_flushes(tmp_path, monkeypatch, feed):
    work_mem, sync, _ = _restored_settings(tmp_path, monkeypatch, feed)
    assert (work_mem, sync) == ("256MB", "off")


def test_operators_pgoptions_are_kept(tmp_path, monkeypatch):
    settings = _restored_settings(
        tmp_path, monkeypatch, False, pgoptions="-c work_mem=7MB -c maintenance_work_mem=100MB"
    )
    # ours come after the operator's, so ours win for the two we set; the rest still applies
    assert settings == ("256MB", "off", "7MB")
