"""Restore tests of point-in-time sources: restore to a point into a scratch data directory.

A test of a PITR source restores its stanza (all repositories, or the one pinned) to a
point into a throwaway directory on a free port, with the server binaries of the
source's major version (recovery.engine.pitr.ScratchRestore), waits for promotion, runs
the source's checks as a confined role over the copy's private socket, reads the
heartbeat and records RTO by phase (fetch, replay, checks) and the RPO it proves:
target − the newest of (heartbeat found, last replayed commit).

The points alternate: the newest recoverable point (the target is the test's start: what
a failure then would have lost) and a random point inside the window; a point given by
hand (verify_backup --at) is tested as given. The scratch directory and its server go on
every exit path; it is recorded on the test before it is made, so the reaper removes it
after a worker died, and the periodic sweep removes any the record missed.
"""

import random
import socket
import tempfile
import time
from datetime import datetime, timedelta

from django.utils import timezone

from backups.engine import pgbackrest
from backups.engine.errors import PgBackRestError
from backups.engine.pgbackrest_run import secrets_of
from dr_portal.lib import keyring
from dr_portal.lib.redact import redact
from dr_portal.runs import RunStatus
from recovery.engine import pitr
from recovery.engine.check_role import run_confined_checks
from recovery.engine.checks import Outcome
from recovery.engine.pg import PgServer, RestoreError
from recovery.models import DataBasis, PitrPoint, RestoreTest
from recovery.observations import previous_observations
from recovery.runner import RecoveryFailure
from recovery.workspace import setting

SCRATCH_KIND = "pitr_scratch"


def scratch_parent() -> str:
    """Where scratch data directories go (DR_PITR_SCRATCH_DIR; default: the system
    temporary directory). The PostgreSQL OS user must be able to reach it."""
    return str(setting("DR_PITR_SCRATCH_DIR") or tempfile.gettempdir())


def next_point(source) -> str:
    """Alternate: the newest point after a random one (or none), a random one after the newest."""
    last = (
        RestoreTest.objects.filter(source=source)
        .exclude(pitr_point__in=["", PitrPoint.GIVEN])
        .order_by("-queued", "-pk")
        .values_list("pitr_point", flat=True)
        .first()
    )
    return PitrPoint.RANDOM if last == PitrPoint.NEWEST else PitrPoint.NEWEST


def random_point(oldest: datetime, newest: datetime) -> datetime:
    span = max(0.0, (newest - oldest).total_seconds())
    return oldest + timedelta(milliseconds=int(random.uniform(0, span) * 1000))  # noqa: S311


def _choose(test: RestoreTest, win: pgbackrest.Window, started: datetime):
    """(kind, target time, the point to give pgBackRest: None = the end of the archive)."""
    kind = test.pitr_point or next_point(test.source)
    if kind == PitrPoint.GIVEN:
        at = test.target_time
        if at is None or not win.oldest <= at <= win.newest:
            raise RecoveryFailure(
                f"{at.isoformat() if at else 'no point'} is outside the recoverable window "
                f"{win.oldest.isoformat()} to {win.newest.isoformat()}"
            )
        return kind, at, at
    if kind == PitrPoint.RANDOM:
        at = random_point(win.oldest, win.newest)
        return kind, at, at
    return PitrPoint.NEWEST, started, None


class _Phases:
    def __init__(self, test: RestoreTest):
        self.test, self.items = test, []

    def start(self, name: str):
        if self.items and not self.items[-1]["ok"]:
            self.items[-1]["ok"] = True
        if name == "cleanup":
            self.test.beat(name)  # clean-up runs whoever holds the test
        else:
            self.test.enter_phase(name)
        self.items.append({"name": name, "ok": False, "seconds": 0.0, "detail": ""})

    def timed(self, seconds: dict):
        for item in self.items:
            if item["name"] in seconds:
                item["seconds"], item["ok"] = seconds[item["name"]], True

    def seconds(self, name: str) -> float:
        return sum(p["seconds"] for p in self.items if p["name"] == name)


