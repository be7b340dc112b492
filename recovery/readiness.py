"""Per-source recovery readiness: RPO now, verified RPO, measured RTO, RTO forecast, verdict.

One place computes these for the recovery pages, `dr_status` and the dashboard.
`source_readiness(sources)` answers for many sources with a fixed number of queries
(window functions pick the newest row per source), never one query per source.

How the figures are measured:
- RPO now: now − data timestamp of the newest good backup (succeeded or partial,
  restorable, with at least one intact copy). For a point-in-time recovery source with a
  recoverable window (backups.PitrWindow, refreshed from pgBackRest's repository): now − the
  window's newest point, the end of the newest archived WAL segment; without a window, or
  when reading it failed, the newest good backup as for any source, with the reason shown.
- Verified RPO: now − the data moment proven by the newest passed, still-current
  restore test: the heartbeat read from the restored data when there is one, else the
  tested backup's data timestamp.
- Last measured RTO: the wall time of the newest passed restore test.
- RTO forecast: the newest passed restore test's RTO plus the growth since the backup it
  tested (newest backup's stored size − tested size) at the throughput it measured
  (stored bytes per second of its fetch, verify and restore phases; the fixed costs of
  a test are counted once, not scaled with size).
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from croniter import croniter
from django.core.cache import cache
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from backups.models import BackupJob, BackupRun, PitrWindow, Source
from dr_portal.lib import readiness_version
from dr_portal.lib.durations import format_duration as fd
from dr_portal.runs import DONE, RunStatus
from recovery.models import RestoreTest
from recovery.targets import (
    AT_RISK_FRACTION,
    Verdict,
    at_risk,
    judge,
    restore_rto_target,
    rpo_targets,
)

OK, AT_RISK, BREACHED = "ok", "at_risk", "breached"
VERDICT_ORDER = [OK, AT_RISK, BREACHED]
OVERDUE_GRACE = timedelta(hours=1)
PERCENT = round(AT_RISK_FRACTION * 100)


@dataclass
class Readiness:
    source_id: int
    source_name: str
    data_class: str
    rpo_target: timedelta | None = None
    newest_backup_id: int | None = None
    newest_backup_at: datetime | None = None
    newest_backup_bytes: int = 0
    rpo_now: timedelta | None = None
    verified_at: datetime | None = None
    verified_basis: str = ""
    verified_rpo: timedelta | None = None
    last_test_id: int | None = None
    last_test_status: str = ""
    last_test_finished: datetime | None = None
    last_test_error: str = ""
    last_passed_test_id: int | None = None
    last_passed_started: datetime | None = None
    last_rto: timedelta | None = None
    rto_target: timedelta | None = None
    throughput_bps: float | None = None
    tested_bytes: int = 0
    rto_forecast: timedelta | None = None
    needs_verification: bool = False
    test_overdue: bool = False
    verdict: str = OK
    reasons: list[str] = field(default_factory=list)
    # Point-in-time recovery: the window pgBackRest's repository allows (PitrWindow).
    pitr: bool = False
    recoverable_from: datetime | None = None
    recoverable_to: datetime | None = None
    newest_segment: str = ""
    wal_gap: bool = False
    gap_after: str = ""
    missing_segment: str = ""
    window_checked_at: datetime | None = None
    window_error: str = ""
    window_note: str = ""  # why RPO now comes from the newest base backup instead

    @property
    def rpo_state(self) -> str:
        return _state(self.rpo_now, self.rpo_target, missing=BREACHED)

    @property
    def verified_rpo_state(self) -> str:
        if self.verified_rpo is None:
            return "needs_verification"
        return _state(self.verified_rpo, self.rpo_target)

    @property
    def rto_state(self) -> str:
        return _state(self.last_rto, self.rto_target, missing="needs_verification")

    @property
    def forecast_state(self) -> str:
        if self.rto_forecast is None or self.rto_target is None:
            return ""
        return BREACHED if self.rto_forecast > self.rto_target else OK

    @property
    def rpo_used(self) -> float | None:
        if self.rpo_now is None or not self.rpo_target:
            return None
        return self.rpo_now / self.rpo_target

    def as_dict(self) -> dict:
        def secs(value):
            return None if value is None else round(value.total_seconds(), 1)

        return {
            "source": self.source_name,
            "data_class": self.data_class,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "rpo_now_s": secs(self.rpo_now),
            "rpo_target_s": secs(self.rpo_target),
            "verified_rpo_s": secs(self.verified_rpo),
            "verified_basis": self.verified_basis,
            "last_rto_s": secs(self.last_rto),
            "rto_target_s": secs(self.rto_target),
            "rto_forecast_s": secs(self.rto_forecast),
            "last_test": self.last_test_id,
            "last_test_status": self.last_test_status,
            "needs_verification": self.needs_verification,
            "test_overdue": self.test_overdue,
            "pitr": self.pitr,
            "rpo_s": secs(self.rpo_now),
            "recoverable_from": _iso(self.recoverable_from),
            "recoverable_to": _iso(self.recoverable_to),
            "wal_gap": self.wal_gap,
            "missing_segment": self.missing_segment,
            "window_checked_at": _iso(self.window_checked_at),
            "window_error": self.window_error,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _state(value, target, missing=""):
    if value is None:
        return missing
    if judge(value, target) == Verdict.MISSED:
        return BREACHED
    return AT_RISK if at_risk(value, target) else OK


def _newest_per_source(ids, picks: dict) -> dict[str, dict[int, dict]]:
    """For each pick, {source_id: row} of each source's first row in its order, in 1 + len(picks) queries.

    `picks`: {name: (queryset, order_by, fields)}. A correlated subquery per source and pick
    walks an index newest-first and stops at the first match, so the cost follows the number
    of sources, not the history. The chosen ids come back to Python before the rows are
    read by primary key: as one `pk IN (subquery)` PostgreSQL misjudges the few ids and
    hashes the whole table instead.
    """
    annotations = {
        f"_{name}": Subquery(
            queryset.filter(source_id=OuterRef("pk")).order_by(*order_by).values("pk")[:1]
        )
        for name, (queryset, order_by, _) in picks.items()
    }
    chosen = list(Source.objects.filter(pk__in=ids).annotate(**annotations).values(*annotations))
    out = {}
    for name, (queryset, _, fields) in picks.items():
        pks = [row[f"_{name}"] for row in chosen if row[f"_{name}"] is not None]
        rows = queryset.model.objects.filter(pk__in=pks).values("source_id", *fields) if pks else []
        out[name] = {row["source_id"]: row for row in rows}
    return out


def schedule_interval(cron: str, now: datetime) -> timedelta | None:
    """The time between the two latest fires of a cron schedule (None without one)."""
    if not (cron or "").strip():
        return None

    try:
        itr = croniter(cron, now)
        last = itr.get_prev(datetime)
        before = itr.get_prev(datetime)
    except (ValueError, KeyError):
        return None
    return last - before


def _picks() -> dict:
    """What `_newest_per_source` picks per source: newest good backup, last and last passed test."""
    return {
        "backup": (
            BackupRun.objects.good().filter(data_taken_at__isnull=False),
            ["-data_taken_at", "-pk"],  # index backuprun_source_taken_idx
            ["pk", "data_taken_at", "bytes_stored"],
        ),
        "last_test": (
            RestoreTest.objects.filter(
                status__in=list(DONE - {RunStatus.CANCELLED}), finished__isnull=False
            ),
            ["-finished", "-pk"],  # index restoretest_src_fin_idx
            ["pk", "status", "finished", "error"],
        ),
        "passed": (
            RestoreTest.objects.filter(status=RunStatus.SUCCEEDED, started__isnull=False),
            ["-started", "-pk"],  # index restoretest_src_passed_idx
            ["pk", "started", "rto", "throughput_bps", "bytes_fetched", "data_at", "data_basis"],
        ),
    }


def _job_changes(ids) -> dict[int, datetime]:
    """The newest configuration change of each source's backup jobs."""
    return dict(
        BackupJob.objects.filter(source_id__in=ids)
        .values("source_id")
        .annotate(latest=Max("config_changed_at"))
        .values_list("source_id", "latest")
    )


