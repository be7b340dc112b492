"""The life cycle every run shares: backup runs, restore tests, restores, failovers, drills.

A run is claimed with a conditional update (so a redelivered task is harmless),
beats while a worker holds it (so a reaper can tell a dead worker from a slow one),
and finishes exactly once with its error kept on the row.
"""

import logging
import os
import socket
import threading
from contextlib import contextmanager
from datetime import timedelta

from django.db import close_old_connections, connection, models
from django.utils import timezone

from dr_portal.lib.durations import format_duration

log = logging.getLogger(__name__)

# A worker beats every HEARTBEAT_EVERY; a run silent for REAP_AFTER lost its worker.
# settings.DR_REAP_AFTER_S (env DR_REAP_AFTER_S, default 120) overrides REAP_AFTER; the beat
# then comes at least four times within it, so a lower value never reaps a live worker.
HEARTBEAT_EVERY = timedelta(seconds=15)
REAP_AFTER = timedelta(minutes=2)


def reap_after() -> timedelta:
    from django.conf import settings

    seconds = getattr(settings, "DR_REAP_AFTER_S", None)
    return timedelta(seconds=seconds) if seconds else REAP_AFTER


def heartbeat_every() -> timedelta:
    return min(HEARTBEAT_EVERY, reap_after() / 4)


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE = {RunStatus.QUEUED, RunStatus.RUNNING}
DONE = {RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED}


class IllegalTransition(Exception):
    pass


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RunBase(models.Model):
    """Abstract: status, timings, worker lease and log of one execution."""

    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    queued = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    phase = models.CharField(max_length=60, blank=True)
    worker = models.CharField(max_length=120, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True

    audit = False  # runs are audited by the action that started them, not per save

    # --- transitions --------------------------------------------------------
    def claim(self) -> bool:
        """QUEUED -> RUNNING for this worker; False if another delivery got it first."""
        now = timezone.now()
        claimed = (
            type(self)
            .objects.filter(pk=self.pk, status=RunStatus.QUEUED)
            .update(status=RunStatus.RUNNING, started=now, heartbeat_at=now, worker=worker_name())
        )
        if claimed:
            self.refresh_from_db()
        return claimed == 1

    def finish(self, status: str, error: str = "", **fields):
        """Stamp the end once; a finished run never moves again."""
        if status not in DONE:
            raise IllegalTransition(f"{status} is not a final status")
        now = timezone.now()
        updated = (
            type(self)
            .objects.filter(pk=self.pk, status__in=ACTIVE)
            .update(status=status, error=error, finished=now, phase="", **fields)
        )
        if not updated:
            self.refresh_from_db()
            raise IllegalTransition(f"{self} is already {self.status}")
        self.refresh_from_db()
        # The one line per run in the worker's log (django-q2's own lines are off by default).
        log.log(
            logging.INFO if status == RunStatus.SUCCEEDED else logging.WARNING,
            "%s %s in %s%s",
            self,
            status,
            format_duration(self.duration),
            f": {error[:300]}" if error else "",
        )
        self.on_finished()
        try:  # incidents linked to this run get a timeline entry; never breaks the run
            from incidents.links import note_run_transition

            note_run_transition(self)
        except Exception:
            pass

    def fail_unexpectedly(self, exc: Exception, secrets=()) -> str:
        """Record an exception nobody expected on the run (redacted), so it never stays running."""
        from dr_portal.lib.redact import redact

        message = redact(f"unexpected error: {type(exc).__name__}: {exc}", list(secrets))[:2000]
        log.error("%s failed: %s", self, message)
        try:
            self.append_log(message)
            self.finish(RunStatus.FAILED, message)
        except IllegalTransition:
            pass  # finished meanwhile (the reaper, a cancel)
        return message

    def cancel(self, reason="cancelled by user"):
        self.finish(RunStatus.CANCELLED, reason)

    def on_finished(self):
        """Subclasses release locks, send notifications, apply retention here."""

    def on_lost(self):
        """After the reaper failed this run: subclasses remove what the dead worker left."""

    # --- while running ------------------------------------------------------
    def beat(self, phase: str | None = None, **fields):
        values = {"heartbeat_at": timezone.now(), **fields}
        if phase is not None:
            values["phase"] = phase[:60]
        type(self).objects.filter(pk=self.pk, status=RunStatus.RUNNING).update(**values)
        for name, value in values.items():
            setattr(self, name, value)

    def append_log(self, line: str):
        stamp = timezone.now().strftime("%H:%M:%S")
        self.log = f"{self.log}{stamp} {line}\n"
        type(self).objects.filter(pk=self.pk).update(log=self.log)

    @contextmanager
    def heartbeat(self):
        """Beat from a thread while the body runs, even inside a long blocking call."""
        stop = threading.Event()
        model, pk = type(self), self.pk
        every = heartbeat_every().total_seconds()

        def loop():
            try:
                while not stop.wait(every):
                    model.objects.filter(pk=pk, status=RunStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
            finally:
                connection.close()

        thread = threading.Thread(target=loop, name=f"beat-{model.__name__}-{pk}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)

    # --- views of the row ---------------------------------------------------
    @property
    def is_active(self):
        return self.status in ACTIVE

    @property
    def duration(self) -> timedelta | None:
        if self.started is None:
            return None
        return (self.finished or timezone.now()) - self.started

    @classmethod
    def reap(cls, now=None) -> int:
        """Fail runs whose worker stopped beating; return how many."""
        now = now or timezone.now()
        lost = cls.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=now - reap_after())
        count = 0
        for run in lost:
            try:
                run.finish(
                    RunStatus.FAILED,
                    "worker lost: no heartbeat since "
                    f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC ({run.worker})",
                )
                count += 1
            except IllegalTransition:
                continue  # finished meanwhile
            try:
                run.on_lost()
            except Exception:
                log.exception("cleaning up after %s failed", run)
        return count


def run_models():
    from django.apps import apps

    return [m for m in apps.get_models() if issubclass(m, RunBase)]


def reap_all() -> int:
    close_old_connections()
    return sum(model.reap() for model in run_models())
