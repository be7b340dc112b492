"""Configuration as code composed in one place: each app contributes its sections.

- backups.config: systems, destinations, sources, jobs
- recovery.failover.config: runbooks (may name systems the same file creates)

The whole file is validated first and applied in one transaction: on any problem in any
section nothing changes. This is project wiring, so it may import every app; the apps
never import each other's sections.
"""

from django.db import transaction

from backups import config as backups_config
from backups.config import ConfigError, dump, load_text  # noqa: F401 (the command reads them)
from recovery.failover import config as runbook_config

OTHER_SECTIONS = ("runbooks",)


def apply(data: dict, *, dry_run=False, allow_command=False) -> list:
    """Validate every section, then create/update by name; return the changes.

    `command` steps in runbooks and jobs' command hooks need `allow_command` (a superuser
    named with dr_apply --as).
    """
    new_systems = backups_config.new_system_names(data)
    problems = []
    try:
        planned = backups_config.plan(
            data, other_sections=OTHER_SECTIONS, allow_command=allow_command
        )
    except ConfigError as exc:
        planned, problems = [], list(exc.problems)
    if data.get("runbooks"):
        try:
            runbook_config.plan(data, allow_command=allow_command, new_systems=new_systems)
        except runbook_config.ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    with transaction.atomic():
        if not dry_run:
            backups_config.write(planned)
        changes = [p.change for p in planned]
        if data.get("runbooks"):
            try:
                changes += runbook_config.apply(
                    data, dry_run=dry_run, allow_command=allow_command, new_systems=new_systems
                )
            except runbook_config.ConfigError as exc:
                raise ConfigError(exc.problems) from None
    return changes


def export() -> dict:
    """The whole configuration in dr_apply's format, secrets left out."""
    data = backups_config.export()
    runbooks = runbook_config.export()
    if runbooks:
        data["runbooks"] = runbooks
    return data
