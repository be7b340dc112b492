"""manage.py rebuild_catalog DESTINATION: recreate runs and copies from a destination's manifests."""

from django.core.management.base import BaseCommand, CommandError

from backups import catalog
from backups.engine import DestinationError
from backups.models import Destination
from dr_portal import audit


class Command(BaseCommand):
    help = (
        "Recreate backup runs and copies from the manifests stored in DESTINATION "
        "(when the portal's database was lost). Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("destination", help="destination name")

    def handle(self, *args, destination, **options):
        dest = Destination.objects.filter(name=destination).first()
        if dest is None:
            names = ", ".join(Destination.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no destination named {destination} (known: {names})")

        with audit.command_context("rebuild_catalog"):
            try:
                report = catalog.rebuild(dest, stdout=self.stdout)
            except DestinationError as exc:
                raise CommandError(f"cannot read {dest.name}: {exc}") from None
            audit.record(
                "rebuild catalog",
                dest,
                detail=f"{report.seen} manifests, {report.runs_created} runs and "
                f"{report.copies_created} copies created",
            )
        self.stdout.write(
            f"{report.seen} manifests read: {report.runs_created} runs and {report.copies_created} "
            f"copies created, {report.already_known} already known, {report.skipped} skipped"
        )
