"""Pings per job (healthchecks.io-compatible) to a real HTTP server on loopback."""

import socket

import pytest
from django.urls import reverse

from backups import pings, services, tasks
from backups.forms import JobForm
from dr_portal.runs import RunStatus
from tests.failover.servers import start_http_server

TOKEN = "0f1e2d3c-4b5a-6978-8899-aabbccddeeff"


@pytest.fixture
def server(settings, monkeypatch):
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.1"]  # the ping receiver listens on loopback
    monkeypatch.setattr(pings, "RETRY_PAUSE_S", 0)
    srv = start_http_server()
    yield srv
    srv.shutdown()
    srv.server_close()


def _run(job):
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    return run


def _paths(server):
    return [(method, path) for method, path, _headers, _body in server.recorder.requests]


def test_a_good_run_pings_start_then_success(job, server):
    job.ping_url = f"{server.url}/ping/{TOKEN}"
    job.save()
    run = _run(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert _paths(server) == [("POST", f"/ping/{TOKEN}/start"), ("POST", f"/ping/{TOKEN}")]
    assert run.ping_outcome == "start: HTTP 200; success: HTTP 200"


def test_a_failed_run_pings_fail_with_its_error(job, server, sqlite_path):
    job.ping_url = f"{server.url}/ping/{TOKEN}/"  # a trailing slash is not doubled
    job.save()
    sqlite_path.unlink()
    run = _run(job)
    assert run.status == RunStatus.FAILED
    assert _paths(server) == [("POST", f"/ping/{TOKEN}/start"), ("POST", f"/ping/{TOKEN}/fail")]
    body = server.recorder.requests[-1][3].decode()
    assert f"backup run #{run.pk}" in body and "failed" in body
    assert run.error[:50] in body
    assert run.ping_outcome.endswith("fail: HTTP 200")


def test_a_ping_answered_500_is_retried_once(job, server):
    job.ping_url = f"{server.url}/ping/{TOKEN}"
    job.save()
    server.recorder.script = [(500, "oops", 0), (200, "ok", 0)]
    run = _run(job)
    assert _paths(server)[:2] == [("POST", f"/ping/{TOKEN}/start")] * 2
    assert run.ping_outcome.startswith("start: HTTP 200;")


def test_an_unreachable_ping_service_never_fails_the_backup(job, settings, monkeypatch, caplog):
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.1"]
    monkeypatch.setattr(pings, "RETRY_PAUSE_S", 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    job.ping_url = f"http://127.0.0.1:{port}/ping/{TOKEN}"
    job.save()
    run = _run(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "start: ConnectionRefusedError" in run.ping_outcome
    assert "(after 2 attempts)" in run.ping_outcome
    assert TOKEN not in run.ping_outcome and TOKEN not in run.log
    assert TOKEN not in caplog.text
    assert f"127.0.0.1:{port}/…" in caplog.text  # the log names the masked URL


def test_an_internal_address_is_refused_by_the_guard_at_run_time(job, settings):
    settings.DR_OUTBOUND_ALLOW = []
    job.ping_url = f"http://127.0.0.1:9/ping/{TOKEN}"
    job.save()  # saved behind the form's back (the form refuses it, below)
    run = _run(job)
    assert run.status == RunStatus.SUCCEEDED
    assert "start: refused: 127.0.0.1 is a loopback address" in run.ping_outcome


def test_the_form_refuses_a_loopback_or_non_http_ping_url(job, settings):
    settings.DR_OUTBOUND_ALLOW = []
    for url, message in [
        (f"http://127.0.0.1/ping/{TOKEN}", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        (f"file:///etc/passwd/{TOKEN}", "only http:// and https://"),
    ]:
        data = {
            "name": job.name,
            "source": job.source_id,
            "destinations": [d.pk for d in job.destinations.all()],
            "timezone": "UTC",
            "compression": "zstd",
            "encrypt": "on",
            "enabled": "on",
            "ping_url": url,
        }
        form = JobForm(data, instance=job)
        assert not form.is_valid()
        assert message in str(form.errors["ping_url"])


def test_viewers_see_the_ping_url_masked(job, viewer_client):
    job.ping_url = f"https://hc-ping.example.org/{TOKEN}"
    job.save()
    page = viewer_client.get(reverse("backups:job_detail", args=[job.pk])).content.decode()
    assert "https://hc-ping.example.org/…" in page
    assert TOKEN not in page


def test_signal_url_keeps_a_query_at_the_end():
    url = "https://hc-ping.com/ping/key/slug?create=1"
    assert pings.signal_url(url, "start") == "https://hc-ping.com/ping/key/slug/start?create=1"
    assert pings.signal_url(url, "success") == "https://hc-ping.com/ping/key/slug?create=1"


def test_the_run_page_shows_what_the_ping_answered_never_the_url(job, server, viewer_client):
    job.ping_url = f"{server.url}/ping/{TOKEN}"
    job.save()
    run = _run(job)
    page = viewer_client.get(reverse("backups:run_detail", args=[run.pk])).content.decode()
    assert "Ping: start: HTTP 200; success: HTTP 200" in page
    assert TOKEN not in page
