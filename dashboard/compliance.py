"""The compliance report: what an auditor accepts as evidence of tested backups and DR exercises.

`build(start, end, systems)` returns the report as plain data (JSON types only). Its
fingerprint is the SHA-256 of the *canonical JSON* of that data:

    json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

The data holds no time of production and no user, so the page, the PDF and
`manage.py compliance_report` print the same hash for the same period and systems as long as
the recorded evidence for that period is unchanged. A period that includes now is reported
up to a stated cut-off, the newest finished evidence (`period.evidence_until`), not up to
the second the report was made: the page and a PDF made minutes later agree. The PDF embeds the canonical JSON as the
attachment compliance-data.json: `sha256sum` of it equals the printed hash. The production
time and user are printed beside the hash, outside what is hashed.

Definitions (also in the report):
- Backups: runs of in-scope sources that finished in the period; success rate = succeeded ÷
  (succeeded + partial + failed); cancelled runs are counted but not rated. A gap is a stretch
  longer than the source's RPO target with no new good backup (succeeded or partial,
  restorable), measured between data timestamps, from the last good backup before the
  period (or the period start) to the end of the period (or now, if earlier).
- Restore tests: tests of in-scope sources that finished in the period (cancelled left out);
  pass rate = passed ÷ finished; measured RTO against the current restore RTO target.
- Drills: drill runs declared in the period whose plan covers a chosen system (or no system).
- Incidents: incidents overlapping the period. One counts as downtime when it took a service
  down (services down filled in) or is SEV1/SEV2, from its start (or detection) to its
  resolution (or the end of the period / now), clipped to the period; overlapping incidents
  are counted once. Availability = 1 − downtime ÷ (the period up to now).
  With systems chosen, an incident is in scope when it is linked to a run, test, restore,
  failover or drill of one of them, or when it has no links at all (it cannot be attributed,
  so it is never left out).
- Restores and failover runs: real restores of in-scope sources and failover runs (test and
  live) of in-scope systems that finished in the period, cancelled included
  (dashboard/compliance_controls.py, with the controls table mapping SOC 2 and ISO 27001
  controls to these sections and stating the gaps).
- Follow-ups: items of in-scope incidents and drill runs that were open at the end of the
  period (created before it, not done by then).
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, F, Max, OuterRef, Q, Subquery
from django.template.loader import render_to_string
from django.utils import timezone

from backups import scrub
from backups.models import BackupCopy, BackupRun, Destination, Source, System
from dashboard import compliance_controls
from dr_portal import audit_chain, signed_reports
from dr_portal.lib.pdf import url_fetcher
from dr_portal.runs import RunStatus
from drills.models import DrillRun
from incidents.models import FollowUp, Incident, IncidentLink, Severity
from recovery import readiness
from recovery.failover import proof as failover_readiness
from recovery.models import FailoverRun, Restore, RestoreTest, ServiceLevel
from recovery.targets import Verdict, judge, restore_rto_target, rpo_targets

# 2: failover runs, real restores and the controls mapping were added.
FORMAT = 2
RATED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)


# --- canonical form and hash ----------------------------------------------------------------


def canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def digest(data: dict) -> str:
    return hashlib.sha256(canonical(data)).hexdigest()


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _s(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 1)


def _rate(part: int, whole: int) -> float | None:
    return None if not whole else round(100.0 * part / whole, 2)


def period(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """[first day 00:00, day after the last 00:00) in the portal's time zone."""
    tz = timezone.get_current_timezone()
    start = datetime.combine(date_from, time.min).replace(tzinfo=tz)
    end = datetime.combine(date_to + timedelta(days=1), time.min).replace(tzinfo=tz)
    return start, end


# --- scope --------------------------------------------------------------------------------------


