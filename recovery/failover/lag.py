"""Replication lag of registered standbys: every runbook's pg_promote step names a standby;
its pg_ready step that expects the primary down names the primary. Sampled every minute
(incidents.lag_alerts runs sample_all and alerts over the thresholds), kept for
DR_LAG_KEEP_DAYS, charted on the runbook page."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from dr_portal.lib import charts
from dr_portal.lib.durations import format_duration
from recovery.failover.models import ReplicationLagSample, Runbook, RunbookStep
from recovery.failover.steps import lag as engine

CHART_HOURS = 24


def _conn(step: RunbookStep) -> dict:
    params = dict(step.params or {})
    params.setdefault("port", 5432)
    params.setdefault("dbname", "postgres")
    params.setdefault("user", "postgres")
    params.setdefault("connect_timeout", 5)
    params["secret"] = step.secret.reveal() if step.secret else ""
    return params


def standbys(runbook: Runbook) -> list[tuple[RunbookStep, RunbookStep | None]]:
    """(pg_promote step, the primary's "is down" pg_ready step or None) of a runbook."""
    steps = [s for s in runbook.steps.all() if s.rollback_of_id is None]
    primary = next(
        (s for s in steps if s.kind == "pg_ready" and (s.params or {}).get("expect") == "down"),
        None,
    )
    return [(s, primary) for s in steps if s.kind == "pg_promote"]


def sample_runbook(runbook: Runbook, now=None) -> list[ReplicationLagSample]:
    samples = []
    for standby, primary in standbys(runbook):
        measured = engine.measure(
            _conn(standby), _conn(primary) if primary else None, timeout=settings.DR_LAG_TIMEOUT_S
        )
        samples.append(
            ReplicationLagSample.objects.create(
                runbook=runbook,
                step=standby,
                standby=measured.standby[:300],
                sampled_at=now or timezone.now(),
                lag_bytes=measured.lag_bytes,
                lag=None
                if measured.lag_seconds is None
                else timedelta(seconds=measured.lag_seconds),
                from_primary=measured.from_primary,
                error=measured.error[:500],
            )
        )
    return samples


def sample_all(now=None) -> list[ReplicationLagSample]:
    """One sample per standby of every runbook; samples older than DR_LAG_KEEP_DAYS go."""
    now = now or timezone.now()
    ReplicationLagSample.objects.filter(
        sampled_at__lt=now - timedelta(days=settings.DR_LAG_KEEP_DAYS)
    ).delete()
    runbooks = Runbook.objects.filter(steps__kind="pg_promote").distinct().prefetch_related("steps")
    samples = []
    for runbook in runbooks.select_related("system"):
        samples.extend(sample_runbook(runbook, now))
    return samples


def over_threshold(sample: ReplicationLagSample) -> str:
    """Why a sample is alarming ("" when it is not): unmeasurable, or over a threshold."""
    if sample.error:
        return f"lag not measurable: {sample.error}"
    reasons = []
    limit_s = settings.DR_LAG_ALERT_S
    if limit_s and sample.lag is not None and sample.lag.total_seconds() > limit_s:
        reasons.append(
            f"{format_duration(sample.lag)} behind (threshold {format_duration(timedelta(seconds=limit_s))})"
        )
    limit_b = settings.DR_LAG_ALERT_BYTES
    if limit_b and sample.lag_bytes is not None and sample.lag_bytes > limit_b:
        reasons.append(f"{sample.lag_bytes} bytes of WAL behind (threshold {limit_b})")
    return "; ".join(reasons)


def newest_per_standby() -> list[ReplicationLagSample]:
    """The newest sample of each standby of each runbook (/metrics), in two queries."""
    newest_at = ReplicationLagSample.objects.values("runbook_id", "standby").annotate(
        at=Max("sampled_at")
    )
    wanted = Q(pk__in=[])
    for row in newest_at:
        wanted |= Q(runbook_id=row["runbook_id"], standby=row["standby"], sampled_at=row["at"])
    rows = ReplicationLagSample.objects.filter(wanted).select_related("runbook__system")
    return list(rows.order_by("runbook__system__name", "runbook__name", "standby", "-pk"))


def newest(runbook: Runbook, before=None) -> ReplicationLagSample | None:
    rows = ReplicationLagSample.objects.filter(runbook=runbook)
    if before is not None:
        rows = rows.filter(sampled_at__lte=before)
    return rows.order_by("-sampled_at").first()


def chart(runbook: Runbook, now=None):
    """Seconds behind over the last CHART_HOURS, one line per standby, the alert threshold dashed."""
    now = now or timezone.now()
    rows = ReplicationLagSample.objects.filter(
        runbook=runbook, sampled_at__gte=now - timedelta(hours=CHART_HOURS)
    ).order_by("sampled_at")
    series: dict[str, list] = {}
    for row in rows.only("standby", "sampled_at", "lag"):
        series.setdefault(row.standby, []).append((row.sampled_at, row.lag_seconds))
    return charts.line_chart(
        [(f"standby {name}", pts) for name, pts in series.items()],
        target=settings.DR_LAG_ALERT_S or None,
        target_label="alert threshold",
        y_format=lambda v: format_duration(timedelta(seconds=v)),
        title=f"Replication lag, last {CHART_HOURS} h (seconds behind)",
    )
