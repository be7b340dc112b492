"""A real django-q2 cluster in a subprocess, on the test database, for end-to-end tests."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """A URL for the test database the current test is using (file SQLite or PostgreSQL)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{host}:{port}/{s['NAME']}"


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    env.setdefault("DR_QUEUE_POLL", "0.2")
    env.update({k: str(v) for k, v in extra.items()})
    return env


@contextmanager
def running_cluster(workers: int = 2, **extra_env):
    """Start `manage.py qcluster`; stop it with SIGTERM to its main process only."""
    log = open(Path(os.environ["DR_VAR_DIR"]) / f"qcluster-{time.time_ns()}.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=subprocess_env(DR_WORKERS=workers, **extra_env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def stop(proc, grace: float = 30):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(predicate, timeout: float = 30, every: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
