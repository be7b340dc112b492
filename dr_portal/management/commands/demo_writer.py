"""Keep writing executions into the demo Tool Hub database, like a live application."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from dr_portal.lib import demo


class Command(BaseCommand):
    help = "Add an execution to the demo Tool Hub database every few seconds until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, default=5.0)

    def handle(self, *args, every, **options):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        demo.keep_writing(settings.DR_DEMO_DIR / "tool_hub.db", every_s=every, stop=stop)
