"""Create the demo Tool Hub database and let each app add its demo configuration."""

from django.conf import settings
from django.core.management.base import BaseCommand

from backups import demo as backups_demo
from dr_portal.lib import demo
from drills import demo as drills_demo
from incidents import demo as incidents_demo
from recovery import demo as recovery_demo


class Command(BaseCommand):
    help = "Create (or top up) the demo Tool Hub SQLite database and the demo configuration."

    def handle(self, *args, **options):
        path = demo.create_tool_hub(settings.DR_DEMO_DIR / "tool_hub.db")
        self.stdout.write(f"demo Tool Hub database: {path}")
        for app_demo in (backups_demo, recovery_demo, drills_demo, incidents_demo):
            app_demo.load(self.stdout)
