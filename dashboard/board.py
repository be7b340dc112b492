"""What the dashboard shows: per system and source, how much we would lose and how fast we'd be back.

The verdict of each source is recovery.readiness's (the same one `manage.py dr_status` and
/metrics report); this module adds the dashboard's colours, evidence ages and links, the
3-2-1 check, drills, incidents, recent failures, storage and the charts.

Colours of a figure (green / amber / red):
- against a target: green up to 80 % of it, amber over 80 %, red over 100 % (or no evidence
  at all where the evidence is the figure itself, e.g. no good backup → RPO red);
- evidence older than its schedule (backup older than its job's schedule interval plus
  grace, restore test older than the source's restore-test schedule) or invalidated by a
  configuration change since (source or job edited after the last passed restore test)
  is amber at best, never green.

Every query here is bounded by the configuration (sources, destinations, plans) or by a
fixed window/limit, never by the history: the dashboard costs the same with a million runs.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape  # plain str → str: Django's lazy-aware wrapper costs 3× per call

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Min, OuterRef, Subquery, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from backups import scrub
from backups.models import (
    GOOD_STATUSES,
    BackupCopy,
    BackupJob,
    BackupRun,
    Destination,
    Source,
    missing_key_summary,
    site_key,
)
from dr_portal.lib import keyring, roles
from dr_portal.lib.charts import line_chart
from dr_portal.lib.durations import format_duration as fd
from dr_portal.runs import RunStatus
from drills.models import DrillPlan, DrillRun
from incidents.models import FollowUp, Incident, IncidentStatus, MaintenanceWindow, Severity
from recovery import charts, readiness
from recovery.failover import proof as failover_readiness
from recovery.models import RestoreTest
from recovery.targets import Verdict, at_risk, judge, restore_rto_target

GREEN, AMBER, RED, GREY = "green", "amber", "red", "grey"
RANK = {GREY: 0, GREEN: 1, AMBER: 2, RED: 3}
VERDICT_COLOUR = {"ok": GREEN, "at_risk": AMBER, "breached": RED}
SCHEDULE_GRACE = timedelta(hours=1)  # a run may start late or take a while
RECENT = timedelta(hours=24)
CHART_DAYS_RTO = 90
CHART_SOURCES = 3
CHART_WIDE_WIDTH = 1100  # px of the full-width RTO chart
LIST_LIMIT = 20
COPY_FRESHNESS = timedelta(days=8)
# Storage and copy counts are sums over every live copy (~retention × sources rows, ~0.1 s
# at 180,000 live copies): they change only when a backup or retention runs. A worker task
# recounts them every minute (dashboard.tasks.refresh_dashboard_figures); a render recounts
# them itself only when that count is older than SLOW_FIGURES_MAX_AGE (worker down).
SLOW_FIGURES_MAX_AGE = 120
SLOW_FIGURES_KEY = "dr:dashboard:slow-figures:2"  # :2 holds missing_key too
KIND_LABEL = {"local": "local disk", "s3": "S3"}


def worst(*colours: str) -> str:
    return max(colours, key=RANK.__getitem__, default=GREY)


def at_best_amber(colour: str) -> str:
    """Stale or invalidated evidence: amber at best, never green."""
    return AMBER if colour in (GREEN, GREY) else colour


def target_colour(value: timedelta | None, target: timedelta | None, missing: str = RED) -> str:
    if value is None:
        return missing
    if target is None:
        return GREEN
    if judge(value, target) == Verdict.MISSED:
        return RED
    return AMBER if at_risk(value, target) else GREEN


def age(moment: datetime | None, now: datetime) -> timedelta | None:
    return None if moment is None else max(timedelta(0), now - moment)


@dataclass
class Figure:
    """One number on the dashboard: its value, colour, how old its evidence is and where it comes from."""

    value: str
    colour: str
    href: str = ""
    age: timedelta | None = None
    note: str = ""

    @property
    def age_text(self) -> str:
        return "" if self.age is None else f"{fd(self.age)} ago"

    @property
    def html(self) -> str:
        """{{ figure.html }}: a link coloured by its state, with its note and evidence age."""
        age_text = self.age_text  # once: 3,000 figures a render at 500 sources
        small = " · ".join(x for x in (self.note, age_text and f"evidence {age_text}") if x)
        tag = "a" if self.href else "span"
        href = f' href="{escape(self.href)}"' if self.href else ""
        return mark_safe(  # noqa: S308 - every value is escaped above
            f'<{tag} class="fig {self.colour}" data-colour="{self.colour}"{href}>'
            f'<span class="v">{escape(self.value)}</span>'
            + (f"<small>{escape(small)}</small>" if small else "")
            + f"</{tag}>"
        )

    def __str__(self) -> str:
        return self.value


@dataclass
class SourceRow:
    source: object
    readiness: object
    verdict: str
    colour: str
    rpo: Figure
    verified_rpo: Figure
    last_test: Figure
    rto: Figure
    forecast: Figure
    rule_321: Figure
    copies: list = field(default_factory=list)
    failures_24h: int = 0
    url: str = ""
    backups_url: str = ""

    @property
    def html(self) -> str:
        """{{ row.html }}: the table row, built here in one string: 200 rows of nine cells
        through template lookups cost more than everything else the page renders."""
        source, reasons = self.source, escape("; ".join(self.readiness.reasons))
        failures = (
            f'<a class="fig red" href="{escape(self.backups_url)}">{self.failures_24h}</a>'
            if self.failures_24h
            else "0"
        )
        figures = (self.rpo, self.verified_rpo, self.last_test, self.rto, self.forecast)
        cells = "".join(f"<td>{f.html}</td>" for f in (*figures, self.rule_321))
        return mark_safe(  # noqa: S308 - every value is escaped
            f'<tr id="source-{source.pk}" data-verdict="{escape(self.verdict)}">'
            f'<td><a href="{escape(self.url)}">{escape(source.name)}</a><br>'
            f'<span class="muted">{escape(source.get_data_class_display())}</span></td>'
            f'<td><span class="badge status-{self.colour}" title="{reasons}">'
            f"{escape(self.verdict.replace('_', ' '))}</span>"
            + (f'<br><small class="muted">{reasons}</small>' if reasons else "")
            + f"</td>{cells}<td>{failures}</td></tr>"
        )


@dataclass
class SystemBlock:
    system: object
    rows: list = field(default_factory=list)
    drill: Figure | None = None
    next_drill: Figure | None = None
    failover: Figure | None = None

    @property
    def colour(self) -> str:
        return worst(*(r.colour for r in self.rows))


# --- 3-2-1 ---------------------------------------------------------------------------


def rule_321(copies: list[dict], found: dict | None = None) -> tuple[bool, bool, bool]:
    """(≥3 copies, ≥2 kinds of destination, ≥1 off the machine) for one source.

    `copies`: one entry per destination holding a live, intact copy of a good backup of the
    source ({"kind": "local"|"s3", ...}). The source's own live data is not counted (as in
    the DR document: local + S3 + Glacier are the three). Kinds are the destination kinds
    (local disk, S3 object storage); S3 (or S3-compatible) counts as off the machine, a
    local directory never does, even if it is a mount the portal cannot see through.
    """
    kinds = {c["kind"] for c in copies}
    found = sites(copies) if found is None else found  # `found`: sites(copies), if known
    return len(found) >= 3, len(kinds) >= 2, "s3" in kinds


def sites(copies: list[dict]) -> dict[str, list[str]]:
    """{site: destination names}: destinations with the same recorded site, or sharing an S3
    endpoint and bucket (or a local path) whatever their recorded sites ("place"), are one
    site, so two prefixes in one bucket never make two copies for 3-2-1. An entry without a
    "site" counts on its own."""
    found: dict[str, list[str]] = {}
    alias: dict[str, str] = {}  # a place or recorded site -> the group it joined
    for index, copy in enumerate(copies):
        keys = [k for k in (copy.get("site"), copy.get("place")) if k] or [f"#{index}"]
        groups = {alias[k] for k in keys if k in alias}
        group = min(groups) if groups else keys[0]
        for other in groups - {group}:  # this copy joins two groups: merge them
            found.setdefault(group, []).extend(found.pop(other))
            alias.update({k: group for k, v in alias.items() if v == other})
        alias.update(dict.fromkeys(keys, group))
        found.setdefault(group, []).append(copy.get("name", ""))
    return found


def shared_sites(copies: list[dict], found: dict | None = None) -> list[list[str]]:
    """The groups of destinations counted as one site (two or more names each)."""
    found = sites(copies) if found is None else found
    return [sorted(names) for names in found.values() if len(names) > 1]


def copies_by_source(sources, now=None) -> dict[int, list[dict]]:
    """Per source, per destination: newest data time of a fresh, live, intact copy of a good backup.

    Fresh: written in the last COPY_FRESHNESS (a weekly archive counts; a copy last written
    months ago does not make today's data safe). Bounded by the copies of that window, never
    by the history; counted once a minute (see slow_figures).
    """

    now = now or timezone.now()
    ids = [s.pk for s in sources]
    if not ids:
        return {}
    rows = (
        BackupCopy.objects.live()
        .filter(
            created__gte=now - COPY_FRESHNESS,
            run__source_id__in=ids,
            # BackupRun.objects.restorable() as a join: one grouped query, no subquery
            run__status__in=GOOD_STATUSES,
            run__restorable=True,
        )
        .values(
            "run__source_id",
            "destination_id",
            "destination__name",
            "destination__kind",
            "destination__endpoint_url",
            "destination__bucket",
            "destination__path",
            "destination__site",
        )
        .annotate(newest=Max("run__data_taken_at"))
        .order_by("run__source_id", "destination__name")
    )
    out: dict[int, list[dict]] = {}
    for row in rows:
        out.setdefault(row["run__source_id"], []).append(
            {
                "destination_id": row["destination_id"],
                "name": row["destination__name"],
                "kind": row["destination__kind"],
                "site": site_key(
                    row["destination__kind"],
                    endpoint_url=row["destination__endpoint_url"],
                    bucket=row["destination__bucket"],
                    path=row["destination__path"],
                    site=row["destination__site"],
                ),
                "place": site_key(
                    row["destination__kind"],
                    endpoint_url=row["destination__endpoint_url"],
                    bucket=row["destination__bucket"],
                    path=row["destination__path"],
                ),
                "newest": row["newest"],
            }
        )
    return out


# --- schedules -------------------------------------------------------------------------


def backup_intervals(source_ids, now) -> dict[int, timedelta]:
    """The shortest schedule interval of each source's enabled, scheduled backup jobs."""

    intervals: dict[str, timedelta | None] = {}
    out: dict[int, timedelta] = {}
    jobs = (
        BackupJob.objects.filter(source_id__in=source_ids, enabled=True)
        .exclude(schedule="")
        .values_list("source_id", "schedule")
    )
    for source_id, cron in jobs:
        if cron not in intervals:
            intervals[cron] = readiness.schedule_interval(cron, now)
        interval = intervals[cron]
        if interval and (source_id not in out or interval < out[source_id]):
            out[source_id] = interval
    return out


# --- figures of one source -------------------------------------------------------------


_URL_PATTERNS: dict[str, tuple[str, str]] = {}
_MARK = 987654321


def _url(name, *args) -> str:
    """reverse() of a one-integer-argument URL, resolved once per name (1,500 links per render)."""
    if len(args) != 1:
        return reverse(name, args=args)
    if name not in _URL_PATTERNS:
        head, _, tail = reverse(name, args=[_MARK]).partition(str(_MARK))
        _URL_PATTERNS[name] = (head, tail)
    head, tail = _URL_PATTERNS[name]
    return f"{head}{int(args[0])}{tail}"


def _rpo_figure(source, r, interval) -> Figure:
    """RPO now: the newest good backup; amber at best when its job's schedule was missed.

    A PITR source with a window: the newest archived WAL, with the window it can be
    restored to (amber at best with a WAL gap); the backup schedule does not bound it."""
    colour = target_colour(r.rpo_now, r.rpo_target)
    note = f"target {fd(r.rpo_target)}" if r.rpo_target else "no target"
    if r.recoverable_to is not None:
        note += (
            f"; WAL archive, recoverable {r.recoverable_from:%Y-%m-%d %H:%M}"
            f" to {r.recoverable_to:%Y-%m-%d %H:%M:%S} UTC"
        )
        if r.wal_gap:
            colour = at_best_amber(colour)
            note += f"; WAL gap: {r.missing_segment} missing"
        return Figure(
            fd(r.rpo_now), colour, _url("backups:source_detail", source.pk), r.rpo_now, note
        )
    if r.rpo_now is not None and interval and r.rpo_now > interval + SCHEDULE_GRACE:
        colour = at_best_amber(colour)
        note += f"; older than its schedule (every {fd(interval)})"
    return Figure(
        fd(r.rpo_now) if r.rpo_now is not None else "no good backup",
        colour,
        _url("backups:run_detail", r.newest_backup_id)
        if r.newest_backup_id
        else _url("backups:source_detail", source.pk),
        r.rpo_now,
        note,
    )


def _verified_figure(source, r, now) -> Figure:
    """Verified RPO: what the newest passed, still-valid restore test proves."""
    if r.verified_rpo is None:
        invalidated = any("changed since" in reason for reason in r.reasons)
        return Figure(
            "needs verification",
            AMBER,
            _url("recovery:source_detail", source.pk),
            None,
            "configuration changed since the last passed test"
            if invalidated
            else "no passed restore test",
        )
    colour = target_colour(r.verified_rpo, r.rpo_target)
    note = f"target {fd(r.rpo_target)}"
    if r.test_overdue:
        colour = at_best_amber(colour)
        note += "; restore test overdue"
    return Figure(
        fd(r.verified_rpo),
        colour,
        _url("recovery:test_detail", r.last_passed_test_id),
        age(r.last_passed_started, now),
        note,
    )


def _last_test_figure(source, r, now) -> Figure:
    """The last restore test, whatever its result."""
    if not r.last_test_id:
        return Figure("never tested", AMBER, _url("recovery:source_detail", source.pk))
    status = r.last_test_status
    colour = {RunStatus.SUCCEEDED: GREEN, RunStatus.FAILED: RED}.get(status, AMBER)
    note = status
    if r.needs_verification or r.test_overdue:
        colour = at_best_amber(colour)
        note += "; overdue" if r.test_overdue else "; configuration changed since"
    return Figure(
        status,
        colour,
        _url("recovery:test_detail", r.last_test_id),
        age(r.last_test_finished, now),
        note,
    )


def _rto_figure(source, r, now) -> Figure:
    """Measured RTO of the newest passed, valid test against the restore RTO target."""
    if r.last_rto is None:
        return Figure("not measured", AMBER, _url("recovery:source_detail", source.pk))
    colour = target_colour(r.last_rto, r.rto_target)
    if r.test_overdue:
        colour = at_best_amber(colour)
    return Figure(
        fd(r.last_rto),
        colour,
        _url("recovery:test_detail", r.last_passed_test_id),
        age(r.last_passed_started, now),
        f"target {fd(r.rto_target)}" if r.rto_target else "no target",
    )


def _forecast_figure(source, r, now) -> Figure:
    """Forecast: a prediction, so over the target is amber (as in the verdict), not red."""
    if r.rto_forecast is None:
        return Figure("—", GREY, _url("recovery:source_detail", source.pk))
    colour = target_colour(r.rto_forecast, r.rto_target)
    return Figure(
        fd(r.rto_forecast),
        AMBER if colour == RED else colour,
        _url("recovery:source_detail", source.pk),
        age(r.last_passed_started, now),
        ("over the target " if colour == RED else "target ") + fd(r.rto_target),
    )


def _rule_321_figure(source, copies, now) -> Figure:
    found = sites(copies)  # grouped once per source, for the rule and the note
    three, two, one = rule_321(copies, found)
    if not copies:
        colour, value = RED, "no copy"
    else:
        colour = GREEN if (three and two and one) else AMBER
        count = len(found)
        value = (
            f"{count} cop{'y' if count == 1 else 'ies'}, "
            f"{len({c['kind'] for c in copies})} kind(s), {'off-site' if one else 'no off-site'}"
        )
    newest_copy = max((c["newest"] for c in copies if c["newest"]), default=None)
    note = "3-2-1 met" if colour == GREEN else "3-2-1 not met"
    for names in shared_sites(copies, found):
        note += (
            f"; {' and '.join(names)} share one site (bucket, path or recorded site): counted once"
        )
    return Figure(
        value, colour, _url("backups:source_detail", source.pk), age(newest_copy, now), note
    )


def source_row(source, r, now, interval, copies, failures) -> SourceRow:
    """The dashboard row of one source from its recovery.readiness figures."""
    return SourceRow(
        source=source,
        readiness=r,
        verdict=r.verdict,
        colour=VERDICT_COLOUR[r.verdict],
        rpo=_rpo_figure(source, r, interval),
        verified_rpo=_verified_figure(source, r, now),
        last_test=_last_test_figure(source, r, now),
        rto=_rto_figure(source, r, now),
        forecast=_forecast_figure(source, r, now),
        rule_321=_rule_321_figure(source, copies, now),
        copies=copies,
        failures_24h=failures,
        url=_url("recovery:source_detail", source.pk),
        backups_url=_url("backups:source_detail", source.pk),
    )


# --- drills ----------------------------------------------------------------------------


def drill_plans(now) -> list:
    """Plans with their newest run (annotated, one query) and next/overdue dates (no query)."""

    newest = DrillRun.objects.filter(plan=OuterRef("pk")).order_by("-declared_at", "-pk")
    plans = list(
        DrillPlan.objects.annotate(
            last_run_id=Subquery(newest.values("pk")[:1]),
            last_declared=Subquery(newest.values("declared_at")[:1]),
            last_verdict=Subquery(newest.values("verdict")[:1]),
            last_status=Subquery(newest.values("status")[:1]),
        ).prefetch_related("systems")
    )
    for plan in plans:
        dates = plan.next_dates(1, now) if plan.enabled else []
        plan.next_date = dates[0] if dates else None
        plan.overdue = _overdue(plan, now)
    return plans


def _overdue(plan, now):
    """DrillPlan.overdue_since, answered from the annotated newest run when that settles it."""
    if not plan.enabled:
        return None
    due = plan.last_due(now - plan.time_budget)
    if due is None:
        return None
    if plan.last_declared is None:
        return due
    if plan.last_declared > due:
        return None
    return plan.overdue_since(now)  # the newest drill ran before the due date: ask the model


def drill_figures(plans, now) -> tuple[Figure, Figure]:
    """Last drill and next due over the plans that cover one system."""
    ran = [p for p in plans if p.last_run_id]
    if ran:
        last = max(ran, key=lambda p: p.last_declared)
        colour = {Verdict.PASSED: GREEN, Verdict.FAILED: RED}.get(last.last_verdict, AMBER)
        value = last.last_verdict or last.last_status
        drill = Figure(
            f"{value} ({last.name})",
            colour,
            _url("drills:run", last.last_run_id),
            age(last.last_declared, now),
        )
    else:
        drill = Figure(
            "never drilled",
            AMBER,
            _url("drills:plan", plans[0].pk) if plans else _url("drills:index"),
        )
    overdue = [p for p in plans if p.overdue]
    if overdue:
        plan = min(overdue, key=lambda p: p.overdue)
        drill.colour = at_best_amber(drill.colour)
        nxt = Figure(
            f"overdue since {plan.overdue:%Y-%m-%d}",
            RED,
            _url("drills:plan", plan.pk),
            age(plan.overdue, now),
            plan.name,
        )
    else:
        upcoming = [p for p in plans if p.next_date]
        if upcoming:
            plan = min(upcoming, key=lambda p: p.next_date)
            nxt = Figure(
                f"{plan.next_date:%Y-%m-%d}", GREEN, _url("drills:plan", plan.pk), None, plan.name
            )
        else:
            nxt = Figure("no plan", AMBER, _url("drills:index"))
    return drill, nxt


# --- portal-wide cards --------------------------------------------------------------------


def failures_24h(now):
    """Failed or partial backup runs and restore tests finished in the last 24 hours."""

    since = now - RECENT
    bad = [RunStatus.FAILED, RunStatus.PARTIAL]
    runs = BackupRun.objects.filter(status__in=bad, finished__gte=since)
    tests = RestoreTest.objects.filter(status__in=bad, finished__gte=since)
    per_source: dict[int, int] = {}
    counts = {}
    for kind, qs in (("backup", runs), ("test", tests)):
        for row in qs.values("source_id", "status").annotate(n=Count("pk")):
            per_source[row["source_id"]] = per_source.get(row["source_id"], 0) + row["n"]
            counts[(kind, row["status"])] = counts.get((kind, row["status"]), 0) + row["n"]
    listed = list(
        runs.order_by("-finished").values(
            "pk", "source_name", "job_name", "status", "finished", "error"
        )[:LIST_LIMIT]
    )
    for item in listed:
        item["url"] = _url("backups:run_detail", item["pk"])
        item["age"] = age(item["finished"], now)
        item["kind"] = "backup"
    listed_tests = list(
        tests.order_by("-finished").values("pk", "source__name", "status", "finished", "error")[
            :LIST_LIMIT
        ]
    )
    for item in listed_tests:
        item["url"] = _url("recovery:test_detail", item["pk"])
        item["kind"] = "restore test"
        item["source_name"] = item.pop("source__name")
        item["age"] = age(item["finished"], now)
    items = sorted(listed + listed_tests, key=lambda i: i["finished"], reverse=True)[:LIST_LIMIT]
    total = sum(counts.values())
    return {
        "items": items,
        "total": total,
        "failed": sum(n for (_, s), n in counts.items() if s == RunStatus.FAILED),
        "partial": sum(n for (_, s), n in counts.items() if s == RunStatus.PARTIAL),
        "backups": sum(n for (k, _), n in counts.items() if k == "backup"),
        "tests": sum(n for (k, _), n in counts.items() if k == "test"),
        "per_source": per_source,
        "colour": RED
        if any(s == RunStatus.FAILED for (_, s) in counts)
        else AMBER
        if total
        else GREEN,
    }


def incidents_card(now):
    open_qs = Incident.objects.filter(status__in=[IncidentStatus.OPEN, IncidentStatus.MITIGATED])
    incidents = list(
        open_qs.only(
            "identifier", "title", "severity", "status", "started_at", "detected_at"
        ).order_by("-detected_at")[:LIST_LIMIT]
    )
    open_count = open_qs.count() if len(incidents) == LIST_LIMIT else len(incidents)
    overdue_qs = FollowUp.objects.overdue(timezone.localdate(now))
    followups = list(
        overdue_qs.select_related("owner_contact", "owner_user").order_by("due", "pk")[:LIST_LIMIT]
    )
    overdue_count = overdue_qs.count() if len(followups) == LIST_LIMIT else len(followups)
    severe = any(i.severity in (Severity.SEV1, Severity.SEV2) for i in incidents)
    return {
        "incidents": incidents,
        "open_count": open_count,
        "incident_colour": RED if severe else AMBER if incidents else GREEN,
        "followups": followups,
        "overdue_count": overdue_count,
        "followup_colour": AMBER if followups else GREEN,
        "oldest_open": age(min((i.began_at for i in incidents), default=None), now),
    }


def storage() -> list[dict]:
    """Bytes and copies kept per destination (live copies only).

    Summed from the live copies (index backupcopy_live_idx), not as an aggregate filter on
    every destination's copies: that would read the deleted history too (0.4 s at 2M copies).
    """

    live = {
        row["destination_id"]: row
        for row in BackupCopy.objects.live()
        .values("destination_id")
        .annotate(used=Sum("bytes_stored"), copy_count=Count("pk"), newest=Max("created"))
        .order_by()
    }
    destinations = list(
        Destination.objects.order_by("name").values(
            "pk",
            "name",
            "kind",
            "enabled",
            "immutable_days",
            "lock_mode",
            "endpoint_url",
            "bucket",
            "path",
            "site",
        )
    )

    def keys(d):
        where = {"endpoint_url": d["endpoint_url"], "bucket": d["bucket"], "path": d["path"]}
        return {site_key(d["kind"], **where, site=d["site"]), site_key(d["kind"], **where)}

    site_of = {d["pk"]: keys(d) for d in destinations}
    empty = {"used": None, "copy_count": 0, "newest": None}
    proven = scrub.proven_within()
    return [
        {
            **d,
            **{k: live.get(d["pk"], empty)[k] for k in ("used", "copy_count", "newest")},
            "proven": proven.get(d["pk"], {}).get("proven", 0),
            "proven_days": settings.DR_PROVEN_WITHIN_DAYS,
            # S3 Object Lock only: a local directory is the host's to delete.
            "immutable": d["kind"] == Destination.Kind.S3 and d["immutable_days"] > 0,
            # Other destinations at the same endpoint and bucket (or path): one site for 3-2-1.
            "same_site": [
                o["name"]
                for o in destinations
                if o["pk"] != d["pk"] and site_of[o["pk"]] & site_of[d["pk"]]
            ],
        }
        for d in destinations
    ]


def missing_key() -> dict:
    """Live copies sealed with keys no longer in the ring (the same figure as check E002):
    a grouped read of every live copy, so it is counted with the other slow figures."""
    try:
        copies, key_ids = missing_key_summary()
    except keyring.KeyRingError:
        return {"copies": 0, "key_ids": []}  # check E001 and the start-up say why
    return {"copies": copies, "key_ids": key_ids}


def slow_figures(sources, now) -> dict:
    """3-2-1 copies and storage as last counted, recounted here if that count is too old."""

    ids = sorted(s.pk for s in sources)
    cached = cache.get(SLOW_FIGURES_KEY)
    if (
        cached
        and cached["ids"] == ids
        and cached["at"] <= now < cached["at"] + timedelta(seconds=SLOW_FIGURES_MAX_AGE)
    ):
        return cached
    return count_slow_figures(sources, now)


def count_slow_figures(sources=None, now=None) -> dict:
    """Count 3-2-1 copies and storage now and share the result with every render."""

    now = now or timezone.now()
    sources = list(Source.objects.only("pk")) if sources is None else sources
    fresh = {
        "ids": sorted(s.pk for s in sources),
        "at": now,
        "copies": copies_by_source(sources, now),
        "storage": storage(),
        "missing_key": missing_key(),
    }
    cache.set(SLOW_FIGURES_KEY, fresh, SLOW_FIGURES_MAX_AGE)
    return fresh


# --- charts ------------------------------------------------------------------------------


def rpo_charts(rows, now) -> list:
    """RPO over the last days for the sources nearest their target: one small chart each.

    Sources without any good backup are already red in the table and have nothing to draw.
    """

    def used(row):
        r = row.readiness
        if r.rpo_now is None or not r.rpo_target:
            return float("inf")
        return r.rpo_now / r.rpo_target

    candidates = [row for row in rows if row.readiness.rpo_now is not None]
    chosen = sorted(candidates, key=used, reverse=True)[:CHART_SOURCES]
    if not chosen:
        return []
    return charts.rpo_charts([(row.source, row.readiness) for row in chosen], now)


def rto_chart(now, target):
    """Worst measured RTO of passed restore tests per day against the restore RTO target."""
    since = now - timedelta(days=CHART_DAYS_RTO)
    rows = (
        RestoreTest.objects.filter(
            status=RunStatus.SUCCEEDED, finished__gte=since, rto__isnull=False
        )
        .annotate(day=TruncDate("finished"))
        .values("day")
        .annotate(worst=Max("rto"), best=Min("rto"))
        .order_by("day")
    )
    worst_pts, best_pts = [], []
    for row in rows:
        day = datetime.combine(
            row["day"], datetime.min.time(), tzinfo=timezone.get_current_timezone()
        )
        worst_pts.append((day, row["worst"].total_seconds()))
        best_pts.append((day, row["best"].total_seconds()))
    return line_chart(
        [("Slowest restore test", worst_pts), ("Fastest", best_pts)],
        target=target.total_seconds() if target else None,
        target_label="RTO target",
        y_format=fd,
        title=f"Restore tests: measured RTO per day, last {CHART_DAYS_RTO} days",
        width=CHART_WIDE_WIDTH,
        height=220,
    )


# --- the whole dashboard ----------------------------------------------------------------------


def _system_blocks(sources, ready, now, copies, plans, failures) -> list[SystemBlock]:
    """One block per system: its sources' rows and the drills that cover it."""
    intervals = backup_intervals([s.pk for s in sources], now) if sources else {}
    blocks: dict[int, SystemBlock] = {}
    for source in sources:
        block = blocks.setdefault(source.system_id, SystemBlock(source.system))
        block.rows.append(
            source_row(
                source,
                ready[source.pk],
                now,
                intervals.get(source.pk),
                copies.get(source.pk, []),
                failures["per_source"].get(source.pk, 0),
            )
        )
    for block in blocks.values():
        covering = [
            p
            for p in plans
            if any(s.pk == block.system.pk for s in p.systems.all()) or not p.systems.all()
        ]
        block.drill, block.next_drill = drill_figures(covering, now)
    return list(blocks.values())


FAILOVER_COLOUR = {
    failover_readiness.VERIFIED: GREEN,
    failover_readiness.REHEARSED: AMBER,
    failover_readiness.STALE: AMBER,
    failover_readiness.NEEDS_VERIFICATION: RED,
    failover_readiness.NO_RUNBOOK: GREY,
}


def failover_figure(ready) -> Figure:
    """A system's failover readiness: its least ready runbook's state, the newest proving run."""
    colour = FAILOVER_COLOUR[ready.state]
    last = ready.last
    if last is None:
        return Figure(ready.label, colour, _url("recovery:failover:index"))
    if last.verdict == "missed":
        colour = RED
    rto = {"met": "RTO met", "missed": "RTO missed"}.get(last.verdict, "no RTO measured")
    note = f"{last.mode} run, {rto}"
    return Figure(
        ready.label, colour, _url("recovery:failover:run", last.run_id), age=last.age, note=note
    )


def _add_failover(blocks: list[SystemBlock], now) -> None:
    ready = {
        r.system_id: r for r in failover_readiness.system_readiness([b.system for b in blocks], now)
    }
    for block in blocks:
        block.failover = failover_figure(ready[block.system.pk])


def _destinations(slow, now) -> list[dict]:
    return [
        {
            **d,
            "newest_age": age(d["newest"], now),
            "kind_label": KIND_LABEL.get(d["kind"], d["kind"]),
        }
        for d in slow["storage"]
    ]


MAINTENANCE_AHEAD = timedelta(days=7)


def maintenance_windows(now) -> list:
    """Windows going on now or starting within a week: their systems' alerts are held."""
    rows = MaintenanceWindow.objects.filter(ends__gt=now, starts__lt=now + MAINTENANCE_AHEAD)
    windows = list(rows.select_related("system").order_by("starts"))
    for window in windows:
        window.active = window.is_active(now)
    return windows


def build(now=None, charts=True, user=None) -> dict:
    """Everything the dashboard shows, with a number of queries independent of the history.

    For a `user` with roles on some systems only: those systems' blocks, and none of the
    cards that count across systems (failures, incidents, destinations, RTO chart)."""

    now = now or timezone.now()
    everything = user is None or roles.visible_systems(user) is None
    # The secrets and check lists are not shown here: not loaded (nor decrypted) either.
    sources = Source.objects if everything else roles.scope(Source.objects, user, "system")
    sources = list(
        sources.select_related("system")
        .defer("password", "exclude", "checks")
        .order_by("system__name", "name")
    )
    ready = readiness.source_readiness(sources, now=now)
    slow = slow_figures(sources, now)
    failures = failures_24h(now)
    plans = drill_plans(now)
    if not everything:  # a plan is seen with a role on each of its systems (none: global)
        seen = roles.visible_systems(user)
        plans = [p for p in plans if p.systems.all() and {s.pk for s in p.systems.all()} <= seen]
    systems = _system_blocks(sources, ready, now, slow["copies"], plans, failures)
    _add_failover(systems, now)

    verdict = readiness.overall(ready)
    rows = [row for block in systems for row in block.rows]
    context = {
        "now": now,
        "systems": systems,
        "overall": verdict,
        "overall_colour": VERDICT_COLOUR[verdict],
        "verdict_counts": {v: sum(1 for r in rows if r.verdict == v) for v in VERDICT_COLOUR},
        "source_count": len(rows),
        "failures": failures,
        "incidents": incidents_card(now),
        "destinations": _destinations(slow, now),
        "slow_figures_age": age(slow["at"], now),
        "missing_key": slow["missing_key"],
        "plans_without_systems": [p for p in plans if not p.systems.all()],
        "maintenance": maintenance_windows(now),
        "global_cards": everything,
    }
    if not everything:
        shown = {block.system.pk for block in systems}
        context["maintenance"] = [w for w in context["maintenance"] if w.system_id in shown]
        context["plans_without_systems"] = []
    if charts:
        context["rpo_charts"] = rpo_charts(rows, now)
        context["rto_chart"] = rto_chart(now, restore_rto_target()) if everything else ""
    return context
