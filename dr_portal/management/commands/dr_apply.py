"""manage.py dr_apply FILE.yaml [--dry-run] [--as USER]: create or update configuration by name."""

from django.core.management.base import CommandError

from dr_portal.management import config_as_code as config
from dr_portal.yaml_command import ApplyYamlCommand


class Command(ApplyYamlCommand):
    help = (
        "Create or update systems, destinations, sources and jobs from a YAML file. The whole "
        "file is validated first; on any problem nothing changes and the exit status is 1."
    )
    config = config
    audit_name = "dr_apply"
    as_help = (
        "a superuser on whose authority `command` and `sql_write` runbook steps and jobs' "
        "command hooks may be written"
    )

    def allow_command(self, user) -> bool:
        if user is not None and not user.is_superuser:
            raise CommandError(f"--as {user.get_username()}: no superuser with that name")
        return user is not None
