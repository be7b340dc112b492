"""Readiness checks for /health/ready and monitoring. Each returns (ok, detail) with no secrets."""

import importlib
import logging
import time

from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

log = logging.getLogger(__name__)
WORKER_SEEN_KEY = "dr:worker-last-seen"
WORKER_WINDOW_S = 60


def check_database():
    connection.ensure_connection()
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        return False, f"{len(pending)} migrations not applied"
    return True, f"{connection.vendor} reachable, migrations applied"


def check_broker():
    from django_q.brokers import get_broker

    broker = get_broker()
    broker.queue_size()
    return True, f"{broker.info()} reachable"


def worker_last_seen() -> float | None:
    """Epoch seconds a django-q2 cluster was last seen (cluster stats expire after seconds)."""
    from django_q.status import Stat

    if Stat.get_all():
        now = time.time()
        cache.set(WORKER_SEEN_KEY, now, None)
        return now
    return cache.get(WORKER_SEEN_KEY)


def check_workers():
    seen = worker_last_seen()
    if seen is None:
        return False, "no worker cluster has been seen"
    age = time.time() - seen
    if age > WORKER_WINDOW_S:
        return False, f"no worker seen for {int(age)} s"
    return True, f"worker seen {int(age)} s ago"


CORE_CHECKS = {"database": check_database, "broker": check_broker, "workers": check_workers}


def app_checks():
    """Apps add checks in <app>/health.py as checks() -> {name: (ok, detail)}."""
    results = {}
    for app in ("backups", "recovery", "drills", "incidents"):
        try:
            module = importlib.import_module(f"{app}.health")
        except ModuleNotFoundError:
            continue
        results.update(module.checks())
    return results


def run_checks() -> dict:
    results = {}
    for name, check in CORE_CHECKS.items():
        try:
            ok, detail = check()
        except Exception as exc:  # a check that raises is a failed check, not a 500
            log.warning("health check %s failed: %s", name, exc)
            ok, detail = False, f"{type(exc).__name__}"
        results[name] = {"ok": ok, "detail": detail}
    if results["database"]["ok"]:
        try:
            for name, (ok, detail) in app_checks().items():
                results[name] = {"ok": ok, "detail": detail}
        except Exception as exc:
            log.warning("application health checks failed: %s", exc)
            results["applications"] = {"ok": False, "detail": type(exc).__name__}
    return results
