"""Portal-wide background tasks (django-q2 entry points)."""

from datetime import timedelta

from django.utils import timezone

from dr_portal.runs import reap_all


def reap_lost_runs() -> int:
    """Mark runs whose worker died as failed ("worker lost") and release their locks."""
    return reap_all()


def prune_task_records(days: int = 30) -> int:
    """django-q2 keeps failures forever; our own run rows hold the history that matters."""
    from django_q.models import Failure

    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = Failure.objects.filter(stopped__lt=cutoff).delete()
    return deleted
