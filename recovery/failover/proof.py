"""Failover readiness per system: has each of its runbooks, as its steps stand now, been
proven by a run — when, live or test, with every step exercised or as a rehearsal — and did
that run meet its RTO target? One place for the dashboard, /metrics, `dr_status --json`
and the compliance report; a fixed number of queries whatever the number of systems.

States of a runbook, best first:
- verified: a run of its current steps succeeded with every step exercised;
- rehearsed: only a test run that skipped side-effect steps succeeded (partial evidence);
- stale: the proving run is older than DR_FAILOVER_PROOF_DAYS;
- needs_verification: no run of its current steps succeeded.
A system is as ready as its least ready runbook; a system without a runbook is no_runbook.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from backups.models import System
from dr_portal.runs import RunStatus
from recovery.failover.models import FailoverRun, Runbook

VERIFIED, REHEARSED, STALE, NEEDS_VERIFICATION, NO_RUNBOOK = (
    "verified",
    "rehearsed",
    "stale",
    "needs_verification",
    "no_runbook",
)
STATE_ORDER = [VERIFIED, REHEARSED, STALE, NEEDS_VERIFICATION, NO_RUNBOOK]
STATE_VALUE = {state: i for i, state in enumerate(STATE_ORDER)}  # /metrics
LABEL = {
    VERIFIED: "verified",
    REHEARSED: "rehearsed in test mode",
    STALE: "proof is stale",
    NEEDS_VERIFICATION: "needs verification",
    NO_RUNBOOK: "no runbook",
}


def _secs(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 1)


@dataclass
class RunbookReadiness:
    runbook_id: int
    runbook: str
    failure_type: str
    state: str = NEEDS_VERIFICATION
    run_id: int | None = None
    mode: str = ""
    finished: datetime | None = None
    age: timedelta | None = None
    verdict: str = ""  # the run's RTO verdict: met, missed, or "" (no RTO measured)
    rto: timedelta | None = None
    rto_target: timedelta | None = None
    rpo: timedelta | None = None  # data lost at promotion, when measured
    exercised: bool = False

    def as_dict(self) -> dict:
        return {
            "runbook": self.runbook,
            "runbook_id": self.runbook_id,
            "failure_type": self.failure_type,
            "state": self.state,
            "last_run": self.run_id,
            "mode": self.mode,
            "finished": self.finished.isoformat() if self.finished else None,
            "age_s": _secs(self.age),
            "verdict": self.verdict,
            "rto_s": _secs(self.rto),
            "rto_target_s": _secs(self.rto_target),
            "rpo_s": _secs(self.rpo),
            "all_steps_exercised": self.exercised,
        }


@dataclass
class SystemReadiness:
    system_id: int
    system: str
    state: str = NO_RUNBOOK
    runbooks: list[RunbookReadiness] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABEL[self.state]

    @property
    def last(self) -> RunbookReadiness | None:
        """The newest proving run over the system's runbooks."""
        proven = [r for r in self.runbooks if r.finished]
        return max(proven, key=lambda r: r.finished) if proven else None

    def as_dict(self) -> dict:
        last = self.last
        return {
            "system": self.system,
            "state": self.state,
            "last_verified_run": last.run_id if last else None,
            "mode": last.mode if last else "",
            "age_s": _secs(last.age) if last else None,
            "verdict": last.verdict if last else "",
            "runbooks": [r.as_dict() for r in self.runbooks],
        }


def _proofs(runbook_ids) -> dict[int, dict]:
    """Per runbook, the run that proves its current steps: the newest one that exercised
    every step, else the newest rehearsal."""
    rows = (
        FailoverRun.objects.filter(
            runbook_id__in=runbook_ids,
            status=RunStatus.SUCCEEDED,
            config_hash=F("runbook__config_hash"),
        )
        .order_by("-finished", "-pk")
        .values(
            "pk",
            "runbook_id",
            "mode",
            "finished",
            "verdict",
            "rto",
            "rto_target",
            "rpo",
            "skipped_effects",
            "unproven_checks",
        )  # fmt: skip
    )
    proofs: dict[int, dict] = {}
    for row in rows:
        row["exercised"] = not (row["skipped_effects"] or row["unproven_checks"])
        best = proofs.get(row["runbook_id"])
        if best is None or (row["exercised"] and not best["exercised"]):
            proofs[row["runbook_id"]] = row
    return proofs


def _runbook_readiness(runbook: Runbook, proof: dict | None, now) -> RunbookReadiness:
    r = RunbookReadiness(runbook.pk, runbook.name, runbook.failure_type)
    if proof is None:
        return r
    r.run_id, r.mode, r.finished = proof["pk"], proof["mode"], proof["finished"]
    r.age = now - proof["finished"] if proof["finished"] else None
    r.verdict, r.rto, r.rto_target = proof["verdict"], proof["rto"], proof["rto_target"]
    r.rpo, r.exercised = proof["rpo"], proof["exercised"]
    r.state = VERIFIED if r.exercised else REHEARSED
    if r.age is not None and r.age > timedelta(days=settings.DR_FAILOVER_PROOF_DAYS):
        r.state = STALE
    return r


def system_readiness(systems=None, now=None) -> list[SystemReadiness]:
    """Every system (or those given), by name, with its runbooks' readiness."""
    now = now or timezone.now()
    systems = list(systems) if systems is not None else list(System.objects.order_by("name"))
    runbooks = list(
        Runbook.objects.filter(system__in=systems)
        .order_by("name", "pk")
        .only("pk", "name", "failure_type", "system_id", "config_hash")
    )
    proofs = _proofs([rb.pk for rb in runbooks])
    by_system: dict[int, SystemReadiness] = {
        s.pk: SystemReadiness(s.pk, s.name) for s in sorted(systems, key=lambda s: s.name)
    }
    for rb in runbooks:
        by_system[rb.system_id].runbooks.append(_runbook_readiness(rb, proofs.get(rb.pk), now))
    for ready in by_system.values():
        if ready.runbooks:
            ready.state = max((r.state for r in ready.runbooks), key=STATE_VALUE.get)
    return list(by_system.values())
