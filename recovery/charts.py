"""RPO over time for sources: the chart on a source's recovery page and on the dashboard."""

from datetime import datetime, timedelta

from backups.models import BackupRun
from dr_portal.lib.charts import line_chart
from dr_portal.lib.durations import format_duration as fd

RPO_CHART_DAYS = 7
RPO_CHART_WIDTH = 380  # px of a chart card: drawn at the size shown, text stays legible


def rpo_points(source_ids, now) -> dict[int, list[tuple[datetime, float]]]:
    """{source id: [(backup time, RPO reached just before it in seconds)]}, in one query.

    The RPO reached just before a good backup is the gap since the previous good backup.
    """
    since = now - timedelta(days=RPO_CHART_DAYS)
    points: dict[int, list] = {pk: [] for pk in source_ids}
    taken = (
        BackupRun.objects.restorable()
        .filter(
            source_id__in=list(points),
            data_taken_at__gte=since,
            data_taken_at__lte=now,
        )
        .order_by("source_id", "data_taken_at")
        .values_list("source_id", "data_taken_at")
    )
    previous: dict[int, datetime] = {}
    for source_id, at in taken:
        if source_id in previous:
            points[source_id].append((at, (at - previous[source_id]).total_seconds()))
        previous[source_id] = at
    return points


def rpo_charts(pairs, now) -> list[dict]:
    """[{"source", "svg"}] for each (source, readiness) pair: its RPO history, then the RPO now."""
    points = rpo_points([source.pk for source, _ in pairs], now)
    charts = []
    for source, r in pairs:
        pts = points[source.pk]
        if r.rpo_now is not None:
            pts.append((now, r.rpo_now.total_seconds()))
        charts.append(
            {
                "source": source,
                "svg": line_chart(
                    [("RPO", pts)],
                    target=r.rpo_target.total_seconds() if r.rpo_target else None,
                    target_label="RPO target",
                    y_format=fd,
                    title=f"{source.name}: RPO, last {RPO_CHART_DAYS} days",
                    width=RPO_CHART_WIDTH,
                    height=200,
                ),
            }
        )
    return charts
