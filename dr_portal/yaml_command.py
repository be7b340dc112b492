"""The shape of the commands that apply a YAML file by name (`dr_apply`, `apply_runbooks`).

The whole file is validated first; on any problem nothing changes, every problem is
printed and the exit status is 1. `--dry-run` shows what would change.
"""

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dr_portal import audit
from dr_portal.lib import strict_yaml


class ApplyYamlCommand(BaseCommand):
    config = None  # a module with load_text(text), apply(data, dry_run, allow_command), ConfigError
    audit_name = ""  # how the audit log names the command
    noun = "object(s)"
    as_help = "portal user the change is made as; command and sql_write steps need a superuser"

    def add_arguments(self, parser):
        parser.add_argument("file", help="YAML file, or - for standard input")
        parser.add_argument("--dry-run", action="store_true", help="show the changes, make none")
        parser.add_argument("--as", dest="as_user", default="", metavar="USER", help=self.as_help)

    def allow_command(self, user) -> bool:
        """May the file write `command` steps (shell commands the worker would run)?"""
        return bool(user and user.is_superuser)

    def handle(self, *args, file, dry_run, as_user="", **options):
        user = None
        if as_user:
            user = get_user_model().objects.filter(username=as_user).first()
            if user is None:
                raise CommandError(f"no portal user named {as_user!r}")
        allow_command = self.allow_command(user)
        # Read one byte past the limit, never the whole of a huge file: the loader refuses it.
        try:
            if file == "-":
                stdin = getattr(sys.stdin, "buffer", None)
                raw = (
                    stdin.read(strict_yaml.MAX_BYTES + 1)
                    if stdin is not None
                    else sys.stdin.read(strict_yaml.MAX_BYTES + 1).encode()
                )
            else:
                with open(file, "rb") as f:
                    raw = f.read(strict_yaml.MAX_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        if len(raw) > strict_yaml.MAX_BYTES:
            raise CommandError(
                f"{file} is larger than {strict_yaml.MAX_BYTES:,} bytes; nothing was changed"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CommandError(
                f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        with audit.command_context(self.audit_name):
            try:
                changes = self.config.apply(
                    self.config.load_text(text), dry_run=dry_run, allow_command=allow_command
                )
            except self.config.ConfigError as exc:
                for problem in exc.problems:
                    self.stderr.write(f"{file}: {problem}")
                self.stderr.write(f"{len(exc.problems)} problem(s) found; nothing was changed.")
                sys.exit(1)
        changed = [c for c in changes if c.action != "unchanged"]
        for change in changes:
            self.stdout.write(
                ("would " if dry_run and change.action != "unchanged" else "") + str(change)
            )
        verb = "would change" if dry_run else "changed"
        self.stdout.write(
            f"{verb} {len(changed)} {self.noun}, {len(changes) - len(changed)} unchanged."
        )
