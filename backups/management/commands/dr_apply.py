"""manage.py dr_apply FILE.yaml [--dry-run]: create or update configuration by name."""

import sys

from django.core.management.base import BaseCommand, CommandError

from backups import config
from dr_portal.lib import audit


class Command(BaseCommand):
    help = (
        "Create or update systems, destinations, sources and jobs from a YAML file. The whole "
        "file is validated first; on any problem nothing changes and the exit status is 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="YAML file, or - for standard input")
        parser.add_argument("--dry-run", action="store_true", help="show the changes, make none")
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            help="a superuser on whose authority `command` runbook steps may be written",
        )

    def handle(self, *args, file, dry_run, as_user=None, **options):
        allow_command = False
        if as_user:
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.filter(username=as_user).first()
            if user is None or not user.is_superuser:
                raise CommandError(f"--as {as_user}: no superuser with that name")
            allow_command = True
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        with audit.command_context("dr_apply"):
            try:
                changes = config.apply(
                    config.load_text(text), dry_run=dry_run, allow_command=allow_command
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
            f"{verb} {len(changed)} object(s), {len(changes) - len(changed)} unchanged."
        )
