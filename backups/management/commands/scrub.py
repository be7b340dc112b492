"""manage.py scrub [--destination NAME ...] [--json]: one scrub pass in the foreground."""

import json

from django.core.management.base import BaseCommand, CommandError

from backups import scrub
from backups.models import Destination
from dr_portal import audit


class Command(BaseCommand):
    help = (
        "Read live copies back through full verification (archive classes: a metadata check), "
        "proven longest ago first, within the pass budget per destination "
        "(DR_SCRUB_BYTES_PER_HOUR x DR_SCRUB_EVERY_HOURS). A corrupt or missing copy is "
        "marked lost and alerts. Exit 1 when a copy was lost or a destination failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--destination", action="append", metavar="NAME", default=[])
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, destination, as_json, **options):
        known = set(Destination.objects.filter(name__in=destination).values_list("name", flat=True))
        unknown = sorted(set(destination) - known)
        if unknown:
            raise CommandError(f"no destination named {', '.join(unknown)}")
        with audit.command_context("scrub"):
            result = scrub.scrub(destination or None)
        if as_json:
            self.stdout.write(json.dumps(result.as_dict(), sort_keys=True))
        else:
            for d in result.destinations:
                self.stdout.write(
                    f"{d.destination}: {d.count('proven')} proven, {len(d.lost)} lost, "
                    f"{d.count('error')} not proven, {d.left} left for the next pass, "
                    f"{d.bytes_read} of {d.budget} bytes read" + (f"; {d.error}" if d.error else "")
                )
                for p in d.lost:
                    self.stdout.write(f"  LOST run #{p.run}: {p.location}: {p.detail}")
        if result.lost or any(d.error for d in result.destinations):
            raise CommandError("the scrub found lost copies or could not read a destination")