def _set_backup(r: Readiness, backup: dict | None, now) -> None:
    """RPO now, from the newest good backup."""
    if not backup:
        return
    r.newest_backup_id = backup["pk"]
    r.newest_backup_at = backup["data_taken_at"]
    r.newest_backup_bytes = backup["bytes_stored"] or 0
    if backup["data_taken_at"]:
        r.rpo_now = max(timedelta(0), now - backup["data_taken_at"])


def _windows(sources) -> dict[int, dict]:
    """{source_id: window row} of the PITR sources: one query, none when no source has PITR."""
    ids = [s.pk for s in sources if s.pitr]
    if not ids:
        return {}
    fields = ["oldest", "newest", "newest_segment", "gap_after", "missing_segment"]
    rows = PitrWindow.objects.filter(source_id__in=ids).values(
        "source_id", *fields, "checked_at", "error"
    )
    return {row["source_id"]: row for row in rows}


def _set_window(r: Readiness, window: dict | None, now) -> None:
    """RPO now from the archive (the window's newest point) when the window can be trusted."""
    r.pitr = True
    if window is None:
        r.window_note = "no recoverable window read from pgBackRest yet: RPO from the newest backup"
        return
    r.window_checked_at = window["checked_at"]
    r.window_error = window["error"]
    if window["error"]:
        r.window_note = (
            f"recoverable window unreadable ({window['error']}): RPO from the newest backup"
        )
        return
    r.recoverable_from, r.recoverable_to = window["oldest"], window["newest"]
    r.newest_segment = window["newest_segment"]
    r.gap_after, r.missing_segment = window["gap_after"], window["missing_segment"]
    r.wal_gap = bool(window["missing_segment"])
    if window["oldest"] is None:  # WAL without a base backup to replay it onto
        r.window_note = "no base backup in the pgBackRest repository: RPO from the newest backup"
        return
    if window["newest"] is None:
        r.window_note = "no WAL archived yet: RPO from the newest backup"
        return
    r.rpo_now = max(timedelta(0), now - window["newest"])


