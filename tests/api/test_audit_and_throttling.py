"""Every write, refusal and failed sign-in is in the audit log (reads are logged, not
audited); a token over its rate gets 429; an address that keeps failing sign-ins gets 429
without a lookup and stops filling the audit log."""

import logging

import pytest

from api import calls
from api.throttling import CallThrottle
from dr_portal.models import AuditEntry
from tests.api.conftest import Api, token_for
from tests.factories import BackupJobFactory

pytestmark = pytest.mark.django_db


def test_a_write_is_audited_with_the_token_prefix_method_path_and_status(api_as, operator):
    job = BackupJobFactory()
    api = api_as(operator)
    prefix = operator.api_tokens.get().prefix
    api.post(f"/api/v1/jobs/{job.pk}/run/")
    entry = AuditEntry.objects.get(action="API POST")
    assert entry.detail == f"POST /api/v1/jobs/{job.pk}/run/ -> 202 (token {prefix}…)"
    assert entry.actor == operator and entry.source == "api"
    assert entry.actor_name == f"otto (token {prefix}…)"
    assert entry.address == "127.0.0.1"


def test_reads_are_logged_not_audited(api_as, viewer, caplog):
    api = api_as(viewer)
    before = AuditEntry.objects.count()
    with caplog.at_level(logging.INFO, logger="dr_portal.api"):
        assert api.get("/api/v1/sources/").status_code == 200
    assert AuditEntry.objects.count() == before
    assert any("GET /api/v1/sources/ -> 200" in r.getMessage() for r in caplog.records)


def test_failed_sign_in_and_refusals_are_audited(api_as, viewer, client):
    client.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer drp_notatokenatall")
    refused = AuditEntry.objects.get(action="API sign-in refused")
    assert refused.detail == "GET /api/v1/me/ -> 401 (token drp_notatoke…)"
    assert refused.actor is None
    job = BackupJobFactory()
    api_as(viewer).post(f"/api/v1/jobs/{job.pk}/run/")
    denied = AuditEntry.objects.get(action="API call refused")
    assert denied.actor == viewer and "-> 403" in denied.detail


def test_a_token_over_its_rate_gets_429_and_another_token_does_not(operator, viewer, monkeypatch):
    monkeypatch.setattr(CallThrottle, "THROTTLE_RATES", {"call": "3/minute", "write": "1/minute"})
    api = Api(token_for(operator))
    codes = [api.get("/api/v1/systems/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = api.get("/api/v1/systems/")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert AuditEntry.objects.filter(action="API call throttled").exists()
    assert Api(token_for(viewer)).get("/api/v1/systems/").status_code == 200


def test_writes_have_their_own_smaller_budget(operator, monkeypatch):
    monkeypatch.setattr(CallThrottle, "THROTTLE_RATES", {"call": "100/minute", "write": "1/minute"})
    job = BackupJobFactory()
    api = Api(token_for(operator))
    assert api.post(f"/api/v1/jobs/{job.pk}/run/").status_code == 202
    assert api.post(f"/api/v1/jobs/{job.pk}/run/").status_code == 429
    assert api.get("/api/v1/jobs/").status_code == 200


def test_repeated_failed_sign_ins_are_cut_off_and_stop_filling_the_audit_log(
    db, client, monkeypatch, operator
):
    monkeypatch.setattr(calls, "FAILED_AUTH_LIMIT", 3)
    codes = [
        client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer drp_bad{i}").status_code
        for i in range(6)
    ]
    assert codes[:3] == [401, 401, 401] and set(codes[3:]) == {429}
    assert AuditEntry.objects.filter(action="API sign-in refused").count() == 3
    # Even a good token waits out the minute from that address: no lookup at all.
    assert Api(token_for(operator)).get("/api/v1/me/").status_code == 429
