"""External programs the recovery engine starts die with the worker that started them."""

import os
import signal
import subprocess
import sys
import textwrap

from tests.support.cluster import wait_for


def test_child_dies_when_its_worker_is_sigkilled(tmp_path):
    pid_file = tmp_path / "child.pid"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                from recovery.engine import procs
                procs.run(["sh", "-c", "echo $$ > {pid_file}; exec sleep 60"])
                """
            ),
        ],
        cwd=os.getcwd(),
    )
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=20)
        child = int(pid_file.read_text())
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()

        def gone():
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return True
            state = subprocess.run(
                ["ps", "-o", "stat=", "-p", str(child)], capture_output=True, text=True
            )
            return state.stdout.strip().startswith("Z") or not state.stdout.strip()

        wait_for(gone, timeout=10, message="the child to die with its worker")
    finally:
        if worker.poll() is None:
            worker.kill()