def _incident_scope(incident_ids, system_ids) -> set[int]:
    """The incidents attributable to the chosen systems (or not attributable at all)."""

    links = list(
        IncidentLink.objects.filter(incident_id__in=incident_ids).values_list(
            "incident_id", "content_type_id", "object_id"
        )
    )
    by_ct: dict[int, set[int]] = {}
    for _, ct, oid in links:
        by_ct.setdefault(ct, set()).add(oid)
    hits: set[tuple[int, int]] = set()  # (content type, object id) within the chosen systems
    resolvers = {
        BackupRun: lambda ids: BackupRun.objects.filter(pk__in=ids, source__system__in=system_ids),
        RestoreTest: lambda ids: RestoreTest.objects.filter(
            pk__in=ids, source__system__in=system_ids
        ),
        Restore: lambda ids: Restore.objects.filter(pk__in=ids, source__system__in=system_ids),
        FailoverRun: lambda ids: FailoverRun.objects.filter(pk__in=ids, system__in=system_ids),
        DrillRun: lambda ids: DrillRun.objects.filter(pk__in=ids).filter(
            Q(plan__systems__in=system_ids) | Q(plan__systems__isnull=True)
        ),
    }
    for model, resolve in resolvers.items():
        ct = ContentType.objects.get_for_model(model).pk
        if ct in by_ct:
            hits.update((ct, pk) for pk in resolve(by_ct[ct]).values_list("pk", flat=True))
    linked = {iid for iid, _, _ in links}
    keep = {iid for iid, ct, oid in links if (ct, oid) in hits}
    return keep | (set(incident_ids) - linked)


# --- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a report covers: [start, end) over some systems (None: all), as seen at `now`."""

    start: datetime
    end: datetime
    system_ids: list[int] | None
    now: datetime

    @property
    def horizon(self) -> datetime:
        """The end of the part of the period that has happened."""
        return min(self.end, max(self.now, self.start))

    def drills(self, queryset):
        """`queryset` of drill runs limited to the drills of plans that cover the systems."""
        if not self.system_ids:
            return queryset
        return queryset.filter(Q(plan__systems__in=self.system_ids) | Q(plan__systems__isnull=True))


def _sources(scope: Scope) -> list:
    """Sources that existed in the period, each with `anchor`: its newest good data before it."""
    sources = (
        Source.objects.filter(created__lt=scope.end)
        .select_related("system")
        .order_by("system__name", "name")
    )
    if scope.system_ids:
        sources = sources.filter(system_id__in=scope.system_ids)
    before = (
        BackupRun.objects.restorable()
        .filter(source=OuterRef("pk"), data_taken_at__lt=scope.start)
        .order_by("-data_taken_at")
        .values("data_taken_at")[:1]
    )
    return list(sources.annotate(anchor=Subquery(before)))


