"""pitr_restore: restore a point-in-time source to a point and start it, timed.

The restore itself is the portal's (recovery.pitr_restores: a registered data directory
target, a port of its range, the source's checks on the copy); the caller's hooks hand it
in as `ctx.pitr_restore`, so this module stays free of Django. In test mode the step
restores into a scratch directory and removes it again (a recorded restore test), so a
test run still measures how long the restore takes and proves it works.
"""

from __future__ import annotations

import re
from datetime import datetime

from .base import Kind, Param, StepResult, non_empty

# A new directory's name under the target's path: one path component, nothing hidden.
DIRECTORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def point(value) -> str | None:
    if value == "latest":
        return None
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "must be 'latest' or an ISO-8601 date and time (UTC unless it names a zone)"
    return None


def directory(value) -> str | None:
    if not DIRECTORY.match(value) or value in (".", ".."):
        return "must be a new directory's name (letters, digits, '.', '_', '-'), not a path"
    return None


def unprivileged_port(value) -> str | None:
    return None if 1024 <= value <= 65535 else "must be a port between 1024 and 65535"


class PitrRestore(Kind):
    name = "pitr_restore"
    title = "Restore a PITR source to a point"
    side_effects = True
    runs_in_test = True  # test mode restores into scratch instead of skipping
    verification = False
    default_timeout = 6 * 3600.0
    params = {
        "source": Param((str,), check=non_empty, help="the point-in-time source's name"),
        "at": Param((str,), "latest", point, help="'latest' or an ISO-8601 point"),
        "target": Param((str,), check=non_empty, help="a registered data directory target"),
        "directory": Param((str,), check=directory, help="the new data directory's name"),
        "port": Param((int,), check=unprivileged_port),
        "start": Param((bool,), True, help="start the restored server"),
    }

    def describe(self, params):
        started = " and start it" if params.get("start", True) else ""
        return (
            f"restore {params.get('source')} to {params.get('at', 'latest')} into "
            f"{params.get('directory')} under target {params.get('target')} on port "
            f"{params.get('port')}{started}"
        )

    def run(self, params, ctx):
        if ctx.pitr_restore is None:
            return StepResult(False, "point-in-time restores are not available to this runner")
        ok, output = ctx.pitr_restore(params, ctx)
        return StepResult(ok, output)
