"""Health probes: live always answers; ready reports each check, 503 when one fails.

Anonymous callers see ok/not-ok per check; a logged-in viewer also sees the details.
"""

import json

import pytest
from django.db import connection

from dr_portal import health
from tests.support.cluster import running_cluster, stop, wait_for


@pytest.fixture(autouse=True)
def fresh_ready_cache():
    """/health/ready is cached for a few seconds: each test starts without that cache."""
    from django.core.cache import cache

    yield
    try:
        cache.delete(health.READY_CACHE_KEY)
    except Exception:  # noqa: S110 - no database in this test, nothing was cached
        pass


def ready(client):
    response = client.get("/health/ready")
    return response.status_code, json.loads(response.content)


def test_live_is_ok_without_login(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}


@pytest.mark.django_db
def test_ready_is_503_without_a_worker_and_names_the_check(client):
    status, body = ready(client)
    assert status == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["workers"]["ok"] is False


@pytest.mark.django_db
def test_ready_reports_a_broken_database_without_a_traceback(client, monkeypatch):
    def broken():
        raise connection.Database.OperationalError("password=hunter2 could not connect")

    monkeypatch.setitem(health.CORE_CHECKS, "database", broken)
    status, body = ready(client)
    assert status == 503
    assert body["checks"]["database"] == {"ok": False}  # anonymous: no detail at all
    assert "hunter2" not in json.dumps(body)


@pytest.mark.django_db
def test_a_viewer_sees_the_details_but_never_the_exception_text(viewer_client, monkeypatch):
    def broken():
        raise connection.Database.OperationalError("password=hunter2 could not connect")

    monkeypatch.setitem(health.CORE_CHECKS, "database", broken)
    status, body = ready(viewer_client)
    assert status == 503
    assert body["checks"]["database"] == {"ok": False, "detail": "OperationalError"}
    assert "hunter2" not in json.dumps(body)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ready_follows_a_real_worker_starting_and_stopping(viewer_client, settings):
    client = viewer_client
    settings.DR_WORKER_WINDOW_S = 4
    with running_cluster(workers=1) as proc:
        wait_for(lambda: ready(client)[0] == 200, timeout=60, message="ready with a worker")
        status, body = ready(client)
        assert body["checks"]["workers"]["ok"] is True
        stop(proc)
        wait_for(
            lambda: ready(client)[0] == 503, timeout=30, message="503 after the worker stopped"
        )
    assert "no worker seen" in ready(client)[1]["checks"]["workers"]["detail"]
