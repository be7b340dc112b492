"""manage.py restore_globals RUN (-o FILE | --to URL --yes): roles and tablespaces of a backup."""

import json as jsonlib
import os
import tempfile

from django.core.management.base import BaseCommand, CommandError

from backups.globals import fetch_globals
from backups.models import BackupRun
from dr_portal import audit
from recovery.engine.pg import PgServer, RestoreError, apply_globals


class Command(BaseCommand):
    help = (
        "Fetch and verify the roles and tablespaces (pg_dumpall --globals-only) stored with a "
        "PostgreSQL backup of a source with `globals: true`. With -o, write the SQL script; "
        "with --to postgresql://user@host:port/postgres --yes, apply it there with psql "
        "(roles that exist already are left as they are, their settings and memberships "
        "updated). Restored roles have no password: set them before use."
    )

    def add_arguments(self, parser):
        parser.add_argument("run", type=int, help="backup run id")
        parser.add_argument("-o", dest="out", help="write the verified SQL script here")
        parser.add_argument("--to", dest="target", help="PostgreSQL server to create them on")
        parser.add_argument("--yes", action="store_true", help="confirm changing the server")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, run, out=None, target=None, yes=False, json=False, **options):
        backup = BackupRun.objects.filter(pk=run).first()
        if backup is None:
            raise CommandError(f"no backup run #{run}")
        if bool(out) == bool(target):
            raise CommandError("give either -o FILE or --to URL")
        if target and not yes:
            raise CommandError(f"creating roles on {target} changes that server: add --yes")
        result = {"run": backup.pk, "created": [], "errors": [], "written": None}
        if out:
            try:
                fetch_globals(backup, out)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            result["written"] = out
        else:
            try:
                server = PgServer.from_url(target)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            workdir = tempfile.mkdtemp(prefix="dr-globals-")
            script = os.path.join(workdir, "globals.sql")
            try:
                with audit.command_context("restore_globals"):
                    fetch_globals(backup, script)
                    created, errors = apply_globals(server, script)
                    audit.record(
                        "restore globals",
                        backup.source or backup,
                        detail=f"roles of run #{backup.pk} onto {server.public_url()}: "
                        f"created {', '.join(created) or 'none'}",
                    )
            except (ValueError, RestoreError) as exc:
                raise CommandError(str(exc)) from None
            finally:
                if os.path.exists(script):
                    os.unlink(script)
                os.rmdir(workdir)
            result.update(created=created, errors=errors)
        if json:
            self.stdout.write(jsonlib.dumps(result))
        else:
            if result["written"]:
                self.stdout.write(f"roles and tablespaces of run #{backup.pk} written to {out}")
            else:
                self.stdout.write(f"roles created: {', '.join(result['created']) or 'none'}")
                for line in result["errors"]:
                    self.stdout.write(f"  {line}")