def _set_last_test(r: Readiness, last: dict | None) -> None:
    if last:
        r.last_test_id = last["pk"]
        r.last_test_status = last["status"]
        r.last_test_finished = last["finished"]
        r.last_test_error = last["error"]


def _set_proof(r: Readiness, proof: dict | None, changed: datetime | None, now) -> None:
    """Verified RPO and measured RTO, from the newest passed test unless the config changed since."""
    if proof and (changed is None or proof["started"] >= changed):
        r.last_passed_test_id = proof["pk"]
        r.last_passed_started = proof["started"]
        r.last_rto = proof["rto"]
        r.throughput_bps = proof["throughput_bps"]
        r.tested_bytes = proof["bytes_fetched"] or 0
        if proof["data_at"]:
            r.verified_at = proof["data_at"]
            r.verified_basis = proof["data_basis"]
            r.verified_rpo = max(timedelta(0), now - proof["data_at"])
    elif proof:
        r.needs_verification = True
        r.reasons.append("changed since its last passed restore test: needs verification")
    else:
        r.needs_verification = True
        r.reasons.append("no passed restore test: needs verification")


def _set_forecast(r: Readiness) -> None:
    """The measured RTO plus the growth since the tested backup at the measured throughput."""
    if r.throughput_bps and r.newest_backup_bytes and r.last_rto is not None:
        growth = (r.newest_backup_bytes - r.tested_bytes) / r.throughput_bps
        r.rto_forecast = max(timedelta(0), r.last_rto + timedelta(seconds=growth))


def _set_overdue(r: Readiness, schedule: str, interval: timedelta | None, now) -> None:
    if interval and r.last_passed_started and not r.needs_verification:
        if r.last_passed_started < now - interval - OVERDUE_GRACE:
            r.test_overdue = True
            r.reasons.append(f"no passed restore test within its schedule ({schedule})")


EVIDENCE_MAX_AGE = 60  # seconds: a bound for a change no bump saw (a bulk update)


def _read_evidence(sources, ids) -> tuple:
    return _job_changes(ids), _newest_per_source(ids, _picks()), _windows(sources)


