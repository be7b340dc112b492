"""Enqueue background work after commit, by id, keep schedules by name, see the workers."""

import time

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django_q.models import Schedule
from django_q.status import Stat
from django_q.tasks import async_task

WORKER_SEEN_KEY = "dr:worker-last-seen"


def enqueue(func: str, *args, group: str = "", **kwargs):
    """Queue `func(*args)` once the current transaction commits. Pass ids, never secrets."""

    def send():
        async_task(func, *args, group=group or None, **kwargs)

    transaction.on_commit(send)


def ensure_schedule(name: str, func: str, *, args: str = "", **fields):
    """Create or update a django-q2 schedule by name, never a duplicate (catch_up is off cluster-wide)."""
    fields.setdefault("repeats", -1)
    matches = list(Schedule.objects.filter(name=name).order_by("pk"))
    for extra in matches[1:]:
        extra.delete()
    if matches:
        schedule = matches[0]
        changed = False
        for key, value in {"func": func, "args": args, **fields}.items():
            if key == "next_run" and schedule.next_run:
                continue  # keep the computed next run of an existing schedule
            if getattr(schedule, key) != value:
                setattr(schedule, key, value)
                changed = True
        if changed:
            schedule.save()
        return schedule
    return Schedule.objects.create(name=name, func=func, args=args, **fields)


def drop_schedule(name: str):
    Schedule.objects.filter(name=name).delete()


def worker_window_s() -> int:
    """Seconds without a cluster before it is reported down (health, the banner)."""
    return settings.DR_WORKER_WINDOW_S


def worker_last_seen() -> float | None:
    """Epoch seconds a django-q2 cluster was last seen (cluster stats expire after seconds)."""
    if Stat.get_all():
        now = time.time()
        cache.set(WORKER_SEEN_KEY, now, None)
        return now
    return cache.get(WORKER_SEEN_KEY)
