"""manage.py apply_retention [--dry-run]: apply every destination's retention rule."""

from django.core.management.base import BaseCommand

from backups import retention
from dr_portal import audit


class Command(BaseCommand):
    help = "Delete expired backup copies (storage first, then the catalog). --dry-run only shows."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--verbose-keep", action="store_true", help="also list kept copies")

    def handle(self, *args, dry_run, verbose_keep, **options):
        with audit.command_context("apply_retention"):
            results = retention.apply_all(dry_run=dry_run, stdout=None if dry_run else self.stdout)
        total = 0
        for name, decisions in results.items():
            doomed = [d for d in decisions if d.delete]
            total += len(doomed)
            self.stdout.write(f"{name}: {len(decisions)} live copies, {len(doomed)} to delete")
            for d in decisions:
                if d.delete and dry_run:
                    self.stdout.write(
                        f"  would delete run #{d.item.run_id}: {d.copy.location} ({d.reason})"
                    )
                elif not d.delete and verbose_keep:
                    self.stdout.write(f"  keep run #{d.item.run_id}: {d.reason}")
        self.stdout.write(f"{'would delete' if dry_run else 'deleted'} {total} copies")
