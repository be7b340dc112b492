"""Portal-wide background tasks (django-q2 entry points)."""

from datetime import timedelta

from django.utils import timezone
from django_q.models import Failure

from dr_portal.models import RunEvent
from dr_portal.runs import reap_all


def reap_lost_runs() -> int:
    """Mark runs whose worker died as failed ("worker lost") and release their locks."""
    return reap_all()


def prune_task_records(days: int = 30, event_days: int = 90) -> int:
    """django-q2 keeps failures forever; our own run rows hold the history that matters.

    Processed run events go after `event_days` (the runs keep their own times); pending
    and given-up ones stay whatever their age.
    """
    now = timezone.now()
    deleted, _ = Failure.objects.filter(stopped__lt=now - timedelta(days=days)).delete()
    events, _ = RunEvent.objects.filter(
        processed_at__lt=now - timedelta(days=event_days), error=""
    ).delete()
    return deleted + events
