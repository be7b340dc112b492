"""Verified cleanup: what a drill created is removed and checked gone before it can pass.

- Scratch PostgreSQL databases: restore tests create `dr_scratch_<epoch>_<hex>` databases on
  the scratch server and drop them. The check lists pg_database for scratch names created
  since the drill's declared failure, drops any left (WITH FORCE) and lists again.
- Restore tests and failover runs the drill started: none may still be queued or running
  (a test instance still up is not "cleaned up").
"""

import logging
import re
import shutil
import tempfile
from pathlib import Path

from django.utils import timezone

from dr_portal.runs import ACTIVE
from recovery.engine.pg import RestoreError, database_exists, drop_database
from recovery.models import RestoreTest
from recovery.workspace import scratch_server, work_dir

log = logging.getLogger(__name__)

_SCRATCH = re.compile(r"^dr_scratch_(\d+)_[0-9a-f]+$")


def check(drill) -> list[dict]:
    results: list[dict] = []
    runs = list(drill.scenario_runs.prefetch_related("restore_tests"))
    tests = [t for srun in runs for t in srun.restore_tests.all()]
    results += _active_runs(tests, "restore test")
    failovers = [getattr(s, "failover_run", None) for s in runs]
    results += _active_runs([f for f in failovers if f is not None], "failover run")
    if any(t.source.kind == "postgresql" or t.source.is_portal_db for t in tests):
        results += _scratch_databases(drill)
    if tests:
        results += _work_dirs(drill)
    return results


def _work_dirs(drill) -> list[dict]:
    """Temporary restore directories (dr-restore-test-*) made since the drill began."""
    root = Path(work_dir() or tempfile.gettempdir())
    since = drill.declared_at.timestamp() - 5
    found = [p for p in root.glob("dr-restore-test-*") if p.is_dir() and p.stat().st_mtime >= since]
    busy = RestoreTest.objects.filter(status__in=list(ACTIVE)).exists()
    out = []
    for path in found:
        removed = False
        if not busy:  # another test's live working directory must not be touched
            shutil.rmtree(path, ignore_errors=True)
            removed = True
        gone = not path.exists()
        out.append(
            {
                "resource": f"restore working directory {path}",
                "gone": gone,
                "removed": removed and gone,
                "detail": "left behind; removed by the cleanup check"
                if gone
                else "still present (another restore test is running; check again later)",
            }
        )
    out.append(
        {
            "resource": f"restore working directories in {root}",
            "gone": all(r["gone"] for r in out),
            "detail": "none left since the drill began" if not found else f"{len(found)} found",
        }
    )
    return out


def _active_runs(runs, label) -> list[dict]:
    out = []
    for run in runs:
        run.refresh_from_db()
        active = run.status in ACTIVE
        out.append(
            {
                "resource": f"{label} #{run.pk}",
                "gone": not active,
                "detail": f"still {run.status}" if active else f"finished ({run.status})",
            }
        )
    return out


def _scratch_databases(drill) -> list[dict]:
    server = scratch_server()
    since = int(drill.declared_at.timestamp()) - 5
    until = int(timezone.now().timestamp()) + 5
    try:
        with server.connect() as conn:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'dr\\_scratch\\_%'"
                )
            ]
    except RestoreError as exc:
        return [
            {
                "resource": f"scratch server {server.host}:{server.port}",
                "gone": False,
                "detail": f"could not list databases: {exc}"[:500],
            }
        ]
    mine = []
    for name in names:
        match = _SCRATCH.match(name)
        if match and since <= int(match.group(1)) <= until:
            mine.append(name)

    # A scratch database of a restore test running right now is its live copy: never drop it.
    busy = RestoreTest.objects.filter(status__in=list(ACTIVE)).exists()
    out = []
    for name in mine:
        removed = False
        detail = "left behind; dropped by the cleanup check"
        if busy:
            detail = "another restore test is running (it may be its copy); check again later"
        else:
            try:
                drop_database(server, name)
                removed = True
            except RestoreError as exc:
                detail = f"could not drop: {exc}"
        gone = not database_exists(server, name)
        out.append(
            {
                "resource": f"scratch database {name}",
                "gone": gone,
                "removed": removed and gone,
                "detail": detail if gone else f"still in pg_database ({detail})",
            }
        )
    out.append(
        {
            "resource": f"scratch databases on {server.host}:{server.port}",
            "gone": all(r["gone"] for r in out),
            "detail": (
                f"pg_database lists no scratch database created since "
                f"{drill.declared_at:%Y-%m-%d %H:%M:%S} UTC"
                if not mine
                else f"{len(mine)} found and dropped"
            )[:500],
        }
    )
    return out
