"""/metrics in the Prometheus text exposition format (version 0.0.4), and who may read it.

Access: a bearer token (DR_METRICS_TOKEN, compared in constant time) or a client address in
DR_METRICS_ALLOW (comma-separated addresses or CIDR networks, e.g. 127.0.0.1/32). With
neither configured the endpoint answers 403: it is never open by accident. The allow-list
checks REMOTE_ADDR only — behind a proxy use the token, since forwarded headers can be forged.
"""

import hmac
import ipaddress
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from backups.models import BackupRun, Source
from dr_portal.lib.queue import worker_last_seen
from dr_portal.runs import ACTIVE, DONE, RunStatus
from recovery import readiness
from recovery.failover import lag as failover_lag
from recovery.failover import proof as failover_readiness
from recovery.models import RestoreTest

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VERDICT_VALUE = {"ok": 0, "at_risk": 1, "breached": 2}
RUN_WINDOW = timedelta(hours=24)


# --- access ---------------------------------------------------------------------------------


def allowed_networks() -> list:
    networks = []
    for entry in getattr(settings, "DR_METRICS_ALLOW", []) or []:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            log.error("DR_METRICS_ALLOW: %r is not an address or network; ignored", entry)
    return networks


def check_access(request) -> int:
    """0 when the request may read metrics, else the HTTP status to answer (401 or 403)."""
    token = getattr(settings, "DR_METRICS_TOKEN", "") or ""
    networks = allowed_networks()
    if not token and not networks:
        return 403
    if networks:
        try:
            address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            address = None
        if address is not None and any(address in net for net in networks):
            return 0
    if token:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return 0
        return 401
    return 403


# --- exposition -------------------------------------------------------------------------------


def escape_label(value) -> str:
    """Label values: backslash, double quote and line feed escaped, as the format says."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class Exposition:
    """Collects metric families; each family's HELP and TYPE are written once, before its samples."""

    def __init__(self):
        self.families: dict[str, dict] = {}

    def add(self, metric, mtype, help_text, value, labels=None):
        family = self.families.setdefault(metric, {"type": mtype, "help": help_text, "samples": []})
        family["samples"].append((labels or {}, value))

    def render(self) -> str:
        lines = []
        # Every gauge of a source shares one labels dict: escaped once, not once per gauge.
        escaped: dict[int, str] = {}
        for name, family in self.families.items():
            help_text = family["help"].replace("\\", "\\\\").replace("\n", "\\n")
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {family['type']}")
            for labels, value in family["samples"]:
                label_text = escaped.get(id(labels))
                if label_text is None:
                    label_text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
                    escaped[id(labels)] = label_text
                lines.append(
                    f"{name}{{{label_text}}} {_number(value)}"
                    if label_text
                    else f"{name} {_number(value)}"
                )
        return "\n".join(lines) + "\n"


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _test_duration(test: dict | None) -> float | None:
    if test and test["started"] and test["finished"]:
        return (test["finished"] - test["started"]).total_seconds()
    return None


