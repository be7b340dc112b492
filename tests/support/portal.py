"""The portal served by gunicorn in a subprocess, on the test database, for browser and load tests."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.support.cluster import ROOT, subprocess_env, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_portal(workers: int = 2, threads: int = 1, **extra_env):
    """Start gunicorn on a free loopback port; yield its base URL; SIGTERM its master after.

    The log (access log included) goes to $DR_VAR_DIR/gunicorn-*.log, so tests can grep it.
    """
    port = free_port()
    log_path = Path(os.environ["DR_VAR_DIR"]) / f"gunicorn-{time.time_ns()}.log"
    log = open(log_path, "w+")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "dr_portal.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "60",
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
        env=subprocess_env(**extra_env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: proc.poll() is not None or _answers(base + "/health/live"),
            timeout=60,
            message="gunicorn to answer /health/live",
        )
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError(f"gunicorn exited with {proc.returncode}:\n{log.read()[-3000:]}")
        proc.log_path = log_path
        proc.base_url = base
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
