"""manage.py check_destination [NAME ...] [--json]: the destination test, from the shell."""

import json

from django.core.management.base import BaseCommand, CommandError

from backups.health import test_destination
from backups.models import Destination


class Command(BaseCommand):
    help = (
        "Do what a backup does at each named destination (default: every enabled one) on a "
        "throwaway object; S3: multipart upload, read back, delete. Exit 1 if any failed, "
        "naming the first operation that failed and the store's error code."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="one JSON object per line"
        )

    def handle(self, *args, names, as_json, **options):
        destinations = list(Destination.objects.filter(enabled=True).order_by("name"))
        if names:
            found = {d.name: d for d in Destination.objects.filter(name__in=names)}
            unknown = sorted(set(names) - set(found))
            if unknown:
                raise CommandError(f"no destination named {', '.join(unknown)}")
            destinations = [found[n] for n in names]
        failed = 0
        for destination in destinations:
            ok, detail = test_destination(destination)
            failed += not ok
            if as_json:
                line = json.dumps(
                    {"destination": destination.name, "ok": ok, "detail": detail}, sort_keys=True
                )
            else:
                line = f"{destination.name}: {'ok' if ok else 'FAILED'}: {detail}"
            self.stdout.write(line)
        if failed:
            raise CommandError(f"{failed} of {len(destinations)} destinations failed the test")
