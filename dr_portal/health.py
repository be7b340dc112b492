"""Health of the portal itself (/health/ready) and reachability of what it talks to.

/health/ready answers load balancers and must stay cheap and anonymous: the portal's own
database, migrations, broker and workers, cached for a few seconds, never a destination.
Destinations and the scratch server are probed only for a logged-in viewer
(/health/destinations), in parallel, with a deadline for the whole page.
"""

import concurrent.futures
import logging
import time

from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_q.brokers import get_broker

from backups import health as backups_health
from dr_portal.lib.queue import worker_last_seen, worker_window_s
from recovery import health as recovery_health

log = logging.getLogger(__name__)
READY_CACHE_KEY = "dr:health:ready"
READY_CACHE_S = 5
# The reachability page waits this long in all for its probes; slower ones say so.
PROBE_DEADLINE_S = 4


def check_database():
    connection.ensure_connection()
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        return False, f"{len(pending)} migrations not applied"
    return True, f"{connection.vendor} reachable, migrations applied"


def check_broker():
    broker = get_broker()
    broker.queue_size()
    return True, f"{broker.info()} reachable"


def check_workers():
    seen = worker_last_seen()
    if seen is None:
        return False, "no worker cluster has been seen"
    age = time.time() - seen
    if age > worker_window_s():
        return False, f"no worker seen for {int(age)} s"
    return True, f"worker seen {int(age)} s ago"


CORE_CHECKS = {"database": check_database, "broker": check_broker, "workers": check_workers}


def run_checks() -> dict:
    """The portal's own checks, uncached: {name: {"ok", "detail"}}."""
    results = {}
    for name, check in CORE_CHECKS.items():
        try:
            ok, detail = check()
        except Exception as exc:  # a check that raises is a failed check, not a 500
            log.warning("health check %s failed: %s", name, exc)
            ok, detail = False, f"{type(exc).__name__}"
        results[name] = {"ok": ok, "detail": detail}
    return results


def ready_checks() -> dict:
    """run_checks(), cached for READY_CACHE_S so a probe storm costs one evaluation."""
    try:
        cached = cache.get(READY_CACHE_KEY)
    except Exception:  # the cache lives in the database, which may be the thing that is down
        cached = None
    if cached is not None:
        return cached
    results = run_checks()
    try:
        cache.set(READY_CACHE_KEY, results, READY_CACHE_S)
    except Exception as exc:
        log.warning("health cache unavailable: %s", type(exc).__name__)
    return results


def public_view(results: dict) -> dict:
    """What an anonymous caller sees: ok or not per check, no details (hosts, counts, names)."""
    return {name: {"ok": c["ok"]} for name, c in results.items()}


def reachability_probes() -> dict:
    """Each app's probes (<app>/health.py: probes() -> {name: callable -> (ok, detail)})."""
    return {**backups_health.probes(), **recovery_health.probes()}


def reachability(deadline_s: float = PROBE_DEADLINE_S) -> dict:
    """Every probe at once in threads; whatever has not answered by the deadline fails.

    A hung endpoint (accepts, never answers) costs this page the deadline, never more,
    and nothing else waits for it.
    """
    results = {}
    try:
        probes = reachability_probes()
    except Exception as exc:
        log.warning("reachability probes failed to load: %s", exc)
        return {"probes": {"ok": False, "detail": type(exc).__name__}}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="reach")
    futures = {pool.submit(probe): name for name, probe in probes.items()}
    done, _ = concurrent.futures.wait(futures, timeout=deadline_s)
    for future, name in futures.items():
        if future not in done:
            results[name] = {"ok": False, "detail": f"no answer within {deadline_s:g} s"}
            continue
        try:
            value = future.result()
        except Exception as exc:
            results[name] = {"ok": False, "detail": type(exc).__name__}
            continue
        if isinstance(value, dict):  # an app's checks(): several results at once
            for sub, (ok, detail) in value.items():
                results[sub] = {"ok": ok, "detail": detail}
        else:
            ok, detail = value
            results[name] = {"ok": ok, "detail": detail}
    pool.shutdown(wait=False, cancel_futures=True)  # stragglers end on their own timeouts
    return dict(sorted(results.items()))
