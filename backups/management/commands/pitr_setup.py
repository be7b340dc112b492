"""manage.py pitr_setup SOURCE [--json]: set up and prove WAL archiving for a PITR source."""

import json as jsonlib
import sys

from django.core.management.base import BaseCommand, CommandError

from backups.models import Source
from backups.pitr_setup import run_setup
from dr_portal import audit


class Command(BaseCommand):
    help = (
        "Print the postgresql.conf lines for a point-in-time recovery source, write its "
        "pgBackRest configuration and, when the lines are in effect, run stanza-create and "
        "check. Exit status 0 only when a WAL segment was archived and read back."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="source name")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, source, json: bool = False, **options):
        found = Source.objects.filter(name=source).first()
        if found is None:
            raise CommandError(f"no source named {source}")
        if not found.pitr:
            raise CommandError(
                f"{source} does not have point-in-time recovery on: set pitr: true and "
                "data_directory first"
            )
        with audit.command_context("pitr_setup"):
            result = run_setup(found)
            audit.record(
                "pitr setup",
                found,
                detail="ok: " + result.message if result.ok else "; ".join(result.problems),
            )
        if json:
            self.stdout.write(jsonlib.dumps(result.as_dict(), indent=2))
        else:
            self._print(result)
        if not result.ok:
            sys.exit(1)

    def _print(self, result):
        if result.lines:
            self.stdout.write("Add to postgresql.conf (then restart PostgreSQL):\n")
            for line in result.lines:
                self.stdout.write(f"    {line}")
            self.stdout.write("")
        if result.in_effect:
            self.stdout.write("Adopted stanza: its archiving, as the server has it in effect:\n")
            for line in result.in_effect:
                self.stdout.write(f"    {line}")
            self.stdout.write("")
        if result.config:
            self.stdout.write(f"pgBackRest configuration: {result.config}")
        for problem in result.problems:
            self.stdout.write(self.style.ERROR(f"missing: {problem}"))
        if result.ok:
            self.stdout.write(self.style.SUCCESS(result.message))