def run_pitr_test(test: RestoreTest, secrets: list[str]):
    """The body of a restore test of a PITR source (under recovery.runner.execute)."""
    source = test.source
    started = test.started or timezone.now()
    clock = time.monotonic()
    phases = _Phases(test)
    fields: dict = {}
    try:
        # All repositories in the stanza (its configuration is the one archive_command
        # reads, so it is never rewritten with fewer); a pinned test reads only its own.
        stanza = source.to_stanza()
        secrets.extend(secrets_of(stanza))
        repo = _repo_number(test, source)
        win = pgbackrest.window(stanza, repo=repo or 1)
        if win.error or win.oldest is None or win.newest is None:
            raise RecoveryFailure(f"no recoverable window: {win.error or 'no base backup yet'}")
        kind, target, at = _choose(test, win, started)
        RestoreTest.objects.filter(pk=test.pk).update(pitr_point=kind, target_time=target)
        fields.update(pitr_point=kind, target_time=target, **_repository(test, source))
        test.append_log(
            f"restoring {source.name} to {_describe(kind, target)} into scratch "
            f"(window {win.oldest.isoformat()} to {win.newest.isoformat()})"
        )
        checks = _restore_and_check(test, stanza, at, repo, target, phases, fields)
    except (
        pitr.PitrError,
        PgBackRestError,
        RecoveryFailure,
        RestoreError,
        keyring.KeyRingError,
        ValueError,
    ) as exc:
        message = redact(str(exc), secrets)
        if phases.items and not phases.items[-1]["ok"]:
            phases.items[-1]["detail"] = message[:500]
        _finish(test, phases, fields, clock, RunStatus.FAILED, message)
        return
    bad = [c for c in checks if c["outcome"] != Outcome.PASSED]
    if bad:
        names = ", ".join(f"{c['name']} {c['outcome'].replace('_', ' ')}" for c in bad)
        _finish(test, phases, fields, clock, RunStatus.FAILED, f"verification: {names}")
        return
    if not checks:
        test.append_log("no verification checks are defined: only the restore itself was proven")
    _finish(test, phases, fields, clock, RunStatus.SUCCEEDED)


def _describe(kind: str, target: datetime) -> str:
    if kind == PitrPoint.NEWEST:
        return f"the newest recoverable point (target: the test's start, {target.isoformat()})"
    return f"{PitrPoint(kind).label.lower()} {target.isoformat()}"


def _repository(test: RestoreTest, source) -> dict:
    """The destination whose repository the restore reads: the pinned one, else repo1."""
    if test.destination_id:
        return {"copy_destination_id": test.destination_id}
    first = next(iter(source.physical_destinations()), None)
    return {"copy_destination_id": first.pk} if first else {}


def _repo_number(test: RestoreTest, source) -> int:
    """pgBackRest's number of the pinned destination's repository (0: not pinned)."""
    if not test.destination_id:
        return 0
    ids = [d.pk for d in source.physical_destinations()]
    if test.destination_id not in ids:
        raise RecoveryFailure(
            f"{test.destination.name} holds no pgBackRest repository of {source.name}"
        )
    return ids.index(test.destination_id) + 1


def _restore_and_check(test, stanza, at, repo: int, target, phases: _Phases, fields: dict):
    source = test.source
    scratch = pitr.ScratchRestore(stanza, scratch_parent(), at=at, repo=repo)

    def on_phase(name: str):
        if name == "fetch":  # ScratchRestore named its directory: record it before the copy
            test.record_temporary(kind=SCRATCH_KIND, path=scratch.path, host=socket.gethostname())
        phases.start(name)

    scratch.restore_kw["on_phase"] = on_phase
    try:
        with scratch as result:
            phases.timed(result.phases)
            fields["copy_used"] = f"pgBackRest backup set {result.label}"
            fields["recovered_to"] = result.recovered_to
            if result.replayed_to_end:
                test.append_log("the point lies past the last archived commit: replayed to the end")
            phases.start("checks")
            began = time.monotonic()
            dbname = source.database or "postgres"
            beat = pitr.read_heartbeat(result, dbname)
            checks = run_confined_checks(
                PgServer(result.socket_dir, result.port, result.user, "", dbname),
                source.effective_checks,
                previous_observations(source, test.pk),
                scratch=True,
            )
            phases.items[-1].update(ok=True, seconds=round(time.monotonic() - began, 3))
            phases.start("cleanup")
            began = time.monotonic()
    finally:
        if phases.items and phases.items[-1]["name"] == "cleanup":
            phases.items[-1].update(ok=True, seconds=round(time.monotonic() - began, 3))
    fields["checks"] = [c.as_dict() for c in checks]
    for check in fields["checks"]:
        test.append_log(f"check {check['name']}: {check['outcome']} ({check['detail']})")
    _record_rpo(test, fields, target, beat, result.recovered_to)
    return fields["checks"]


def _record_rpo(test, fields: dict, target: datetime, beat, recovered):
    """RPO proven = target − the newest point the restored data shows."""
    if beat and (recovered is None or beat >= recovered):
        data_at, basis = beat, DataBasis.HEARTBEAT
    elif recovered:
        data_at, basis = recovered, DataBasis.REPLAY
    else:
        test.append_log("neither a heartbeat nor a replayed commit was found: RPO not proven")
        return
    fields.update(data_at=data_at, data_basis=basis, data_age=max(timedelta(0), target - data_at))
    test.append_log(
        f"RPO proven {fields['data_age'].total_seconds():.1f} s "
        f"(target {target.isoformat()}, newest {basis} {data_at.isoformat()})"
    )


def _finish(test, phases: _Phases, fields: dict, clock: float, status: str, error: str = ""):
    elapsed = time.monotonic() - clock
    # RTO ends when the checks pass: removing the scratch copy afterwards is not recovery.
    fields["rto"] = timedelta(seconds=round(elapsed - phases.seconds("cleanup"), 3))
    if error:
        test.append_log(error)
    test.append_log(f"{status} in {elapsed:.1f} s")
    test.finish(status, error[:5000], phases=phases.items, **fields)
