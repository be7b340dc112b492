"""One code path for a backup: the task, `backup_now` and the portal all end up in execute().

Load the rows, build the engine's specs (secrets revealed only here, never logged),
call the engine, record the copies, finish the run. The engine knows nothing of models.
"""

import logging
import shutil
import socket
import threading
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.models import BackupCopy, BackupJob, BackupRun, Destination, Trigger
from dr_portal.lib import keyring
from dr_portal.lib.redact import redact
from dr_portal.runs import IllegalTransition, RunStatus

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0  # at most one progress write per second


class JobBusy(Exception):
    """The job already has a queued or running run."""


def start_run(job: BackupJob, trigger: str, user=None) -> BackupRun:
    """Create a queued run unless one of this job is already queued or running."""
    with transaction.atomic():
        active = job.active_run()
        if active is not None:
            raise JobBusy(f"{job} already has run #{active.pk} {active.status}")
        return job.create_run(trigger, user)


def enqueue_run(run: BackupRun):
    """Queue run_backup(run.pk) after commit and remember django-q2's task id."""

    def send():
        from django_q.tasks import async_task

        task_id = async_task(
            "backups.tasks.run_backup",
            run.pk,
            group=f"backup job {run.job_id}",
            task_name=f"backup run {run.pk}",
        )
        BackupRun.objects.filter(pk=run.pk).update(task_id=str(task_id or "")[:64])

    transaction.on_commit(send)


def artifact_key(run: BackupRun) -> str:
    stamp = (run.started or timezone.now()).strftime("%Y%m%dT%H%M%SZ")
    return f"{run.source_name}/{stamp}-run{run.pk}"


def _throttled_progress(run: BackupRun, cancel: threading.Event):
    last = [0.0]

    def progress(phase, bytes_read=0, bytes_stored=0):
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and phase == run.phase:
            return
        last[0] = now
        run.beat(phase, bytes_read=int(bytes_read or 0), bytes_stored=int(bytes_stored or 0))
        if BackupRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
            cancel.set()

    return progress


def request_cancel(run: BackupRun, user=None) -> str:
    """Cancel a queued run now; ask the worker of a running one to stop. Returns what happened."""
    who = getattr(user, "username", "") or "a user"
    if run.status == RunStatus.QUEUED:
        try:
            run.cancel(f"cancelled by {who} before it started")
            return "cancelled"
        except IllegalTransition:
            run.refresh_from_db()
    if run.status == RunStatus.RUNNING:
        BackupRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(cancel_requested=True)
        run.append_log(f"cancel requested by {who}")
        return "requested"
    return "finished"


def execute(run: BackupRun) -> BackupRun:
    """Run a queued backup to its end. Safe to call twice for one run (the claim decides).

    Expected failures (source unreadable, destination down) end the run failed or partial
    with the cause; an unexpected exception is recorded on the run and re-raised.
    """
    if not run.claim():
        log.info("%s was already claimed (%s); nothing to do", run, run.status)
        return run
    job = run.job
    if job is None:
        run.finish(RunStatus.FAILED, "the job of this run was deleted")
        return run
    if not job.acquire_lock(run):
        holder = BackupJob.objects.filter(pk=job.pk).values_list("locked_by_run", flat=True).first()
        reason = f"skipped: run #{holder} of job {job.name} is still running"
        log.warning("%s %s", run, reason)
        run.append_log(reason)
        run.finish(RunStatus.CANCELLED, reason)
        return run
    secrets: list[str] = []
    try:
        with run.heartbeat():
            _backup(run, job, secrets)
    except Exception as exc:
        run.fail_unexpectedly(exc, secrets)
        raise
    finally:
        job.release_lock(run)
        shutil.rmtree(settings.VAR_DIR / "scratch" / f"backup-run-{run.pk}", ignore_errors=True)
    run.refresh_from_db()
    if run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
        _retention_after(run)
    return run


def _fail(run, message):
    run.append_log(message)
    run.finish(RunStatus.FAILED, message)


