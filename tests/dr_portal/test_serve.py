"""`make run`'s last step: gunicorn and a worker in the foreground, stopped cleanly by Ctrl-C."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.cluster import wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True
    ).stdout
    return bool(state.strip()) and not state.startswith("Z")


@pytest.mark.slow
def test_serve_runs_web_and_worker_and_stops_both_on_ctrl_c(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_URL")}
    env.update(DR_VAR_DIR=str(tmp_path), DR_ENV="embedded")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "createcachetable"], cwd=ROOT, env=env, check=True)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", "--web-workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def live():
            try:
                return (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2).status
                    == 200
                )
            except OSError:
                return False

        wait_for(live, timeout=60, message="the portal to answer")
        login = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert "/accounts/login/" in login.url
        children = children_of(proc.pid)
        assert len(children) >= 2  # gunicorn and qcluster
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output
        assert "stopped" in output
        assert time.monotonic() - started < 45
        wait_for(
            lambda: not any(alive(pid) for pid in children), timeout=10, message="children gone"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