# Per source: (metric, help, value from its readiness `r` and its newest finished test row).
SOURCE_GAUGES = [
    (
        "dr_last_good_backup_timestamp_seconds",
        "Data timestamp of the newest good backup with an intact copy (Unix time).",
        lambda r, test: r.newest_backup_at.timestamp() if r.newest_backup_at else None,
    ),
    (
        "dr_rpo_seconds",
        "RPO now: seconds since the data of the newest good backup.",
        lambda r, test: _seconds(r.rpo_now),
    ),
    (
        "dr_rpo_target_seconds",
        "RPO target of the source's data class.",
        lambda r, test: r.rpo_target.total_seconds() if r.rpo_target else None,
    ),
    (
        "dr_verified_rpo_seconds",
        "Verified RPO: seconds since the data proven by the newest passed, still valid restore test.",
        lambda r, test: _seconds(r.verified_rpo),
    ),
    (
        "dr_last_restore_test_success",
        "1 if the newest finished restore test passed, 0 if it failed or was partial; NaN if none.",
        lambda r, test: None if not r.last_test_id else r.last_test_status == RunStatus.SUCCEEDED,
    ),
    (
        "dr_last_restore_test_duration_seconds",
        "Wall time of the newest finished restore test.",
        lambda r, test: _test_duration(test),
    ),
    (
        "dr_last_restore_test_timestamp_seconds",
        "When the newest finished restore test finished (Unix time).",
        lambda r, test: test["finished"].timestamp() if test and test["finished"] else None,
    ),
    (
        "dr_rto_seconds",
        "Measured RTO: wall time of the newest passed, still valid restore test.",
        lambda r, test: _seconds(r.last_rto),
    ),
    (
        "dr_rto_target_seconds",
        "RTO target a restore from backup must meet.",
        lambda r, test: r.rto_target.total_seconds() if r.rto_target else None,
    ),
    (
        "dr_rto_forecast_seconds",
        "Newest backup size divided by the measured restore throughput.",
        lambda r, test: _seconds(r.rto_forecast),
    ),
    (
        "dr_readiness_verdict",
        "Readiness of the source as dr_status reports it: 0 ok, 1 at risk, 2 breached.",
        lambda r, test: VERDICT_VALUE[r.verdict],
    ),
]


# Per PITR source: (metric, help, value from its readiness `r`).
PITR_GAUGES = [
    (
        "dr_pitr_recoverable_from_seconds",
        "Oldest point a PITR source can be restored to: its oldest base backup's end (Unix time).",
        lambda r: r.recoverable_from.timestamp() if r.recoverable_from else None,
    ),
    (
        "dr_pitr_recoverable_to_seconds",
        "Newest point a PITR source can be restored to: end of its newest archived WAL "
        "segment (Unix time).",
        lambda r: r.recoverable_to.timestamp() if r.recoverable_to else None,
    ),
    (
        "dr_pitr_wal_gap",
        "1 if a WAL segment is missing from a PITR source's archive, 0 if not; NaN while its "
        "window has not been read.",
        lambda r: None if r.window_checked_at is None or r.window_error else r.wal_gap,
    ),
]


def _add_sources(out: Exposition, now) -> None:
    """The per-source gauges and the overall verdict, from recovery.readiness."""
    # The secrets and check lists are not reported: not loaded (nor decrypted) either.
    sources = list(
        Source.objects.select_related("system")
        .defer("password", "exclude", "checks")
        .order_by("name")
    )
    ready = readiness.source_readiness(sources, now=now)
    last_ids = [r.last_test_id for r in ready.values() if r.last_test_id]
    last_tests = {
        row["pk"]: row
        for row in RestoreTest.objects.filter(pk__in=last_ids).values("pk", "started", "finished")
    }
    for source in sources:
        r = ready[source.pk]
        labels = {
            "source": source.name,
            "system": source.system.name,
            "data_class": source.data_class,
        }
        test = last_tests.get(r.last_test_id)
        for metric, help_text, value in SOURCE_GAUGES:
            out.add(metric, "gauge", help_text, value(r, test), labels)
        if r.pitr:
            for metric, help_text, value in PITR_GAUGES:
                out.add(metric, "gauge", help_text, value(r), labels)
    out.add(
        "dr_readiness_overall",
        "gauge",
        "Worst readiness verdict over all sources: 0 ok, 1 at risk, 2 breached.",
        VERDICT_VALUE[readiness.overall(ready)],
    )


def _count_by_status(queryset) -> dict[str, int]:
    return dict(queryset.values_list("status").annotate(n=Count("pk")).order_by())


