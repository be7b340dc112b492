"""One code path for a backup: the task, `backup_now` and the portal all end up in execute().

Load the rows, build the engine's specs (secrets revealed only here, never logged),
call the engine, record the copies, finish the run. The engine knows nothing of models.
"""

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django_q.tasks import async_task

from backups import engine, hooks, physical, pings, retention
from backups.engine import open_destination
from backups.globals import backup_globals
from backups.leftovers import artifact_key
from backups.models import GOOD_STATUSES, BackupCopy, BackupJob, BackupRun, Destination, Trigger
from dr_portal.lib import keyring
from dr_portal.lib.redact import redact
from dr_portal.runs import IllegalTransition, LeaseLost, RunStatus

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0  # at most one progress write per second


class JobBusy(Exception):
    """The job already has a queued or running run."""


class SlotTaken(Exception):
    """A run for this schedule slot exists already (a redelivered scheduled task)."""


def start_run(job: BackupJob, trigger: str, user=None, scheduled_for=None) -> BackupRun:
    """Create a queued run unless one of this job is already queued or running."""
    try:
        with transaction.atomic():
            active = job.active_run()
            if active is not None:
                raise JobBusy(f"{job} already has run #{active.pk} {active.status}")
            return job.create_run(trigger, user, scheduled_for=scheduled_for)
    except IntegrityError:
        if scheduled_for is None:
            raise
        raise SlotTaken(f"{job} already has a run for {scheduled_for:%Y-%m-%d %H:%M %Z}") from None


def enqueue_run(run: BackupRun):
    """Queue run_backup(run.pk) after commit and remember django-q2's task id."""

    def send():
        task_id = async_task(
            "backups.tasks.run_backup",
            run.pk,
            group=f"backup job {run.job_id}",
            task_name=f"backup run {run.pk}",
        )
        BackupRun.objects.filter(pk=run.pk).update(task_id=str(task_id or "")[:64])

    transaction.on_commit(send)


def _throttled_progress(run: BackupRun, cancel: threading.Event):
    last = [0.0]

    def progress(phase, bytes_read=0, bytes_stored=0):
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and phase == run.phase:
            return
        last[0] = now
        held = run.beat(phase, bytes_read=int(bytes_read or 0), bytes_stored=int(bytes_stored or 0))
        if not held or run.lease_lost:  # reaped: stop the engine, this run is not ours any more
            cancel.set()
        elif BackupRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
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
    pings.ping_start(run)
    try:
        with run.heartbeat():
            refusal = hooks.run_pre_hooks(run, job)
            if refusal:
                _fail(run, refusal)
            else:
                _backup(run, job, secrets)
    except Exception as exc:
        run.fail_unexpectedly(exc, secrets)
        raise
    finally:
        job.release_lock(run)
        shutil.rmtree(settings.VAR_DIR / "scratch" / f"backup-run-{run.pk}", ignore_errors=True)
        run.refresh_from_db()
        pings.ping_outcome(run)
        hooks.run_post_hooks(run, job)
    if run.status in GOOD_STATUSES:
        _retention_after(run)
    return run


def _fail(run, message):
    run.append_log(message)
    run.finish(RunStatus.FAILED, message)


@dataclass
class _Plan:
    """What one backup reads and writes, resolved from the job before the engine starts."""

    source_spec: engine.SourceSpec
    enabled: list
    dest_specs: list
    options: engine.BackupOptions


def _backup(run: BackupRun, job: BackupJob, secrets: list[str]):
    if job.method == BackupJob.Method.PHYSICAL:
        cancel = threading.Event()
        progress = _throttled_progress(run, cancel)
        physical.run_physical(run, job, secrets, cancel=cancel, progress=lambda p: progress(p))
        return
    plan = _plan(run, job, secrets)
    if plan is None:
        return
    source = job.source
    parallel = plan.source_spec.config.get("parallel") or 1
    run.append_log(
        f"backing up {source.name} ({source.describe()}) to "
        f"{', '.join(d.name for d in plan.enabled)}"
        f"{f' as a parallel dump (pg_dump -Fd -j {parallel})' if parallel > 1 else ''}"
        f" with {job.compression}"
        f"{'' if job.compression_level is None else f' -{job.compression_level}'}"
        f"{', encrypted' if job.encrypt else ', NOT encrypted'}"
    )
    cancel = threading.Event()
    result = engine.run_backup(
        plan.source_spec,
        plan.dest_specs,
        plan.options,
        progress=_throttled_progress(run, cancel),
        cancel=cancel,
    )
    _log_not_backed_up(run, result.warnings)
    status, error = _outcome(run, result, secrets)
    manifest = _jsonable(result.manifest)
    if status in GOOD_STATUSES and plan.source_spec.kind == "postgresql" and source.backup_globals:
        manifest["globals"] = backup_globals(
            run, plan.source_spec, plan.dest_specs, plan.options, secrets
        )
        if manifest["globals"]["error"]:
            status = RunStatus.PARTIAL
            error = "; ".join(e for e in (error, manifest["globals"]["error"]) if e)
    by_name = {d.name: d for d in plan.enabled}
    stored = [c for c in result.copies if c.ok]
    try:
        run.check_lease()  # fencing: a reaped run records nothing, its artifacts go
        _record(run, result, stored, by_name, status, error, manifest)
    except (LeaseLost, IllegalTransition) as exc:
        _abandon(run, stored, by_name, f"{exc}")


