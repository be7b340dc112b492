"""Create the demo Tool Hub database and let each app add its demo configuration."""

import importlib

from django.conf import settings
from django.core.management.base import BaseCommand

from dr_portal.lib import demo


class Command(BaseCommand):
    help = "Create (or top up) the demo Tool Hub SQLite database and the demo configuration."

    def handle(self, *args, **options):
        path = demo.create_tool_hub(settings.DR_DEMO_DIR / "tool_hub.db")
        self.stdout.write(f"demo Tool Hub database: {path}")
        for app in ("backups", "recovery", "drills", "incidents"):
            try:
                module = importlib.import_module(f"{app}.demo")
            except ModuleNotFoundError:
                continue
            module.load(self.stdout)