def _add_runs(out: Exposition, now) -> None:
    """Runs finished in the last 24 hours and runs active now, by kind and status.

    Counted over a window (index status, -finished), not over the whole history: a scrape
    must cost the same with a million runs. Active runs have no finish time: counted apart.
    """
    since = now - RUN_WINDOW
    for kind, model in (("backup", BackupRun), ("restore_test", RestoreTest)):
        finished = _count_by_status(
            model.objects.filter(status__in=list(DONE), finished__gte=since)
        )
        active = _count_by_status(model.objects.filter(status__in=list(ACTIVE)))
        for status in RunStatus.values:
            labels = {"kind": kind, "status": status}
            if status in DONE:
                out.add(
                    "dr_runs_finished_24h",
                    "gauge",
                    "Runs that finished in the last 24 hours, by kind and final status.",
                    finished.get(status, 0),
                    labels,
                )
            else:
                out.add(
                    "dr_runs_active",
                    "gauge",
                    "Runs queued or running now, by kind and status.",
                    active.get(status, 0),
                    labels,
                )


def _add_failover(out: Exposition, now) -> None:
    """Failover readiness per system (recovery.failover.proof, as on the dashboard)."""
    states = ", ".join(f"{v} {k}" for k, v in failover_readiness.STATE_VALUE.items())
    for ready in failover_readiness.system_readiness(now=now):
        labels = {"system": ready.system}
        last = ready.last
        out.add(
            "dr_failover_readiness",
            "gauge",
            f"Failover readiness of a system (its least ready runbook): {states}.",
            failover_readiness.STATE_VALUE[ready.state],
            labels,
        )
        out.add(
            "dr_failover_last_proven_timestamp_seconds",
            "gauge",
            "When the newest run proving one of the system's runbooks finished (Unix time); "
            "NaN if none.",
            last.finished.timestamp() if last else None,
            labels,
        )
        out.add(
            "dr_failover_last_proven_live",
            "gauge",
            "1 if that run was live, 0 if it was a test run; NaN if none.",
            (last.mode == "live") if last else None,
            labels,
        )
        out.add(
            "dr_failover_last_rto_met",
            "gauge",
            "1 if that run met its RTO target, 0 if it missed it; NaN if none or not measured.",
            {"met": True, "missed": False}.get(last.verdict) if last else None,
            labels,
        )
        out.add(
            "dr_failover_last_data_lost_seconds",
            "gauge",
            "Data lost at promotion in that run (declared failure − newest heartbeat); NaN "
            "if not measured.",
            _seconds(last.rpo) if last else None,
            labels,
        )


def _add_lag(out: Exposition) -> None:
    """The newest replication lag sample of each registered standby (recovery.failover.lag)."""
    seen = set()
    for sample in failover_lag.newest_per_standby():
        runbook = sample.runbook
        labels = {"system": runbook.system.name, "runbook": runbook.name, "standby": sample.standby}
        key = tuple(labels.values())
        if key in seen:  # two samples at the same instant: the newest row counts
            continue
        seen.add(key)
        out.add(
            "dr_replication_lag_bytes",
            "gauge",
            "WAL bytes a registered standby is behind, at its newest sample; NaN if not "
            "measurable.",
            sample.lag_bytes,
            labels,
        )
        out.add(
            "dr_replication_lag_seconds",
            "gauge",
            "Seconds a registered standby's replay is behind, at its newest sample; NaN if not "
            "measurable.",
            sample.lag_seconds,
            labels,
        )
        out.add(
            "dr_replication_lag_sampled_timestamp_seconds",
            "gauge",
            "When that sample was taken (Unix time).",
            sample.sampled_at.timestamp(),
            labels,
        )


def _add_worker(out: Exposition) -> None:
    seen = worker_last_seen()
    out.add(
        "dr_worker_last_seen_timestamp_seconds",
        "gauge",
        "When a django-q2 worker cluster was last seen (Unix time); NaN if never.",
        seen,
    )
    out.add(
        "dr_worker_heartbeat_age_seconds",
        "gauge",
        "Seconds since a worker cluster was last seen; NaN if never.",
        None if seen is None else max(0.0, time.time() - seen),
    )


def collect(now=None) -> str:
    """Every metric, from recovery.readiness (the dashboard's and dr_status's figures)."""
    out = Exposition()
    now = now or timezone.now()
    _add_sources(out, now)
    _add_runs(out, now)
    _add_failover(out, now)
    _add_lag(out)
    _add_worker(out)
    return out.render()
