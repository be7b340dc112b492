"""manage.py pitr_adopt SOURCE [--json]: catalog an adopted pgBackRest stanza's backup sets."""

import json as jsonlib
import sys

from django.core.management.base import BaseCommand, CommandError

from backups import pitr_adopt
from backups.models import Source
from dr_portal import audit


class Command(BaseCommand):
    help = (
        "Read an adopted stanza's repository (pgbackrest info --output=json, read-only) and "
        "bring the catalog in line: new backup sets become catalog runs, sets expired by the "
        "stanza's own schedule have their copies marked deleted. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="source name")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, source, json: bool = False, **options):
        found = Source.objects.filter(name=source).first()
        if found is None:
            raise CommandError(f"no source named {source}")
        if not (found.pitr and found.pitr_adopted):
            raise CommandError(
                f"{source} is not an adopted stanza: set pitr: true, pitr_adopted: true, "
                "pitr_stanza and its repository destinations first"
            )
        with audit.command_context("pitr_adopt"):
            try:
                report = pitr_adopt.sync(found)
            except pitr_adopt.AdoptError as exc:
                audit.record("pitr adopt failed", found, detail=str(exc)[:500])
                self._fail(str(exc), json)
        if json:
            self.stdout.write(jsonlib.dumps({"ok": True, **report.as_dict()}, indent=2))
            return
        self.stdout.write(
            f"stanza {report.stanza}: {len(report.sets)} backup sets in the repository, "
            f"{len(report.runs_created)} new in the catalog, {report.copies_created} copies "
            f"added, {len(report.copies_expired)} {pitr_adopt.EXPIRED_OUTSIDE}"
        )
        for label in report.runs_created:
            self.stdout.write(f"    catalogued {label}")
        for copy in report.copies_expired:
            self.stdout.write(f"    {pitr_adopt.EXPIRED_OUTSIDE}: {copy}")

    def _fail(self, message: str, json: bool):
        if json:
            self.stdout.write(jsonlib.dumps({"ok": False, "error": message}, indent=2))
        else:
            self.stderr.write(self.style.ERROR(message))
        sys.exit(1)
