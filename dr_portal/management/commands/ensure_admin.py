"""Create the `admin` superuser once; a second run keeps the existing account."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from dr_portal import first_start


class Command(BaseCommand):
    help = (
        "Create the admin superuser if missing (password from DR_ADMIN_PASSWORD, else generated)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--first-start",
            action="store_true",
            help="keep a generated password for the summary `manage.py serve` prints last",
        )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            self.stdout.write("admin user exists; password unchanged")
            return
        password = os.environ.get("DR_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "admin@localhost", password)
        if os.environ.get("DR_ADMIN_PASSWORD"):
            self.stdout.write("created admin user with the password from DR_ADMIN_PASSWORD")
        elif options["first_start"]:
            first_start.stash_password(password)
            self.stdout.write("created admin user; its password is in the summary at the end")
        else:
            # Printed once, to the terminal of the person setting up; never logged.
            self.stdout.write(self.style.WARNING(f"created admin user; password: {password}"))
            self.stdout.write("(shown once: note it now, or set DR_ADMIN_PASSWORD and reset it)")
