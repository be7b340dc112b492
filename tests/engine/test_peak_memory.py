"""The engine's memory is bounded by its queues, not by the size of what it backs up."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import psql

ROOT = Path(__file__).resolve().parents[2]
PEAK_RSS_LIMIT_MB = 128

# 120,000 rows: 1 KiB of hash output (stored as 2 KiB of hex in the dump, which zstd can
# only halve) and a repetitive log line; ~290 MB of pg_dump output.
FILL = """
CREATE TABLE blobs (id int PRIMARY KEY, noise bytea, note text);
INSERT INTO blobs
SELECT g,
       (SELECT string_agg(sha256(int4send(g * 32 + i)), ''::bytea) FROM generate_series(0, 31) i),
       repeat('step ' || (g % 12) || ' finished: processed ' || (g % 5000) || ' records; ', 8)
FROM generate_series(1, 120000) g;
"""

# Run in a fresh interpreter: the test process's own RSS (Django, pytest) would hide the
# engine's. VmHWM is this process's peak (pg_dump, a child, is left out); ru_maxrss would
# not do: across fork and exec it keeps the parent's peak, pytest's.
BACKUP = textwrap.dedent(
    """
    import json, sys
    from backups.engine import BackupOptions, DestinationSpec, SourceSpec, run_backup
    from dr_portal.lib.keyring import parse_ring
    from tests.environment import TEST_MASTER_KEY

    def peak_kb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

    db, dest = sys.argv[1], sys.argv[2]
    result = run_backup(
        SourceSpec("postgresql", {"host": "127.0.0.1", "port": 5432, "user": "postgres",
                                  "database": db}),
        [DestinationSpec("local", "local", {"path": dest}, {})],
        BackupOptions("memory/run1", master_keys=parse_ring(TEST_MASTER_KEY)),
    )
    print(json.dumps({"status": result.status, "error": result.error,
                      "read": result.bytes_read, "stored": result.bytes_stored,
                      "rss_mb": peak_kb() / 1024}))
    """
)


@pytest.mark.slow
@pytest.mark.postgres
def test_backup_of_a_large_database_stays_under_128_mb(pg_databases, tmp_path):
    db = pg_databases("memory")
    psql(FILL, db)
    proc = subprocess.run(
        [sys.executable, "-c", BACKUP, db, str(tmp_path / "dest")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "succeeded", outcome["error"]
    # large enough that a leak or an unbounded queue would show: 200 MB+ read, 100 MB+ stored
    assert outcome["read"] > 200_000_000
    assert outcome["stored"] > 100_000_000
    assert outcome["rss_mb"] < PEAK_RSS_LIMIT_MB, outcome
