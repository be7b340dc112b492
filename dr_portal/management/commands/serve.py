"""Run the portal (gunicorn) and a django-q2 cluster together in the foreground.

Each child gets its own session, so a Ctrl-C in the terminal reaches only this
process; it then sends SIGTERM to each child's main process. Signalling the
cluster's whole process group can deadlock django-q2 (upstream #346).
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

STOP_GRACE_S = 60


class Command(BaseCommand):
    help = "Run gunicorn on --bind and a django-q2 cluster until Ctrl-C or SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--web-workers", type=int, default=3)
        parser.add_argument("--no-demo-writer", action="store_true")

    def handle(self, *args, bind, web_workers, no_demo_writer, **options):
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
            "worker": [python, manage, "qcluster"],
        }
        demo_db = settings.DR_DEMO_DIR / "tool_hub.db"
        if not no_demo_writer and demo_db.exists():
            commands["demo-app"] = [python, manage, "demo_writer"]
        children = {
            name: subprocess.Popen(argv, cwd=settings.BASE_DIR, start_new_session=True)
            for name, argv in commands.items()
        }
        self.stdout.write(f"DR Portal on http://{bind}/ (Ctrl-C stops the portal and its worker)")
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with {child.returncode}; stopping the rest")
                    exit_code = 1
                    stopping = True
            time.sleep(0.5)
        self.stdout.write("stopping…")
        for child in children.values():
            if child.poll() is None:
                os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {STOP_GRACE_S} s; killing it")
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        self.stdout.write("stopped")
        sys.exit(exit_code)
