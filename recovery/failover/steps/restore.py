"""restore: restore a logical backup (the newest proven one, or a backup run by id) into a
registered restore target, through the portal's restores (recovery.restores, the same
path as the restore page), handed in by the caller as `ctx.restore`. In test mode it is a
restore test of the same backup in scratch (removed afterwards), so a rehearsal still
measures how long the restore takes and proves it works.
"""

from __future__ import annotations

from .base import Kind, Param, StepResult, non_empty


def backup_ref(value) -> str | None:
    if value == "newest" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return None
    return "must be 'newest' (the newest backup a restore test proved) or a backup run id"


class Restore(Kind):
    name = "restore"
    title = "Restore a backup into a registered target"
    side_effects = True
    runs_in_test = True  # test mode restores into scratch instead of skipping
    default_timeout = 4 * 3600.0
    params = {
        "source": Param((str,), check=non_empty, help="the source's name"),
        "target": Param((str,), check=non_empty, help="a registered restore target's name"),
        "database": Param((str,), None, help="database name, for a target with a pattern"),
        "backup": Param((str, int), "newest", backup_ref, help="'newest' or a backup run id"),
        "overwrite": Param((bool,), False, help="replace data already at the target"),
    }

    def describe(self, params):
        which = (
            "the newest proven backup"
            if params.get("backup", "newest") == "newest"
            else f"backup run #{params.get('backup')}"
        )
        into = params.get("target")
        if params.get("database"):
            into += f" (database {params['database']})"
        return f"restore {which} of {params.get('source')} into target {into}"

    def run(self, params, ctx):
        if ctx.restore is None:
            return StepResult(False, "restores are not available to this runner")
        ok, output = ctx.restore(params, ctx)
        return StepResult(ok, output)
