"""manage.py scrub [--destination NAME ...] [--json]: one scrub pass in the foreground.

--restore-archived [--tier T] [--days N]: instead, ask the store for a temporary readable copy
of every live archived copy (S3 RestoreObject); later passes read them through once ready."""

import json

from django.core.management.base import BaseCommand, CommandError

from backups import archive, scrub
from backups.engine.destinations.s3_archive import MAX_DAYS, TIERS
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
        parser.add_argument(
            "--restore-archived",
            action="store_true",
            help="Request a restore (RestoreObject) of every live copy in GLACIER or "
            "DEEP_ARCHIVE instead of a pass; billed by the store per GB retrieved.",
        )
        parser.add_argument("--tier", choices=TIERS, default="Bulk")
        parser.add_argument(
            "--days", type=int, default=3, help=f"keep the restored copy 1-{MAX_DAYS} days"
        )

    def handle(self, *args, destination, as_json, restore_archived, tier, days, **options):
        known = set(Destination.objects.filter(name__in=destination).values_list("name", flat=True))
        unknown = sorted(set(destination) - known)
        if unknown:
            raise CommandError(f"no destination named {', '.join(unknown)}")
        if restore_archived:
            return self._restore(destination, tier, days)
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

    def _restore(self, names, tier, days):
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days: 1 to {MAX_DAYS}")
        destinations = Destination.objects.filter(kind=Destination.Kind.S3).order_by("name")
        destinations = destinations.filter(name__in=names) if names else destinations
        with audit.command_context("scrub --restore-archived"):
            rows = archive.request_all(destinations, tier, days, by="manage.py scrub")
        for row in rows:
            self.stdout.write(
                f"{row.copy.destination.name}: run #{row.copy.run_id} {row.copy.location}: "
                f"{row.state}" + (f" ({row.error})" if row.error else "")
            )
        if not rows:
            self.stdout.write("no live copies in an archive class")
        if any(r.state == r.State.FAILED for r in rows):
            raise CommandError("some restore requests failed")
