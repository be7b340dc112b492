"""What happens when a backup run finishes: anomalies and alerts (one per condition until it clears).

Alerts go through incidents.alerts when that app provides it; a missing or failing
alert module never breaks a backup.
"""

import logging

from dr_portal.runs import RunStatus

log = logging.getLogger(__name__)


def _alerts():
    try:
        from incidents import alerts
    except ImportError:
        return None
    if not hasattr(alerts, "alert") or not hasattr(alerts, "recover"):
        return None
    return alerts


def _raise(key, kind, title, detail="", url=""):
    alerts = _alerts()
    if alerts is None:
        log.warning("alert %s: %s %s", key, title, detail)
        return
    try:
        alerts.alert(key, kind, title, detail=detail, url=url)
    except Exception:
        log.exception("could not raise alert %s", key)


def _recover(key, title=""):
    alerts = _alerts()
    if alerts is None:
        return
    try:
        alerts.recover(key, title=title)
    except Exception:
        log.exception("could not clear alert %s", key)


def after_finish(run):
    """Called from BackupRun.on_finished (task, command and reaper alike)."""
    from backups import anomalies

    if run.status == RunStatus.CANCELLED:
        return
    try:
        found = anomalies.detect(run)
    except Exception:
        log.exception("anomaly detection failed for %s", run)
        found = []
    name = run.job_name or run.source_name
    url = run.get_absolute_url()
    key = f"backup:{run.job_id or run.source_name}"
    if run.status == RunStatus.FAILED:
        _raise(key, "backup_failed", f"Backup {name} failed", run.error, url)
    elif run.status == RunStatus.PARTIAL:
        _raise(key, "backup_partial", f"Backup {name} partly failed", run.error, url)
    else:
        _recover(key, f"Backup {name} succeeded again")
    anomaly_key = f"backup-anomaly:{run.job_id or run.source_name}"
    warnings = [a for a in found if a.get("kind") != "repeated_failures"]
    if warnings:
        detail = "; ".join(a["message"] for a in warnings)
        _raise(anomaly_key, "backup_anomaly", f"Backup {name} looks unusual", detail, url)
    elif run.status == RunStatus.SUCCEEDED:
        _recover(anomaly_key, f"Backup {name} looks normal again")
