"""manage.py apply_runbooks FILE.yaml [--dry-run] [--as USER]: failover runbooks as code."""

from dr_portal.yaml_command import ApplyYamlCommand
from recovery.failover import config


class Command(ApplyYamlCommand):
    help = (
        "Create or update failover runbooks (by system and name) from a YAML file. The whole "
        "file is validated first; on any problem nothing changes and the exit status is 1. "
        "See recovery/failover/config.py for the format."
    )
    config = config
    audit_name = "apply_runbooks"
    noun = "runbook(s)"
