"""The incidents app's system schedules, kept by name (never duplicated)."""

from django_q.models import Schedule

from dr_portal.lib.queue import ensure_schedule


def ensure_schedules():
    """Run events and notification retries every minute; RPO alerts every 5; follow-ups daily."""
    ensure_schedule(
        "system: retry due notifications",
        "incidents.tasks.retry_due_notifications",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    ensure_schedule(
        "system: alert reminders and snoozes",
        "incidents.tasks.remind_alerts",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    ensure_schedule(
        "system: process run events",
        "incidents.tasks.process_run_events",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    # Kept under its old name (schedules are updated by name): its alerts are this app's.
    ensure_schedule(
        "recovery: RPO targets (alerts)",
        "incidents.tasks.check_rpo_targets",
        schedule_type=Schedule.MINUTES,
        minutes=5,
    )
    ensure_schedule(
        "system: replication lag of standbys (samples, alerts)",
        "incidents.lag_alerts.sample_replication_lag",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    ensure_schedule(
        "system: follow-ups overdue",
        "incidents.tasks.check_overdue_followups",
        schedule_type=Schedule.CRON,
        cron="0 7 * * *",
    )
    ensure_schedule(
        "system: prune old notifications",
        "incidents.tasks.prune_notifications",
        schedule_type=Schedule.CRON,
        cron="30 3 * * *",
    )


def after_migrate(sender, **kwargs):
    ensure_schedules()
