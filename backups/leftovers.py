"""What a backup run leaves behind and where its artifact goes; read by the run's own
on_lost (the reaper) and by backups.services, so it imports no models."""

import logging
import shutil
import socket

from django.conf import settings
from django.utils import timezone

from backups.engine import open_destination
from dr_portal.lib.redact import redact

log = logging.getLogger(__name__)


def artifact_key(run) -> str:
    stamp = (run.started or timezone.now()).strftime("%Y%m%dT%H%M%SZ")
    return f"{run.source_name}/{stamp}-run{run.pk}"


def discard_partial_artifacts(run) -> list[str]:
    """After a worker died mid-run (the reaper): remove what its engine could not clean up.

    Temporary files at local destinations, open multipart uploads in S3, and the scratch
    copy when the dead worker ran on this host. Best effort: every problem is logged.
    """
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
