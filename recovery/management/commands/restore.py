"""manage.py restore RUN_ID (--target NAME | --to TARGET --free-form) --yes [--json], and
for a point-in-time source: manage.py restore --source SOURCE --at ISO8601|latest
--to-datadir DIR --port N [--start] --yes [--json]."""

import json as jsonlib
import sys

from django.core.management.base import BaseCommand, CommandError

from backups.models import BackupRun, Source
from dr_portal import audit
from recovery import partial as partial_restore
from recovery import pitr_restores, restores, runner, targeting
from recovery.models import RestoreTarget
from recovery.restore_targets import NotAllowed


class Command(BaseCommand):
    help = (
        "Restore one backup in the foreground to a registered restore target (--target NAME), "
        "or, with --free-form, to TARGET: a PostgreSQL URL (postgresql://user@host:port/db) for "
        "a PostgreSQL backup, a file path for SQLite, a directory for files (the source's own "
        "URL or path restores onto the source). Data already at the target is kept aside "
        "first. Exit status 0 when restored and verified, 1 otherwise. "
        "A point-in-time source is restored to a point instead: --source SOURCE --at ISO8601 "
        "(UTC unless it names a zone; 'latest': the end of the archive) --to-datadir DIR "
        "(a new directory directly under a registered data directory target, or the "
        "source's own data directory with its server stopped) --port N [--start]."
    )

    def add_arguments(self, parser):
        parser.add_argument("run", type=int, nargs="?", help="backup run id")
        pitr = parser.add_argument_group("restore a point-in-time source to a point")
        pitr.add_argument("--source", help="the PITR source")
        pitr.add_argument("--at", help="ISO-8601 point (UTC unless zoned), or 'latest'")
        pitr.add_argument("--to-datadir", dest="datadir", help="the new data directory")
        pitr.add_argument("--port", type=int, help="the port the restored server runs on")
        pitr.add_argument(
            "--start", action="store_true", help="start it (default: stopped, ready to start)"
        )
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--target", dest="registered", help="a registered restore target")
        where.add_argument("--to", dest="target", help="a free-form target (needs --free-form)")
        parser.add_argument(
            "--free-form",
            action="store_true",
            help="confirm a free-form target (any host, credentials or path); audited as such",
        )
        parser.add_argument(
            "--database", default="", help="new database name, for a target with a pattern"
        )
        parser.add_argument("--yes", action="store_true", help="confirm: this may replace data")
        parser.add_argument(
            "--failure-type", default="database_failure", help="declared failure type (RTO target)"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        part = parser.add_argument_group("restore only part of a backup")
        part.add_argument("--tables", default="", help="schema.table,... of a PostgreSQL backup")
        part.add_argument("--schema", default="", help="restore the tables into this schema")
        part.add_argument("--suffix", default="", help="... or beside them, names + SUFFIX")
        part.add_argument("--paths", default="", help="dir/file,... of a files backup")
        part.add_argument(
            "--replace",
            action="store_true",
            help="with --paths: replace paths that exist (kept aside as .before_restore_<ts>); "
            "with --tables: put the restored tables in place of the live ones (kept aside as "
            "<name>_before_<ts>), which needs --confirm-tables",
        )
        part.add_argument(
            "--confirm-tables",
            default="",
            help="with --tables --replace: the same table names again, to confirm replacing them",
        )

    def handle(
        self,
        *args,
        run,
        target=None,
        registered=None,
        free_form=False,
        database="",
        yes=False,
        failure_type="database_failure",
        json=False,
        **o,
    ):
        if o.get("source") is not None:
            return self._point_in_time(o, yes=yes, failure_type=failure_type, as_json=json)
        if run is None or not (target or registered):
            raise CommandError(
                "give a backup RUN_ID with --target NAME or --to TARGET, or --source SOURCE "
                "--at ISO8601 --to-datadir DIR --port N for a point-in-time source"
            )
        backup = BackupRun.objects.select_related("source").filter(pk=run).first()
        if backup is None:
            raise CommandError(f"no backup run #{run}")
        if backup.source is None:
            raise CommandError(f"backup run #{run} has no source any more")
        restore_target = None
        if registered:
            restore_target = RestoreTarget.objects.filter(name=registered).first()
            if restore_target is None:
                raise CommandError(f"no restore target named {registered!r}")
        elif not free_form:
            raise CommandError(
                f"{target} is not a registered restore target: register it (portal: Recovery → "
                "restore targets) and use --target NAME, or add --free-form to restore there"
            )
        shown = registered or target
        if not yes:
            raise CommandError(f"restoring to {shown} may replace data there: add --yes to confirm")
        onto_source = bool(target) and targeting.is_source_target(backup.source, target)
        partial = None
        if o.get("tables") or o.get("paths"):
            partial = restores.Partial(
                tables=o["tables"],
                schema=o["schema"],
                suffix=o["suffix"],
                paths=o["paths"],
                replace=bool(o.get("replace")) and bool(o.get("tables")),
                confirm_tables=o.get("confirm_tables") or "",
            )
        with audit.command_context("restore"):
            try:
                restore = restores.start_restore(
                    backup.source,
                    target="" if onto_source or registered else target,
                    restore_target=restore_target,
                    database_name=database,
                    onto_source=onto_source,
                    backup_run=backup,
                    failure_type=failure_type,
                    # --yes confirms replacing what is there (kept aside); for chosen paths
                    # --replace does, and chosen tables never replace anything
                    overwrite=bool(o.get("replace")) if partial else True,
                    partial=partial,
                )
            except (ValueError, runner.Busy) as exc:
                return self._report(None, json, shown, str(exc))
            how = (
                " (onto the source)"
                if onto_source
                else f" (registered target {registered})"
                if registered
                else " (free-form target, --free-form)"
            )
            audit.record(
                "restore",
                backup.source,
                detail=f"restore #{restore.pk} of run #{backup.pk}{partial_restore.describe(restore)} to "
                f"{restore.target}{how}",
            )
            restore = restores.execute_restore(restore)
        return self._report(restore, json, restore.target)

    def _report(self, restore, as_json, target, error=""):
        result = {
            "restore": restore.pk if restore else None,
            "status": restore.status if restore else "failed",
            "target": target,
            "kept_aside": (restore.kept_aside or None) if restore else None,
            "rto_s": round(restore.rto.total_seconds(), 3) if restore and restore.rto else None,
            "error": restore.error if restore else error,
            "warnings": list(restore.warnings or []) if restore else [],
            "hooks": _hooks(restore),
        }
        if restore and (restore.tables or restore.paths):
            result["tables"] = restore.tables
            result["paths"] = restore.paths
        if restore:
            result["checks"] = [
                {"name": c["name"], "passed": c["outcome"] == "passed", "observed": c["observed"]}
                for c in restore.checks
            ]
        if as_json:
            self.stdout.write(jsonlib.dumps(result))
        else:
            self.stdout.write(f"restore {result['restore']}: {result['status']} → {target}")
            if result["kept_aside"]:
                self.stdout.write(f"  previous data kept aside at {result['kept_aside']}")
            if result["rto_s"] is not None:
                self.stdout.write(f"  RTO {result['rto_s']} s (declared start → checks passed)")
            for warning in result["warnings"]:
                self.stdout.write(f"  note: {warning}")
            for line in result["hooks"]:
                self.stdout.write(f"  {line}")
            if result["error"]:
                self.stdout.write(f"  error: {result['error']}")
        sys.exit(0 if result["status"] == "succeeded" else 1)

    def _point_in_time(self, o, *, yes, failure_type, as_json):
        """Restore a PITR source to a point; refusals change nothing and exit 1."""
        source = Source.objects.filter(name=o["source"]).first()
        if source is None:
            raise CommandError(f"no source named {o['source']!r}")
        missing = [
            f"--{n}"
            for n, k in (("at", "at"), ("to-datadir", "datadir"), ("port", "port"))
            if o.get(k) in (None, "")
        ]
        if missing:
            raise CommandError(f"a point-in-time restore needs {', '.join(missing)}")
        at_text = o["at"].strip()
        try:
            at = None if at_text.lower() == "latest" else pitr_restores.parse_point(at_text)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if not yes:
            raise CommandError(
                f"restoring {source.name} into {o['datadir']} writes a data directory "
                "(onto the source: replaces its data, the old directory kept aside): add --yes"
            )
        with audit.command_context("restore"):
            try:
                restore = pitr_restores.start_pitr_restore(
                    source,
                    at=at,
                    data_dir=o["datadir"],
                    port=o["port"],
                    start=o["start"],
                    failure_type=failure_type,
                )
            except (ValueError, NotAllowed, runner.Busy) as exc:
                return self._pitr_report(None, as_json, at, str(exc))
            audit.record(
                "restore",
                source,
                detail=f"restore #{restore.pk} of {source.name} to "
                f"{at.isoformat() if at else 'the latest point'} into {restore.target} "
                f"(port {restore.port}" + (", onto the source)" if restore.onto_source else ")"),
            )
            restore = pitr_restores.execute_pitr_restore(restore)
        return self._pitr_report(restore, as_json, at)

    def _pitr_report(self, restore, as_json, at, error=""):
        result = {
            "restore": restore.pk if restore else None,
            "status": restore.status if restore else "failed",
            "target": at.isoformat() if at else "latest",
            "recovered_to": restore.recovered_to.isoformat()
            if restore and restore.recovered_to
            else None,
            "rto_s": round(restore.rto.total_seconds(), 3) if restore and restore.rto else None,
            "error": restore.error if restore else error,
            "data_directory": restore.target if restore else None,
            "port": restore.port if restore else None,
            "started": bool(restore and restore.start_server and restore.status == "succeeded"),
            "kept_aside": (restore.kept_aside or None) if restore else None,
            "hooks": _hooks(restore),
        }
        if as_json:
            self.stdout.write(jsonlib.dumps(result))
        else:
            self.stdout.write(
                f"restore {result['restore']}: {result['status']} → {result['data_directory']}"
                f" (point {result['target']}, recovered to {result['recovered_to']})"
            )
            if result["kept_aside"]:
                self.stdout.write(f"  previous data directory kept aside at {result['kept_aside']}")
            for line in result["hooks"]:
                self.stdout.write(f"  {line}")
            if result["rto_s"] is not None:
                self.stdout.write(f"  RTO {result['rto_s']} s (declared start → checks passed)")
            if result["error"]:
                self.stdout.write(f"  error: {result['error']}")
        sys.exit(0 if result["status"] == "succeeded" else 1)


def _hooks(restore) -> list[str]:
    """What the target's hooks did, a line a call (never a URL or a secret)."""
    return restore.hook_outcome.splitlines() if restore else []
