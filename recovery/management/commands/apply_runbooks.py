"""manage.py apply_runbooks FILE.yaml [--dry-run] [--as USER]: failover runbooks as code."""

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dr_portal.lib import audit
from recovery.failover import config


class Command(BaseCommand):
    help = (
        "Create or update failover runbooks (by system and name) from a YAML file. The whole "
        "file is validated first; on any problem nothing changes and the exit status is 1. "
        "See recovery/failover/config.py for the format."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="YAML file, or - for standard input")
        parser.add_argument("--dry-run", action="store_true", help="show the changes, make none")
        parser.add_argument(
            "--as",
            dest="as_user",
            default="",
            help="portal user the change is made as; command steps need a superuser",
        )

    def handle(self, *args, file, dry_run, as_user, **options):
        user = None
        if as_user:
            user = get_user_model().objects.filter(username=as_user).first()
            if user is None:
                raise CommandError(f"no portal user named {as_user!r}")
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        with audit.command_context("apply_runbooks"):
            try:
                changes = config.apply(
                    config.load_text(text),
                    dry_run=dry_run,
                    allow_command=bool(user and user.is_superuser),
                )
            except config.ConfigError as exc:
                for problem in exc.problems:
                    self.stderr.write(f"{file}: {problem}")
                self.stderr.write(f"{len(exc.problems)} problem(s) found; nothing was changed.")
                sys.exit(1)
        changed = [c for c in changes if c.action != "unchanged"]
        for change in changes:
            self.stdout.write(
                ("would " if dry_run and change.action != "unchanged" else "") + str(change)
            )
        verb = "would change" if dry_run else "changed"
        self.stdout.write(
            f"{verb} {len(changed)} runbook(s), {len(changes) - len(changed)} unchanged."
        )