def _evidence(sources, ids) -> tuple:
    """The rows readiness is computed from, cached per readiness version and set of sources.

    Only rows are cached, never a verdict: ages and verdicts are computed from them at each
    read with the request's clock, so time passing alone still moves a source to at risk or
    breached. The key names the exact sources asked for (a scoped user's set is its own
    entry), and the version (dr_portal.lib.readiness_version) is bumped whenever a run,
    test, copy, window or job changes, so a finished run shows at the next request.
    """
    # _windows reads the PITR sources only: their ids are part of what was asked.
    asked = f"{sorted(ids)}|{sorted(s.pk for s in sources if s.pitr)}"
    digest = hashlib.sha256(asked.encode()).hexdigest()
    key = f"dr:readiness:{readiness_version.current()}:{digest}"
    found = cache.get(key)
    if found is not None:
        return found
    fresh = _read_evidence(sources, ids)
    cache.set(key, fresh, EVIDENCE_MAX_AGE)
    return fresh


def source_readiness(sources, now=None) -> dict[int, Readiness]:
    """Readiness of each source, with a fixed number of queries whatever their count."""
    now = now or timezone.now()
    sources = list(sources)
    ids = [s.pk for s in sources]
    if not ids:
        return {}
    rpo_by_class = rpo_targets()
    rto_target = restore_rto_target()
    job_changes, picked, windows = _evidence(sources, ids)

    out = {}
    intervals: dict[str, timedelta | None] = {}
    for source in sources:
        r = Readiness(source.pk, source.name, source.data_class)
        r.rpo_target = rpo_by_class.get(source.data_class)
        r.rto_target = rto_target
        _set_backup(r, picked["backup"].get(source.pk), now)
        if source.pitr:
            _set_window(r, windows.get(source.pk), now)
        _set_last_test(r, picked["last_test"].get(source.pk))
        changed = max(
            [t for t in (source.config_changed_at, job_changes.get(source.pk)) if t], default=None
        )
        _set_proof(r, picked["passed"].get(source.pk), changed, now)
        _set_forecast(r)
        cron = source.restore_test_schedule
        if cron not in intervals:  # croniter costs ~0.3 ms: once per distinct schedule
            intervals[cron] = schedule_interval(cron, now)
        _set_overdue(r, cron, intervals[cron], now)
        _judge(r)
        out[source.pk] = r
    return out


def _judge(r: Readiness):
    breached, risk = [], []
    if r.rpo_now is None:
        breached.append("no good backup")
    elif judge(r.rpo_now, r.rpo_target) == Verdict.MISSED:
        breached.append(f"RPO {fd(r.rpo_now)} exceeds its target {fd(r.rpo_target)}")
    elif at_risk(r.rpo_now, r.rpo_target):
        risk.append(f"RPO {fd(r.rpo_now)} is over {PERCENT}% of its target {fd(r.rpo_target)}")
    if r.wal_gap:
        risk.append(
            f"WAL gap: segment {r.missing_segment} is missing from the archive; the window "
            f"cannot be replayed past {r.gap_after}"
        )
    if r.window_note:
        risk.append(r.window_note)
    if r.last_test_status == RunStatus.FAILED:
        breached.append(f"newest restore test #{r.last_test_id} failed")
    if judge(r.last_rto, r.rto_target) == Verdict.MISSED:
        breached.append(f"measured RTO {fd(r.last_rto)} exceeds the target {fd(r.rto_target)}")
    elif at_risk(r.last_rto, r.rto_target):
        risk.append(
            f"measured RTO {fd(r.last_rto)} is over {PERCENT}% of the target {fd(r.rto_target)}"
        )
    if judge(r.rto_forecast, r.rto_target) == Verdict.MISSED:
        risk.append(
            f"RTO forecast {fd(r.rto_forecast)} for the newest backup exceeds the target {fd(r.rto_target)}"
        )
    if r.needs_verification or r.test_overdue:
        risk.extend(r.reasons)
    r.reasons = breached + [x for x in risk if x not in breached]
    r.verdict = BREACHED if breached else AT_RISK if risk else OK


def overall(readiness: dict[int, Readiness]) -> str:
    verdicts = [r.verdict for r in readiness.values()]
    return max(verdicts, key=VERDICT_ORDER.index, default=OK)
