"""manage.py reset_2fa USER: remove USER's authenticator app and recovery codes (audited).

For a user who lost their phone and their codes; with DR_REQUIRE_2FA they enrol again at
their next sign-in."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dr_portal import audit
from dr_portal.two_factor import services


class Command(BaseCommand):
    help = "Reset a user's two-factor sign-in (they enrol again at their next sign-in)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if services.reset(user, by=audit.current().actor_name):
            self.stdout.write(f"Two-factor sign-in reset for {username}.")
        else:
            self.stdout.write(f"{username} had no two-factor sign-in set up; nothing changed.")
