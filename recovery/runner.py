"""The skeleton restore tests and restores share: claim, run the body under a heartbeat
with fenced phases, remove what the run recorded as temporary, whatever happens.
"""

import logging
from dataclasses import dataclass, fields

from dr_portal.runs import DONE, IllegalTransition, LeaseLost
from recovery.cleanup import remove_temporaries
from recovery.engine.verify import Phases

log = logging.getLogger(__name__)


class RecoveryFailure(Exception):
    """An expected failure: the message names the cause and holds no secret."""


class NeedsRetrieval(RecoveryFailure):
    """Only archive-class copies exist: they must be retrieved (hours) before reading."""


class Busy(Exception):
    """The source already has an active restore test or restore."""


@dataclass
class RunResult:
    """What a run records when it finishes; None means "leave the column as it is"."""

    def as_fields(self) -> dict:
        found = {f.name: getattr(self, f.name) for f in fields(self)}
        return {name: value for name, value in found.items() if value is not None}

    def update(self, other: "RunResult"):
        """Take every field `other` recorded (its None fields leave ours as they are)."""
        for name, value in other.as_fields().items():
            setattr(self, name, value)


def fenced_phases(run) -> Phases:
    """Phases that re-check the lease as each starts (fencing), except clean-up, which runs
    whoever holds the run."""

    def on_phase(name):
        if name == "cleanup":
            run.beat(name)
        else:
            run.enter_phase(name)

    return Phases(on_phase=on_phase)


def execute(run, body, *, after=None):
    """claim → body(run, secrets) under a heartbeat → temporaries removed, whatever happens.

    `body` fetches, restores, checks and finishes the run; an unexpected exception fails
    it (secrets redacted), a lost lease leaves it to the reaper. Safe to call twice: the
    claim decides. `after(run)` (a restore target's post-hooks) follows once the run this
    call claimed has finished, whichever way.
    """
    if not run.claim():
        log.info("%s was already claimed (%s)", run, run.status)
        return run
    secrets: list[str] = []
    try:
        with run.heartbeat():
            body(run, secrets)
    except (LeaseLost, IllegalTransition) as exc:  # reaped: the run is not ours to finish
        log.warning("%s stopped: %s", run, exc)
        run.append_log(f"stopped: {exc}")
    except Exception as exc:
        log.exception("%s failed unexpectedly", run)
        run.fail_unexpectedly(exc, secrets)
    finally:
        _remove_temporaries(run)
    run.refresh_from_db()
    if after is not None and run.status in DONE:
        after(run)
    return run


def _remove_temporaries(run):
    """What this run recorded is gone when it ends, whatever the exit path (idempotent)."""
    try:
        remove_temporaries(run)
    except Exception:
        log.exception("%s: removing its temporaries failed; the sweep will retry", run)
