"""The life cycle every run shares: backup runs, restore tests, restores, failovers, drills.

A run is claimed with a conditional update (so a redelivered task is harmless),
beats while a worker holds it (so a reaper can tell a dead worker from a slow one),
and finishes exactly once with its error kept on the row.

Each transition writes a RunEvent in the same transaction and does nothing else: what
follows a run's end (notifications, anomaly checks, alerts, incident timeline entries)
happens in the one consumer, incidents.events.process_events, queued after commit and run
every minute as a safety net. This module imports no app above dr_portal.
"""

import functools
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import Error as DjangoDbError
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    models,
    transaction,
)
from django.db.models.functions import Now
from django.utils import timezone

from dr_portal import audit
from dr_portal.evidence import SealedEvidence
from dr_portal.lib import readiness_version
from dr_portal.lib.durations import format_duration
from dr_portal.lib.queue import enqueue
from dr_portal.lib.redact import redact
from dr_portal.models import RunEvent

log = logging.getLogger(__name__)

# A worker beats every HEARTBEAT_EVERY; a run silent for REAP_AFTER lost its worker.
# settings.DR_REAP_AFTER_S (env DR_REAP_AFTER_S, default 120) overrides REAP_AFTER; the beat
# then comes at least four times within it, so a lower value never reaps a live worker.
HEARTBEAT_EVERY = timedelta(seconds=15)
REAP_AFTER = timedelta(minutes=2)


def reap_after() -> timedelta:
    seconds = getattr(settings, "DR_REAP_AFTER_S", None)
    return timedelta(seconds=seconds) if seconds else REAP_AFTER


def heartbeat_every() -> timedelta:
    return min(HEARTBEAT_EVERY, reap_after() / 4)


# The consumer of run events, queued by name (a string: this layer imports no app above it).
PROCESS_EVENTS = "incidents.events.process_events"


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


def survives_disconnects(method):
    """Retry a worker's database call through a connection blip (the portal database
    restarted, failed over, or the network dropped): the broken connection is closed and
    the call tried again with back-off for about half a minute, so a long failover does not
    break over one lost connection. Inside a transaction the error is raised as it is."""

    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        delays = [0.5, 1, 2, 4, 8, 10, 10]
        for delay in [*delays, None]:
            try:
                return method(*args, **kwargs)
            except (OperationalError, InterfaceError) as exc:
                if delay is None or connection.in_atomic_block:
                    raise
                log.warning(
                    "%s: database unreachable, retrying in %s s: %s", method.__name__, delay, exc
                )
                connection.close()
                time.sleep(delay)

    return wrapped


