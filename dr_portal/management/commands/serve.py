"""Run the portal (gunicorn) and a django-q2 cluster together in the foreground.

Each child gets its own session, so a Ctrl-C in the terminal reaches only this
process; it then sends SIGTERM to each child's main process. Signalling the
cluster's whole process group can deadlock django-q2 (upstream #346).

A worker (or the demo writer) that exits is started again after a back-off that doubles
up to a minute, and resets once it has stayed up for a minute; the web portal keeps
serving meanwhile (its banner says no worker is running). Only the web portal exiting
stops everything: gunicorn already restarts its own workers.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand

from dr_portal import first_start

STOP_GRACE_S = 60
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
STABLE_AFTER_S = 60.0  # a child up this long has its back-off reset
TICK_S = 0.5
SETTLE_S = 3.0  # the cluster's start-up lines come first, the summary last


@dataclass
class Child:
    """One supervised process and when it may be started again."""

    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = BACKOFF_FIRST_S
    restart_at: float | None = None
    restarts: int = 0


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "health/live", timeout=2) as response:  # noqa: S310 - our own loopback URL
            return response.status == 200
    except OSError:
        return False


def reap_group(pgid: int):
    """Kill what an exited child left in its session (a killed qcluster's worker processes
    would otherwise keep taking tasks next to its replacement). Its main process is gone,
    so this cannot hit the django-q2 group-signal deadlock."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Command(BaseCommand):
    help = "Run gunicorn on --bind and a django-q2 cluster until Ctrl-C or SIGTERM."
    requires_system_checks = []  # run in handle(), without the escrow warning (see there)

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=3)
        parser.add_argument("--no-demo-writer", action="store_true")

    def handle(self, *args, bind, web_workers, no_demo_writer, **options):
        # The key-escrow warning (dr_portal.W001) is in the summary printed last; every
        # other check runs here, once, and its children skip them.
        settings.SILENCED_SYSTEM_CHECKS = [*settings.SILENCED_SYSTEM_CHECKS, "dr_portal.W001"]
        self.check()
        children = [Child(name, argv) for name, argv in self.commands(bind, web_workers).items()]
        if no_demo_writer:
            children = [c for c in children if c.name != "demo-app"]
        for child in children:
            self.start(child)
        url = f"http://{bind}/"
        summary_due = time.monotonic() + SETTLE_S
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            if not self.supervise(children):
                exit_code, stopping = 1, True
            if summary_due and time.monotonic() >= summary_due and answers(url):
                self.stdout.write(first_start.summary(url))
                summary_due = None
            time.sleep(TICK_S)
        self.stop_all(children)
        sys.exit(exit_code)

    def commands(self, bind, web_workers) -> dict[str, list[str]]:
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        commands = {
            "web": [
                python,
                "-m",
                "gunicorn",
                "dr_portal.wsgi:application",
                "--bind",
                bind,
                "--workers",
                str(web_workers),
                "--access-logfile",
                "-",
                "--timeout",
                "60",
            ],
            # This command ran the system checks once; its children do not repeat them.
            "worker": [python, manage, "qcluster", "--skip-checks"],
        }
        if (settings.DR_DEMO_DIR / "tool_hub.db").exists():
            commands["demo-app"] = [python, manage, "demo_writer", "--skip-checks"]
        return commands

    def start(self, child: Child):
        child.proc = subprocess.Popen(child.argv, cwd=settings.BASE_DIR, start_new_session=True)
        child.started = time.monotonic()
        child.restart_at = None
        self.stdout.write(f"{child.name} started (pid {child.proc.pid})")

    def supervise(self, children: list[Child]) -> bool:
        """One round: restart exited workers when their back-off is over. False when the
        web portal itself exited (nothing left to serve)."""
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self.start(child)
                continue
            if child.proc.poll() is None:
                continue
            if child.name == "web":
                self.stderr.write(f"web exited with {child.proc.returncode}; stopping the rest")
                return False
            reap_group(child.proc.pid)
            if now - child.started >= STABLE_AFTER_S:
                child.backoff = BACKOFF_FIRST_S
            self.stderr.write(
                f"{child.name} (pid {child.proc.pid}) exited with {child.proc.returncode}; "
                f"starting it again in {child.backoff:g} s"
            )
            child.restart_at = now + child.backoff
            child.backoff = min(child.backoff * 2, BACKOFF_MAX_S)
        return True

    def stop_all(self, children: list[Child]):
        self.stdout.write("stopping…")
        running = [c for c in children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            os.kill(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in running:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{child.name} did not stop in {STOP_GRACE_S} s; killing it")
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        self.stdout.write("stopped")