def _backup(run: BackupRun, job: BackupJob, secrets: list[str]):
    from backups import engine

    source = job.source
    destinations = list(job.destinations.order_by("name"))
    enabled = [d for d in destinations if d.enabled]
    for d in destinations:
        if not d.enabled:
            run.append_log(f"destination {d.name} is disabled: skipped")
    if not enabled:
        _fail(run, "no enabled destination: nothing to write to")
        return
    run.beat("preparing")
    try:
        source_spec = source.to_spec()
        dest_specs = [d.to_spec() for d in enabled]
        master_keys = keyring.ring() if job.encrypt else []
    except keyring.KeyRingError as exc:
        _fail(run, f"cannot read stored credentials: {exc}")
        return
    except ValueError as exc:
        _fail(run, str(exc))
        return
    secrets.append(source_spec.password)
    for spec in dest_specs:
        secrets.extend(spec.secrets.values())
    run.artifact_key = artifact_key(run)
    options = engine.BackupOptions(
        artifact_key=run.artifact_key,
        compression=job.compression,
        level=job.compression_level,
        encrypt=job.encrypt,
        master_keys=master_keys,
        manifest_extra={
            "portal": {
                "run": run.pk,
                "job": job.name,
                "source": source.name,
                "system": source.system.name,
                "data_class": source.data_class,
                "trigger": run.trigger,
            }
        },
        scratch_dir=str(_scratch_dir(run)),
    )
    run.append_log(
        f"backing up {source.name} ({source.describe()}) to {', '.join(d.name for d in enabled)}"
        f" with {job.compression}{'' if job.compression_level is None else f' -{job.compression_level}'}"
        f"{', encrypted' if job.encrypt else ', NOT encrypted'}"
    )
    cancel = threading.Event()
    result = engine.run_backup(
        source_spec, dest_specs, options, progress=_throttled_progress(run, cancel), cancel=cancel
    )
    for warning in result.warnings[:100]:
        run.append_log(f"warning: not backed up: {warning}")
    if len(result.warnings) > 100:
        run.append_log(f"warning: {len(result.warnings) - 100} more entries not backed up")
    by_name = {d.name: d for d in enabled}
    for copy in result.copies:
        if copy.ok:
            BackupCopy.objects.create(
                run=run,
                destination=by_name[copy.destination],
                location=copy.location,
                manifest_location=copy.manifest_location,
                bytes_stored=copy.bytes_stored,
                storage_class=copy.storage_class,
                ok=True,
            )
            run.append_log(f"stored at {copy.destination}: {copy.location}")
        else:
            run.append_log(f"not stored at {copy.destination}: {redact(copy.error, secrets)}")
    error = redact(result.error or "", secrets)
    if result.status == "partial" and not error:
        error = "; ".join(
            f"{c.destination}: {redact(c.error, secrets)}" for c in result.copies if not c.ok
        )
    status = {
        "succeeded": RunStatus.SUCCEEDED,
        "partial": RunStatus.PARTIAL,
    }.get(result.status, RunStatus.FAILED)
    if result.cancelled:
        status = RunStatus.CANCELLED
    if status == RunStatus.FAILED and not error:
        error = "backup failed"
    ratio = round(result.bytes_read / result.bytes_stored, 3) if result.bytes_stored else None
    if error:
        run.append_log(error)
    run.append_log(f"{status}: read {result.bytes_read} bytes, stored {result.bytes_stored} bytes")
    run.finish(
        status,
        error,
        bytes_read=result.bytes_read,
        bytes_stored=result.bytes_stored,
        compression_ratio=ratio,
        sha256=result.sha256 or "",
        data_taken_at=result.data_taken_at,
        manifest=_jsonable(result.manifest),
        artifact_key=run.artifact_key,
    )


def _scratch_dir(run: BackupRun):
    """Per run, so what a dead worker left (a SQLite snapshot) can be found and removed."""
    path = settings.VAR_DIR / "scratch" / f"backup-run-{run.pk}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def discard_partial_artifacts(run: BackupRun) -> list[str]:
    """After a worker died mid-run (the reaper): remove what its engine could not clean up.

    Temporary files at local destinations, open multipart uploads in S3, and the scratch
    copy when the dead worker ran on this host. Best effort: every problem is logged.
    """
    from backups.engine import open_destination

    if run.job is None or run.started is None:
        return []
    key = artifact_key(run)
    stored = set(run.copies.filter(ok=True).values_list("destination_id", flat=True))
    removed: list[str] = []
    for destination in run.job.destinations.all():
        if destination.pk in stored:
            continue
        try:
            removed += open_destination(destination.to_spec()).discard_partial(key)
        except Exception as exc:
            log.warning(
                "%s: leftovers at %s not removed: %s",
                run,
                destination.name,
                redact(str(exc), destination.secret_values()),
            )
    host = run.worker.rpartition(":")[0]
    scratch = settings.VAR_DIR / "scratch" / f"backup-run-{run.pk}"
    if host == socket.gethostname() and scratch.exists():
        shutil.rmtree(scratch, ignore_errors=True)
        removed.append(str(scratch))
    if removed:
        run.append_log(f"removed what the lost worker left: {', '.join(removed)}")
    return removed


def _jsonable(value):
    import json

    return json.loads(json.dumps(value or {}, default=str))


def _retention_after(run: BackupRun):
    from backups import retention

    if run.source_id is None:
        return
    destination_ids = run.copies.values_list("destination_id", flat=True)
    try:
        for destination in Destination.objects.filter(pk__in=destination_ids):
            retention.apply(destination, source_ids=[run.source_id])
    except Exception:
        log.exception("retention after %s failed; the daily run will try again", run)


def backup_now(job: BackupJob, user=None) -> BackupRun:
    """The foreground path (manage.py backup_now): same execute() as the task."""
    run = start_run(job, Trigger.COMMAND, user)
    return execute(run)
