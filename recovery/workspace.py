"""Where restore tests and restores do their work: the scratch server, the private work
directory and the knobs that tune them (settings in tests, the environment in deployments).

Kept apart from the runs themselves so that clean-up (recovery.cleanup), the health check
and the sweeps can reach the scratch server without importing the restore code.
"""

import os
import secrets
import socket
import tempfile

from django.conf import settings

from recovery.engine.pg import PgServer

DEFAULT_SCRATCH_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def setting(name: str):
    """A recovery knob from settings (tests) or the environment (deployments)."""
    return getattr(settings, name, None) or os.environ.get(name) or None


def scratch_server() -> PgServer:
    return PgServer.from_url(settings.DR_SCRATCH_DATABASE_URL or DEFAULT_SCRATCH_URL)


def scratch_prefix() -> str | None:
    return setting("DR_SCRATCH_PREFIX")


def restore_jobs() -> int:
    """Parallel jobs for pg_restore (DR_RESTORE_JOBS, default half the cores, at most 4).

    Index builds compete with the restore for the same cores; on 2 cores a serial restore
    measured as fast as `-j 2` (bench/RESULTS.md). With one job a restore test streams the
    artifact straight into pg_restore instead of unpacking it to a file first.
    """
    default = max(1, min(4, (os.cpu_count() or 1) // 2))
    value = setting("DR_RESTORE_JOBS")
    try:
        return max(1, int(value)) if value else default
    except ValueError:
        return default


def sqlite_busy_timeout() -> float:
    """How long a SQLite restore waits for other connections' locks (DR_SQLITE_BUSY_TIMEOUT)."""
    try:
        return float(setting("DR_SQLITE_BUSY_TIMEOUT") or 60)
    except ValueError:
        return 60.0


def work_dir() -> str | None:
    """Where artifacts are unpacked (DR_RESTORE_TMP_DIR; None: the system temporary directory)."""
    value = setting("DR_RESTORE_TMP_DIR")
    return str(value) if value else None


def make_work_dir(run, prefix: str) -> str:
    """A private (0700) directory for one run's unpacked artifact, recorded on the run
    before it exists, so the reaper removes it when the worker dies mid-run."""
    root = work_dir() or tempfile.gettempdir()
    path = os.path.join(root, f"{prefix}{run.pk}-{secrets.token_hex(4)}")
    run.record_temporary(kind="path", path=path, host=socket.gethostname())
    os.mkdir(path, 0o700)
    return path


def record_database(run, server: str, name: str):
    """Record a scratch ("scratch") or staging ("target") database before creating it."""
    run.record_temporary(kind="database", server=server, name=name)
