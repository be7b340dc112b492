"""`make run`'s last step: gunicorn and a worker in the foreground, stopped cleanly by Ctrl-C;
a worker that dies is started again while the web portal keeps serving."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
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


def session_of(sid):
    """Every process in a child's session (a cluster's sentinel, workers, monitor, pusher)."""
    out = subprocess.run(["ps", "-o", "pid=", "-s", str(sid)], capture_output=True, text=True)
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


def live(port):
    try:
        return (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2).status == 200
        )
    except OSError:
        return False


@contextmanager
def serving(tmp_path):
    """`manage.py serve` on a fresh embedded database; yields (process, port, output lines)."""
    # As on a fresh clone: no database URL, no keys (generated into the empty var/).
    fresh = ("DATABASE_URL", "DR_ENCRYPTION_KEYS", "DJANGO_SECRET_KEY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(fresh)}
    env.update(DR_VAR_DIR=str(tmp_path), DR_ENV="embedded", PYTHONUNBUFFERED="1")
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
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: live(port), timeout=60, message="the portal to answer")
        yield proc, port, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in started_pids(lines):  # whatever outlived a failed test
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reader.join(timeout=5)


def stop_with_ctrl_c(proc, lines):
    children = children_of(proc.pid)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    proc.wait(timeout=60)
    wait_for(lambda: "stopped\n" in lines, timeout=5, message="the last line")
    assert proc.returncode == 0, "".join(lines)
    assert time.monotonic() - started < 45
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=10, message="children gone")


def started_pids(lines):
    return [int(m[1]) for line in lines if (m := re.search(r" started \(pid (\d+)\)", line))]


def worker_pids(lines):
    return [int(m[1]) for line in lines if (m := re.match(r"worker started \(pid (\d+)\)", line))]


@pytest.mark.slow
def test_serve_runs_web_and_worker_and_stops_both_on_ctrl_c(tmp_path):
    with serving(tmp_path) as (proc, port, lines):
        login = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert "/accounts/login/" in login.url
        assert len(children_of(proc.pid)) >= 2  # gunicorn and qcluster
        # The first-start summary comes after the start-up lines, in a box.
        wait_for(lambda: any(line.startswith("| DR Portal:") for line in lines), timeout=30)
        box = next(i for i, line in enumerate(lines) if line.startswith("| DR Portal:"))
        assert f"http://127.0.0.1:{port}/" in lines[box]
        assert lines[box - 1].startswith("+---") and "Ctrl-C" in "".join(lines[box : box + 9])
        assert max(i for i, line in enumerate(lines) if " started (pid " in line) < box
        # The escrow warning is in the box, not repeated by every process's system checks.
        output = "".join(lines)
        assert "dr_portal.W001" not in output and output.count("ESCROW IT") == 1
        stop_with_ctrl_c(proc, lines)
        assert "stopped\n" in lines


@pytest.mark.slow
def test_a_killed_worker_is_started_again_and_the_web_keeps_serving(tmp_path):
    with serving(tmp_path) as (proc, port, lines):
        [first] = worker_pids(lines)
        web = [pid for pid in children_of(proc.pid) if pid != first]
        wait_for(lambda: len(session_of(first)) >= 3, timeout=30, message="the cluster's workers")
        leftovers = [pid for pid in session_of(first) if pid != first]
        os.kill(first, signal.SIGKILL)  # a crash: no clean shutdown

        wait_for(lambda: len(worker_pids(lines)) == 2, timeout=30, message="a new worker")
        second = worker_pids(lines)[1]
        assert second != first and alive(second)
        assert any(
            f"worker (pid {first}) exited with -9; starting it again in 1 s" in line
            for line in lines
        ), "".join(lines)
        # What the dead cluster left behind is gone, so two clusters never take tasks at once.
        wait_for(lambda: not any(alive(pid) for pid in leftovers), timeout=10, message="reaped")
        assert live(port) and proc.poll() is None
        assert all(alive(pid) for pid in web)  # gunicorn was never restarted

        os.kill(second, signal.SIGKILL)  # dies again at once: the back-off doubles
        wait_for(lambda: len(worker_pids(lines)) == 3, timeout=30, message="a third worker")
        assert any("starting it again in 2 s" in line for line in lines), "".join(lines)
        stop_with_ctrl_c(proc, lines)
