"""A real django-q2 cluster in a subprocess, on the test database, for end-to-end tests."""

import os
import signal
import socket
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
    log_path = Path(os.environ["DR_VAR_DIR"]) / f"qcluster-{time.time_ns()}.log"
    log = open(log_path, "w+")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=subprocess_env(DR_WORKERS=workers, **extra_env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log_path = log_path  # tests grep it (secrets must never appear there)
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def worker_pid(run) -> int:
    """The pid of the worker process holding a run, from its `worker` field "host:pid"."""
    host, _, pid = run.worker.rpartition(":")
    if not pid.isdigit() or host != socket.gethostname():
        raise AssertionError(f"run {run.pk} has no local worker: {run.worker!r}")
    return int(pid)


def cluster_log(proc) -> str:
    return Path(proc.log_path).read_text(errors="replace")


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
