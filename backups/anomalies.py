"""Flag runs that look wrong against the job's own recent history.

A backup that shrank by half "succeeded" as far as the tools can tell; it is still a warning.
Pure functions over numbers, plus `detect(run)` that reads the history and stores the flags.
"""

from dataclasses import dataclass
from statistics import median

from backups.models import BackupRun
from dr_portal.runs import RunStatus

HISTORY = 10  # good runs the baseline is computed from
MIN_HISTORY = 3  # fewer than this and there is no baseline to speak of
SHRANK_BELOW = 0.5  # stored size under 50% of the median
GREW_ABOVE = 3.0  # stored size over 3x the median
SLOW_ABOVE = 3.0  # duration over 3x the median
FAST_BELOW = 0.2  # duration under 20% of the median (and the size shrank too, or tiny)
FAILURES_IN_A_ROW = 3


@dataclass(frozen=True)
class Sample:
    bytes_stored: int
    seconds: float


def _pct(value: float) -> int:
    return round(value * 100)


def assess(current: Sample, history: list[Sample]) -> list[dict]:
    """Anomalies of `current` against good runs of the same job (newest first)."""
    found = []
    if len(history) < MIN_HISTORY:
        return found
    size = median(s.bytes_stored for s in history)
    secs = median(s.seconds for s in history)
    if size > 0:
        ratio = current.bytes_stored / size
        if ratio < SHRANK_BELOW:
            found.append(
                {
                    "kind": "size_shrank",
                    "severity": "warning",
                    "message": f"stored size shrank by {_pct(1 - ratio)}% against the median of the "
                    f"last {len(history)} good runs",
                }
            )
        elif ratio > GREW_ABOVE:
            found.append(
                {
                    "kind": "size_grew",
                    "severity": "warning",
                    "message": f"stored size grew {ratio:.1f}x against the median of the last "
                    f"{len(history)} good runs",
                }
            )
    if secs >= 1:
        ratio = current.seconds / secs
        if ratio > SLOW_ABOVE:
            found.append(
                {
                    "kind": "slow",
                    "severity": "warning",
                    "message": f"took {ratio:.1f}x the median duration of the last {len(history)} good runs",
                }
            )
        elif ratio < FAST_BELOW:
            found.append(
                {
                    "kind": "fast",
                    "severity": "warning",
                    "message": f"finished suspiciously fast: {_pct(ratio)}% of the median duration",
                }
            )
    return found


def repeated_failures(statuses: list[str]) -> dict | None:
    """statuses newest first; flag FAILURES_IN_A_ROW or more failures ending now."""
    streak = 0
    for status in statuses:
        if status != "failed":
            break
        streak += 1
    if streak >= FAILURES_IN_A_ROW:
        return {
            "kind": "repeated_failures",
            "severity": "error",
            "message": f"{streak} failed runs in a row",
        }
    return None


def detect(run) -> list[dict]:
    """Compute and store the anomalies of a finished run; return them."""
    if run.job_id is None:
        return []
    found = []
    recent = list(
        BackupRun.objects.filter(job_id=run.job_id, finished__isnull=False)
        .exclude(status=RunStatus.CANCELLED)
        .filter(queued__lte=run.queued)
        .order_by("-queued", "-pk")
        .values_list("status", flat=True)[:20]
    )
    streak = repeated_failures(recent)
    if streak:
        found.append(streak)
    if run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL) and run.started and run.finished:
        history = [
            Sample(b, (f - s).total_seconds())
            for b, s, f in BackupRun.objects.filter(
                job_id=run.job_id,
                status=RunStatus.SUCCEEDED,
                started__isnull=False,
                finished__isnull=False,
            )
            .exclude(pk=run.pk)
            .filter(queued__lt=run.queued)
            .order_by("-queued")
            .values_list("bytes_stored", "started", "finished")[:HISTORY]
        ]
        current = Sample(run.bytes_stored, (run.finished - run.started).total_seconds())
        found.extend(assess(current, history))
    BackupRun.objects.filter(pk=run.pk).update(anomalies=found)
    run.anomalies = found
    return found
