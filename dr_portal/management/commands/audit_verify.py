"""manage.py audit_verify [--json]: walk the audit chain and re-check sealed evidence.

Exit status 0 when every link holds and every sealed run still has the evidence it
finished with; 1 otherwise, naming the first broken entry and every changed run. Runs
removed since they were sealed (a deleted source takes its tests with it) are listed,
not failed: their deletion is itself in the chain.
"""

import json
import sys

from django.core.management.base import BaseCommand

from dr_portal import audit_chain


class Command(BaseCommand):
    help = "Verify the audit log's hash chain and the sealed evidence of finished runs."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options):
        report = audit_chain.verify()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self._print(report)
        if not report.ok:
            sys.exit(1)

    def _print(self, report):
        head = report.head
        self.stdout.write(
            f"audit chain: {report.entries} entries; head #{head['seq']} "
            f"(entry id {head['entry_id']}) {head['hash']}"
        )
        broken = report.broken
        if broken:
            self.stdout.write(
                self.style.ERROR(
                    f"BROKEN at entry id {broken['id']} (position {broken['seq']}): {broken['why']}"
                )
            )
        self.stdout.write(f"sealed runs: {report.sealed}")
        for run in report.changed:
            self.stdout.write(
                self.style.ERROR(
                    f"CHANGED {run['run']}: its evidence differs from the digest sealed in "
                    f"entry id {run['seal_entry']}"
                )
            )
        for run in report.removed:
            self.stdout.write(f"removed since sealed: {run['run']} (entry id {run['seal_entry']})")
        if report.ok:
            self.stdout.write(self.style.SUCCESS("OK: the chain is intact, no sealed run changed"))
