"""manage.py backup_contents RUN [--search TEXT] [--refresh] [--compare OLDER_RUN] [--json]:
what a backup holds (read once from its verified artifact, then cached), or how two backups
of the same source differ per table or file."""

import json as jsonlib

from django.core.management.base import BaseCommand, CommandError

from backups.models import BackupRun
from recovery import contents as backup_contents
from recovery.runner import NeedsRetrieval, RecoveryFailure


def _run(pk: int) -> BackupRun:
    run = BackupRun.objects.filter(pk=pk).first()
    if run is None:
        raise CommandError(f"no backup run #{pk}")
    return run


class Command(BaseCommand):
    help = (
        "List what one backup holds: PostgreSQL schemas, tables (bytes and rows in the dump), "
        "sequences, views, functions, large objects; the files of a files backup; SQLite "
        "tables and row counts. Read from the best copy the first time, cached afterwards. "
        "--compare OLDER_RUN: per table (or file) bytes and rows in both and the change."
    )

    def add_arguments(self, parser):
        parser.add_argument("run", type=int, help="backup run id")
        parser.add_argument("--search", default="", help="only items whose name contains this")
        parser.add_argument("--refresh", action="store_true", help="read the artifact again")
        parser.add_argument("--compare", type=int, metavar="OLDER_RUN", help="compare with it")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, run, search="", refresh=False, compare=None, json=False, **o):
        backup = _run(run)
        try:
            if compare is not None:
                return self._compare(_run(compare), backup, json)
            contents = backup_contents.contents_for(backup, refresh=refresh)
        except (RecoveryFailure, NeedsRetrieval, ValueError) as exc:
            raise CommandError(str(exc)) from None
        result = backup_contents.as_json(backup, contents)
        if search:
            needle = search.lower()
            result["items"] = [i for i in result["items"] if needle in _label(i).lower()]
        if json:
            self.stdout.write(jsonlib.dumps(result))
            return
        self.stdout.write(
            f"backup run #{backup.pk} ({contents.kind}): "
            + ", ".join(f"{v} {k}" for k, v in contents.summary.items())
        )
        for item in result["items"]:
            extra = " ".join(
                f"{k}={item[k]}" for k in ("bytes", "rows", "objects", "mode") if k in item
            )
            self.stdout.write(f"  {item['type']:<18} {_label(item)}  {extra}".rstrip())

    def _compare(self, older, newer, as_json):
        backup_contents.check_comparable(older, newer)
        rows = backup_contents.compare(
            backup_contents.contents_for(older), backup_contents.contents_for(newer)
        )
        if as_json:
            self.stdout.write(jsonlib.dumps({"older": older.pk, "newer": newer.pk, "items": rows}))
            return
        self.stdout.write(f"backup run #{older.pk} → #{newer.pk}")
        for r in rows:
            if r["state"] != "same":
                self.stdout.write(
                    f"  {r['state']:<8} {r['name']}  rows {r['rows_before']} → {r['rows_after']}"
                    f"  bytes {r['bytes_before']} → {r['bytes_after']}"
                )


def _label(item: dict) -> str:
    return f"{item['schema']}.{item['name']}" if item.get("schema") else item["name"]