def _backup_counts(scope: Scope, ids) -> dict[int, dict[str, int]]:
    """{source id: {status: runs finished in the period}}."""
    counts: dict[int, dict[str, int]] = {}
    for source_id, status, n in (
        BackupRun.objects.filter(
            source_id__in=ids, finished__gte=scope.start, finished__lt=scope.end
        )
        .values("source_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("source_id", "status", "n")
    ):
        counts.setdefault(source_id, {})[status] = n
    return counts


def _backups_taken(scope: Scope, ids) -> dict[int, list[datetime]]:
    """{source id: data timestamps of its good backups taken in the period, oldest first}."""
    taken: dict[int, list[datetime]] = {}
    for source_id, at in (
        BackupRun.objects.restorable()
        .filter(source_id__in=ids, data_taken_at__gte=scope.start, data_taken_at__lt=scope.end)
        .order_by("source_id", "data_taken_at")
        .values_list("source_id", "data_taken_at")
    ):
        taken.setdefault(source_id, []).append(at)
    return taken


def _gaps(scope: Scope, source, taken: list[datetime], target: timedelta) -> list[dict]:
    """Stretches of the period longer than the RPO target without a good backup."""
    gaps = []
    previous = source.anchor or max(scope.start, source.created)
    for at in [*taken, scope.horizon]:
        if at - previous > target:
            gaps.append({"from": _ts(previous), "to": _ts(at), "seconds": _s(at - previous)})
        previous = max(previous, at)
    return gaps


def _status_counts(per: dict[str, int]) -> dict:
    rated = sum(per.get(s, 0) for s in RATED)
    return {
        "succeeded": per.get(RunStatus.SUCCEEDED, 0),
        "partial": per.get(RunStatus.PARTIAL, 0),
        "failed": per.get(RunStatus.FAILED, 0),
        "cancelled": per.get(RunStatus.CANCELLED, 0),
        "success_rate": _rate(per.get(RunStatus.SUCCEEDED, 0), rated),
    }


def _backups(scope: Scope, sources) -> dict:
    """Backup runs per source and in total, and the gaps over each source's RPO target."""
    ids = [s.pk for s in sources]
    targets = rpo_targets()
    counts, taken = _backup_counts(scope, ids), _backups_taken(scope, ids)
    rows = []
    totals = {s: 0 for s in RunStatus.values}
    for source in sources:
        per = counts.get(source.pk, {})
        for status, n in per.items():
            totals[status] = totals.get(status, 0) + n
        target = targets.get(source.data_class) or source.rpo_target
        gaps = _gaps(scope, source, taken.get(source.pk, []), target)
        rows.append(
            {
                "source": source.name,
                "system": source.system.name,
                "data_class": source.data_class,
                "rpo_target_s": _s(target),
                "runs": sum(per.values()),
                **_status_counts(per),
                "gaps": gaps,
                "longest_gap_s": max((g["seconds"] for g in gaps), default=None),
            }
        )
    return {
        "sources": rows,
        "runs": sum(totals.values()),
        **_status_counts(totals),
        "sources_with_gaps": sum(1 for r in rows if r["gaps"]),
    }


def _copies_proven(scope: Scope) -> dict:
    """Per destination: the copies live now, and those the scrub read back and verified in
    the N days (DR_PROVEN_WITHIN_DAYS) before the end of the period (or now)."""
    days = settings.DR_PROVEN_WITHIN_DAYS
    counts = scrub.proven_within(scope.horizon, days)
    tested = _restore_tested_from(scope)
    return {
        "within_days": days,
        "destinations": [
            {
                "destination": name,
                **{k: counts.get(pk, {}).get(k, 0) for k in ("live", "proven")},
                "restore_tested": _ts(tested.get(pk)),
            }
            for pk, name in Destination.objects.order_by("name").values_list("pk", "name")
        ],
    }


def _restore_tested_from(scope: Scope) -> dict[int, datetime]:
    """{destination id: when a passed restore test of an in-scope source last read its copy
    there}, up to the end of the period ("last restore-tested from here")."""
    tests = RestoreTest.objects.filter(
        status=RunStatus.SUCCEEDED, copy_destination__isnull=False, finished__lt=scope.end
    )
    if scope.system_ids:
        tests = tests.filter(source__system_id__in=scope.system_ids)
    rows = tests.values("copy_destination").annotate(at=Max("finished")).order_by()
    return {row["copy_destination"]: row["at"] for row in rows}


def _restore_tests(scope: Scope, ids) -> dict:
    """Restore tests finished in the period, and how many met the restore RTO target."""
    rto_target = restore_rto_target()
    tests = []
    for row in (
        RestoreTest.objects.filter(
            source_id__in=ids, finished__gte=scope.start, finished__lt=scope.end, status__in=RATED
        )
        .order_by("finished", "pk")
        .values("pk", "source__name", "started", "finished", "status", "rto", "error")
    ):
        rto = row["rto"]
        if rto is None and row["started"] and row["finished"]:
            rto = row["finished"] - row["started"]
        verdict = judge(rto, rto_target)
        tests.append(
            {
                "id": row["pk"],
                "source": row["source__name"],
                "finished": _ts(row["finished"]),
                "status": row["status"],
                "rto_s": _s(rto),
                "within_target": None
                if verdict == Verdict.NONE or row["status"] != RunStatus.SUCCEEDED
                else verdict == Verdict.MET,
            }
        )
    passed = sum(1 for t in tests if t["status"] == RunStatus.SUCCEEDED)
    return {
        "rto_target_s": _s(rto_target),
        "count": len(tests),
        "passed": passed,
        "pass_rate": _rate(passed, len(tests)),
        "within_rto_target": sum(1 for t in tests if t["within_target"]),
        "tests": tests,
    }


def _drills(scope: Scope) -> dict:
    """Drills declared in the period, counted by verdict (or status while unjudged)."""
    drills_qs = DrillRun.objects.filter(declared_at__gte=scope.start, declared_at__lt=scope.end)
    if scope.system_ids:
        drills_qs = scope.drills(drills_qs).distinct()
    drills = [
        {
            "id": d.pk,
            "plan": d.plan_name,
            "declared_at": _ts(d.declared_at),
            "status": d.status,
            "verdict": d.verdict,
            "rto_s": _s(d.rto_achieved),
            "time_budget_s": _s(d.time_budget),
            "rpo_s": _s(d.rpo_achieved),
            "rpo_target_s": _s(d.rpo_target),
            "reasons": list(d.verdict_reasons or []),
        }
        for d in drills_qs.order_by("declared_at", "pk")
    ]
    verdicts: dict[str, int] = {}
    for d in drills:
        key = d["verdict"] or d["status"]
        verdicts[key] = verdicts.get(key, 0) + 1
    return {"count": len(drills), "verdicts": verdicts, "runs": drills}


@dataclass
class IncidentFigures:
    items: list[dict]
    down: list[tuple[datetime, datetime]]  # the parts of the period that count as downtime


def _incidents(scope: Scope) -> IncidentFigures:
    """Incidents overlapping the period, and the intervals of them that count as downtime."""
    began_before_end = Q(started_at__lt=scope.end) | Q(
        started_at__isnull=True, detected_at__lt=scope.end
    )
    not_over = Q(resolved_at__isnull=True) | Q(resolved_at__gt=scope.start)
    incident_list = list(Incident.objects.filter(began_before_end & not_over).order_by("pk"))
    if scope.system_ids:
        keep = _incident_scope([i.pk for i in incident_list], scope.system_ids)
        incident_list = [i for i in incident_list if i.pk in keep]
    incident_list.sort(key=lambda i: (i.began_at, i.pk))
    figures = IncidentFigures(items=[], down=[])
    for inc in incident_list:
        counts_down = bool(inc.services_down.strip()) or inc.severity in (
            Severity.SEV1,
            Severity.SEV2,
        )
        lo = max(inc.began_at, scope.start)
        hi = min(inc.resolved_at or scope.horizon, scope.horizon)
        in_period = max(timedelta(0), hi - lo)
        if counts_down and in_period > timedelta(0):
            figures.down.append((lo, hi))
        figures.items.append(
            {
                "identifier": inc.identifier,
                "title": inc.title,
                "severity": inc.severity,
                "status": inc.status,
                "began": _ts(inc.began_at),
                "resolved": _ts(inc.resolved_at),
                "duration_s": _s(inc.duration),
                "in_period_s": _s(in_period),
                "counts_as_downtime": counts_down,
                "services_down": inc.services_down,
                "data_loss": inc.data_loss,
                "users_affected": inc.users_affected,
            }
        )
    return figures


def _downtime(intervals: list[tuple[datetime, datetime]]) -> timedelta:
    """The length of the union of the intervals (overlapping incidents count once)."""
    downtime = timedelta(0)
    cursor = None
    for lo, hi in sorted(intervals):
        if cursor is not None and lo < cursor:
            lo = cursor
        if hi > lo:
            downtime += hi - lo
        cursor = max(cursor or hi, hi)
    return downtime


def _availability(scope: Scope, downtime: timedelta, target_pct: Decimal) -> dict:
    observed = scope.horizon - scope.start
    achieved = None if observed <= timedelta(0) else round(100.0 * (1 - downtime / observed), 4)
    return {
        "downtime_s": _s(downtime),
        "achieved_percent": achieved,
        "target_percent": str(target_pct),
        "met": None if achieved is None else achieved >= float(target_pct),
    }


def _followup_owners(scope: Scope, followup_rows, ct_incident, ct_drill) -> dict[tuple, str]:
    """{(content type id, object id): what the follow-up is of} for the in-scope owners."""
    incident_names = dict(
        Incident.objects.filter(
            pk__in=[f.object_id for f in followup_rows if f.content_type_id == ct_incident.pk]
        ).values_list("pk", "identifier")
    )
    drill_ids = {f.object_id for f in followup_rows if f.content_type_id == ct_drill.pk}
    if scope.system_ids:
        in_scope_incidents = _incident_scope(list(incident_names), scope.system_ids)
        in_scope_drills = set(
            scope.drills(DrillRun.objects.filter(pk__in=drill_ids)).values_list("pk", flat=True)
        )
    else:
        in_scope_incidents, in_scope_drills = set(incident_names), drill_ids
    owners = {
        (ct_incident.pk, pk): incident_names.get(pk, f"incident #{pk}") for pk in in_scope_incidents
    }
    owners.update({(ct_drill.pk, pk): f"drill #{pk}" for pk in in_scope_drills})
    return owners


def _followups(scope: Scope) -> dict:
    """Follow-ups open at the end of the period, of in-scope incidents and drills."""
    ct_incident = ContentType.objects.get_for_model(Incident)
    ct_drill = ContentType.objects.get_for_model(DrillRun)
    open_at_end = FollowUp.objects.filter(created__lt=scope.end).filter(
        Q(done=False) | Q(done_at__gt=scope.end)
    )
    followup_rows = list(
        open_at_end.filter(content_type__in=[ct_incident, ct_drill])
        .select_related("owner_contact", "owner_user")
        .order_by(F("due").asc(nulls_last=True), "pk")
    )
    owners = _followup_owners(scope, followup_rows, ct_incident, ct_drill)
    end_day = (
        (scope.end - timedelta(microseconds=1)).astimezone(timezone.get_current_timezone()).date()
    )
    items = [
        {
            "id": f.pk,
            "text": f.text,
            "of": owners[(f.content_type_id, f.object_id)],
            "owner": f.owner_name,
            "due": f.due.isoformat() if f.due else None,
            "overdue_at_end": bool(f.due and f.due < end_day),
        }
        for f in followup_rows
        if (f.content_type_id, f.object_id) in owners
    ]
    return {"open_at_end": len(items), "items": items}


def evidence_cutoff(start: datetime, now: datetime) -> datetime:
    """For a period that includes now: the moment the newest finished evidence was recorded
    (a backup, restore test, restore, failover or drill that finished, a copy the scrub
    proved), never before the period's start. Figures that run "up to now" (gaps, incident
    time, availability) run up to it, so the hash stays the same while nothing new finishes."""
    latest = [start]
    for model, field in (
        (BackupRun, "finished"),
        (RestoreTest, "finished"),
        (Restore, "finished"),
        (FailoverRun, "finished"),
        (DrillRun, "ended_at"),
        (BackupCopy, "proven_at"),
    ):
        found = (
            model.objects.filter(**{f"{field}__gte": start, f"{field}__lte": now})
            .aggregate(m=Max(field))
            .get("m")
        )
        if found:
            latest.append(found)
    # Whole seconds: the report shows and hashes seconds.
    return max(latest).replace(microsecond=0)


def build(start: datetime, end: datetime, systems=None, now=None) -> dict:
    """The report for [start, end) over `systems` (System objects; None or empty: all).

    A period that has ended is reported to its end. A period that includes now is reported
    up to evidence_cutoff(), which the report states (period.evidence_until)."""

    if end <= start:
        raise ValueError("the period ends before it starts")
    system_ids = sorted(s.pk for s in systems) if systems else None
    now = now or timezone.now()
    until = evidence_cutoff(start, now) if end > now else None
    scope = Scope(start, end, system_ids, until or now)
    system_names = (
        sorted(System.objects.filter(pk__in=system_ids).values_list("name", flat=True))
        if system_ids
        else []
    )
    sources = _sources(scope)
    incidents = _incidents(scope)
    sla = ServiceLevel.current()
    target_pct = Decimal(sla.availability_percent).quantize(Decimal("0.001"))
    data = {
        "report": "DR Portal compliance report",
        "format": FORMAT,
        "period": {
            "from": _ts(start),
            "to": _ts(end),
            "observed_s": _s(scope.horizon - start),
            # Only a period that includes now has it: past periods keep their hashes.
            **({"evidence_until": _ts(until)} if until else {}),
        },
        "systems": system_names or ["all"],
        "sla": {
            "availability_percent": str(target_pct),
            "rto_s": _s(sla.rto),
            "rpo_s": _s(sla.rpo),
        },
        "backups": _backups(scope, sources),
        "copies_proven": _copies_proven(scope),
        "restore_tests": _restore_tests(scope, [s.pk for s in sources]),
        "restores": compliance_controls.restores(start, end, [s.pk for s in sources]),
        "failovers": compliance_controls.failovers(start, end, system_ids),
        "drills": _drills(scope),
        "incidents": {"count": len(incidents.items), "items": incidents.items},
        "availability": _availability(scope, _downtime(incidents.down), target_pct),
        "followups": _followups(scope),
    }
    data["controls"] = compliance_controls.controls(data)
    return data


def stamp(data: dict, user_name: str, now=None) -> dict:
    """What a rendering adds around the data: hash, when, by whom, and the recoverable window
    of each point-in-time recovery source at that moment (not part of the hash: it moves
    every minute, while the hash must stay the same for the same recorded period), and the
    audit chain's head."""
    now = now or timezone.now()
    return {
        "sha256": digest(data),
        "produced_at": _ts(now),
        "produced_by": user_name,
        "pitr_windows": pitr_windows([b["source"] for b in data["backups"]["sources"]], now),
        "failover_readiness": failover_at(data["systems"], now),
        # Where the tamper-evident audit log stood: `manage.py audit_verify` proves the chain
        # up to this entry still holds (dr_portal.audit_chain).
        "audit_chain_head": audit_chain.head(),
        # The key the PDF is signed with (a detached .sig beside it: dr_portal.signed_reports).
        "signer": signed_reports.signer(),
    }


def failover_at(system_names: list[str], now) -> list[dict]:
    """Failover readiness of the report's systems now (recovery.failover.proof)."""
    systems = (
        System.objects.all()
        if system_names == ["all"]
        else System.objects.filter(name__in=system_names)
    )
    return [r.as_dict() for r in failover_readiness.system_readiness(systems, now=now)]


def pitr_windows(source_names: list[str], now) -> list[dict]:
    """The recoverable window of the named PITR sources now, from recovery.readiness."""
    sources = list(Source.objects.filter(name__in=source_names, pitr=True).order_by("name"))
    ready = readiness.source_readiness(sources, now=now)
    return [
        {
            "source": r.source_name,
            "recoverable_from": _ts(r.recoverable_from),
            "recoverable_to": _ts(r.recoverable_to),
            "rpo_s": _s(r.rpo_now),
            "rpo_target_s": _s(r.rpo_target),
            "wal_gap": r.wal_gap,
            "missing_segment": r.missing_segment,
            "checked_at": _ts(r.window_checked_at),
            "error": r.window_error,
        }
        for r in ready.values()
    ]


def render_pdf(data: dict, produced: dict, base_url: str = "http://localhost/") -> bytes:
    """The report as A4 PDF, with the canonical data attached as compliance-data.json."""
    from weasyprint import HTML, Attachment  # heavy (cairo, pango): only when a PDF is made

    html = render_to_string("dashboard/compliance_pdf.html", {"r": data, "produced": produced})
    attachment = Attachment(
        string=canonical(data),
        name="compliance-data.json",
        description=f"Canonical report data; SHA-256 {produced['sha256']}",
    )
    return HTML(string=html, base_url=base_url, url_fetcher=url_fetcher).write_pdf(
        attachments=[attachment]
    )