class LeaseLost(Exception):
    """This worker no longer holds its run (the reaper failed it, or it finished elsewhere)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RunBase(SealedEvidence):
    """Abstract: status, timings, worker lease and log of one execution."""

    # Sealed at finish (dr_portal.evidence); subclasses add what their evidence is.
    EVIDENCE_FIELDS = ("status", "queued", "started", "finished", "error", "requested_by")

    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.QUEUED)
    queued = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    phase = models.CharField(max_length=60, blank=True)
    worker = models.CharField(max_length=120, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # What the run creates outside the portal (scratch/staging databases, temporary paths),
    # recorded before it is created, so the reaper can remove it after the worker died.
    temporaries = models.JSONField(default=list, blank=True)
    requested_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True

    audit = False  # runs are audited by the action that started them, not per save

    def is_sealed(self) -> bool:
        return self.status in DONE

    # --- transitions --------------------------------------------------------
    def claim(self) -> bool:
        """QUEUED -> RUNNING for this worker; False if another delivery got it first.

        The heartbeat is stamped with the database server's clock, like every later beat and
        the reaper's cut-off, so a worker whose clock is off is never reaped for it.
        """
        with transaction.atomic():
            claimed = (
                type(self)
                .objects.filter(pk=self.pk, status=RunStatus.QUEUED)
                .update(
                    status=RunStatus.RUNNING,
                    started=timezone.now(),
                    heartbeat_at=Now(),
                    worker=worker_name(),
                )
            )
            if claimed:
                RunEvent.record(self, RunEvent.Transition.STARTED, RunStatus.RUNNING)
                enqueue(PROCESS_EVENTS, group="events")
        if claimed:
            self.refresh_from_db()
        return claimed == 1

    def finish(self, status: str, error: str = "", *, only_if=None, **fields):
        """Stamp the end once; a finished run never moves again.

        only_if: an extra condition (a Q) the row must still meet, checked in the same update.
        """
        if status not in DONE:
            raise IllegalTransition(f"{status} is not a final status")
        now = timezone.now()
        rows = type(self).objects.filter(pk=self.pk, status__in=ACTIVE)
        if only_if is not None:
            rows = rows.filter(only_if)
        with transaction.atomic():
            updated = rows.update(status=status, error=error, finished=now, phase="", **fields)
            if updated:
                readiness_version.bump()  # a finish is an update(): no model signal sees it
                RunEvent.record(self, RunEvent.Transition.FINISHED, status)
                audit.seal_evidence(self)
                enqueue(PROCESS_EVENTS, group="events")
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

    def fail_unexpectedly(self, exc: Exception, secrets=()) -> str:
        """Record an exception nobody expected on the run (redacted), so it never stays running."""
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
        """Subclasses release what the run held (locks, step rows) here.

        Notifications, alerts and incident entries are not for here: they follow the
        RunEvent this finish wrote (incidents.events), so a failing alert never touches the run.
        """

    def on_lost(self):
        """After the reaper failed this run: subclasses remove what the dead worker left."""

    # --- while running ------------------------------------------------------
    def _mine(self):
        """The row, only while this worker still holds it (the fencing condition)."""
        return type(self).objects.filter(pk=self.pk, status=RunStatus.RUNNING, worker=self.worker)

    def holds_lease(self) -> bool:
        return self._mine().exists()

    def check_lease(self):
        """Raise LeaseLost unless this worker still holds the run: call before each phase/step."""
        lost = getattr(self, "_lease_lost", None)
        if (lost is not None and lost.is_set()) or not self.holds_lease():
            row = type(self).objects.filter(pk=self.pk).values("status", "error").first() or {}
            raise LeaseLost(
                f"{self} is no longer held by this worker ({self.worker}): "
                f"{row.get('status', 'gone')}{': ' + row['error'][:200] if row.get('error') else ''}"
            )

    def beat(self, phase: str | None = None, **fields) -> bool:
        """Stamp the heartbeat (database clock); False when this worker no longer holds the run."""
        values = {"heartbeat_at": Now(), **fields}
        if phase is not None:
            values["phase"] = phase[:60]
        held = self._mine().update(**values) == 1
        values["heartbeat_at"] = timezone.now()  # in memory only: the row has the server's time
        for name, value in values.items():
            setattr(self, name, value)
        return held

    def enter_phase(self, phase: str):
        """Beat with the new phase, or stop (LeaseLost) when the run is not ours any more."""
        if not self.beat(phase):
            self.check_lease()

    def record_temporary(self, **entry):
        """Remember something about to be created outside the portal, before creating it."""
        self.temporaries = [*(self.temporaries or []), entry]
        type(self).objects.filter(pk=self.pk).update(temporaries=self.temporaries)

    def append_log(self, line: str):
        stamp = timezone.now().strftime("%H:%M:%S")
        self.log = f"{self.log}{stamp} {line}\n"
        type(self).objects.filter(pk=self.pk).update(log=self.log)

    @contextmanager
    def heartbeat(self):
        """Beat from a thread while the body runs, even inside a long blocking call.

        A failed beat (the portal database locked or unreachable for a while) is logged and
        retried with back-off; it never ends the thread. When the conditional update finds
        the run no longer ours (reaped), the thread sets `lease_lost` and stops.
        """
        stop = threading.Event()
        self._lease_lost = lost = threading.Event()
        model, pk, worker = type(self), self.pk, self.worker
        every = heartbeat_every().total_seconds()

        def loop():
            failures, wait = 0, every
            try:
                while not stop.wait(wait):
                    try:
                        held = model.objects.filter(
                            pk=pk, status=RunStatus.RUNNING, worker=worker
                        ).update(heartbeat_at=Now())
                    except DjangoDbError as exc:  # InterfaceError too: the connection was cut
                        failures += 1
                        wait = min(every, 0.5 * 2**failures)
                        log.warning(
                            "heartbeat of %s #%s failed (%d in a row), retrying in %.1f s: %s",
                            model.__name__,
                            pk,
                            failures,
                            wait,
                            exc,
                        )
                        connection.close()  # a broken connection is reopened by the next try
                        continue
                    if failures:
                        log.warning(
                            "heartbeat of %s #%s is back after %d failed attempts",
                            model.__name__,
                            pk,
                            failures,
                        )
                    failures, wait = 0, every
                    if not held:
                        log.warning("%s #%s lost its lease: stopping", model.__name__, pk)
                        lost.set()
                        return
            finally:
                connection.close()

        thread = threading.Thread(target=loop, name=f"beat-{model.__name__}-{pk}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)

    @property
    def lease_lost(self) -> bool:
        """Set by the heartbeat thread; a cheap hint, check_lease() is the authority."""
        lost = getattr(self, "_lease_lost", None)
        return lost is not None and lost.is_set()

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
        """Fail runs whose worker stopped beating; return how many.

        "Stopped" is judged by the database server's clock on both sides (beats write Now(),
        the cut-off is Now() - REAP_AFTER), never by a worker's own clock. Each run is failed
        by a conditional update that re-checks the stale beat, so a beat that lands between
        the query and the update keeps the run alive.
        """
        cutoff = (now - reap_after()) if now is not None else Now() - reap_after()
        stale = models.Q(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
        lost = cls.objects.filter(stale)
        count = 0
        for run in lost:
            try:
                run.finish(
                    RunStatus.FAILED,
                    "worker lost: no heartbeat since "
                    f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC ({run.worker})",
                    only_if=stale,
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
    return [m for m in apps.get_models() if issubclass(m, RunBase)]


def reap_all() -> int:
    close_old_connections()
    return sum(model.reap() for model in run_models())