def _previous_size(job: BackupJob) -> int | None:
    """Bytes the job's newest artifact took: S3 part sizes plan for it x 1.5 (s3_options)."""
    return (
        job.runs.filter(status__in=GOOD_STATUSES, bytes_stored__gt=0)
        .order_by("-finished")
        .values_list("bytes_stored", flat=True)
        .first()
    )


def _plan(run: BackupRun, job: BackupJob, secrets: list[str]) -> _Plan | None:
    """The specs and options of this backup; None (the run failed, saying why) when unusable."""
    source = job.source
    destinations = list(job.destinations.order_by("name"))
    enabled = [d for d in destinations if d.enabled]
    for d in destinations:
        if not d.enabled:
            run.append_log(f"destination {d.name} is disabled: skipped")
    if not enabled:
        _fail(run, "no enabled destination: nothing to write to")
        return None
    run.beat("preparing")
    try:
        source_spec = source.to_spec()
        if source_spec.kind == "postgresql" and job.parallel > 1:
            source_spec.config["parallel"] = job.parallel
        previous = _previous_size(job)
        dest_specs = [d.to_spec(previous_size=previous) for d in enabled]
        master_keys = keyring.ring() if job.encrypt else []
    except keyring.KeyRingError as exc:
        _fail(run, f"cannot read stored credentials: {exc}")
        return None
    except ValueError as exc:
        _fail(run, str(exc))
        return None
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
    return _Plan(source_spec, enabled, dest_specs, options)


def _log_not_backed_up(run: BackupRun, warnings: list[str]):
    for warning in warnings[:100]:
        run.append_log(f"warning: not backed up: {warning}")
    if len(warnings) > 100:
        run.append_log(f"warning: {len(warnings) - 100} more entries not backed up")


def _outcome(run: BackupRun, result, secrets: list[str]) -> tuple[str, str]:
    """The run's status and error from the engine's result, secrets redacted."""
    for copy in result.copies:
        if not copy.ok:
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
    return status, error


def _record(run: BackupRun, result, stored, by_name, status: str, error: str, manifest: dict):
    """The copies and the run's end in one transaction: the catalog never holds copies of a
    run that did not finish, nor a finished run without the copies it stored."""
    # "Stored" is what the run kept: a run that kept no copy (cancelled, failed) stored nothing.
    kept_bytes = result.bytes_stored if stored else 0
    ratio = round(result.bytes_read / kept_bytes, 3) if kept_bytes else None
    with transaction.atomic():
        for copy in stored:
            BackupCopy.objects.create(
                run=run,
                destination=by_name[copy.destination],
                location=copy.location,
                manifest_location=copy.manifest_location,
                bytes_stored=copy.bytes_stored,
                storage_class=copy.storage_class,
                locked_until=copy.locked_until,
                ok=True,
            )
        lines = [f"stored at {c.destination}: {c.location}" for c in stored]
        if error:
            lines.append(error)
        lines.append(f"{status}: read {result.bytes_read} bytes, stored {kept_bytes} bytes")
        for line in lines:
            run.append_log(line)
        run.finish(
            status,
            error,
            only_if=Q(worker=run.worker),
            bytes_read=result.bytes_read,
            bytes_stored=kept_bytes,
            compression_ratio=ratio,
            sha256=result.sha256 or "",
            data_taken_at=result.data_taken_at,
            manifest=manifest,
            artifact_key=run.artifact_key,
        )


def _abandon(run: BackupRun, stored, by_name, why: str):
    """This worker lost the run (reaped) after its engine published artifacts: nothing is
    recorded, and the artifacts are removed so no sweep adopts a run that was declared failed."""
    removed = []
    for copy in stored:
        destination = by_name[copy.destination]
        try:
            store = open_destination(destination.to_spec())
            store.delete(copy.location)
            if copy.manifest_location:
                store.delete(copy.manifest_location)
            removed.append(f"{destination.name}: {copy.location}")
        except Exception as exc:
            log.warning(
                "%s: artifact at %s not removed: %s",
                run,
                destination.name,
                redact(str(exc), destination.secret_values()),
            )
    log.warning("%s lost its lease, nothing recorded (%s); removed %s", run, why, removed)
    run.append_log(
        "lost the run to the reaper: nothing recorded"
        + (f"; removed {', '.join(removed)}" if removed else "")
    )


def _scratch_dir(run: BackupRun):
    """Per run, so what a dead worker left (a SQLite snapshot) can be found and removed."""
    path = settings.VAR_DIR / "scratch" / f"backup-run-{run.pk}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _jsonable(value):
    return json.loads(json.dumps(value or {}, default=str))


def _retention_after(run: BackupRun):
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
