"""API tokens: created in the portal and shown once, stored hashed, expiring, revocable,
capped at a role ceiling that follows the user's current role."""

import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from api.models import ApiToken
from dr_portal.models import AuditEntry
from tests.api.conftest import Api, token_for
from tests.factories import BackupJobFactory

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"


def test_the_portal_page_shows_a_new_token_once_and_stores_only_its_hash(operator_client):
    response = operator_client.post(
        reverse("api_tokens"), {"name": "terraform", "role": "operator", "days": 90}
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    raw = response.context["created"]
    assert raw.startswith("drp_") and len(raw) > 40
    assert raw in response.content.decode()
    token = ApiToken.objects.get()
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:12] and raw not in {token.digest, token.prefix, token.name}
    assert timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)
    # Shown once: the list names it by its prefix only.
    again = operator_client.get(reverse("api_tokens")).content.decode()
    assert token.prefix in again and raw not in again
    entry = AuditEntry.objects.get(action="create API token")
    assert token.prefix in entry.detail and raw not in entry.detail
    # And it works.
    assert Api(raw).get(ME).json()["role"] == "operator"


def test_a_token_cannot_be_created_above_the_users_role(operator_client, operator):
    response = operator_client.post(
        reverse("api_tokens"), {"name": "x", "role": "manager", "days": 30}
    )
    assert response.status_code == 400 and not ApiToken.objects.exists()
    with pytest.raises(ValueError, match="above your role"):
        ApiToken.issue(operator, name="x", role="manager", days=30)


@pytest.mark.parametrize("days", [0, 366, ""])
def test_a_token_needs_an_expiry_of_at_most_a_year(operator_client, days):
    response = operator_client.post(
        reverse("api_tokens"), {"name": "x", "role": "viewer", "days": days}
    )
    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_an_expired_token_gets_401_saying_so(operator):
    raw = token_for(operator, days=1)
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        response = Api(raw).get(ME)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_token_gets_401_at_once(operator, operator_client):
    raw = token_for(operator)
    api = Api(raw)
    assert api.get(ME).status_code == 200
    token = ApiToken.objects.get()
    response = operator_client.post(reverse("api_token_revoke", args=[token.pk]))
    assert response.status_code == 302
    response = api.get(ME)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    assert AuditEntry.objects.filter(action="revoke API token", detail__contains=token.prefix)


def test_nobody_revokes_someone_elses_token(operator, viewer_client):
    token = ApiToken.issue(operator, name="x", role="viewer", days=5)[0]
    assert viewer_client.post(reverse("api_token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


@pytest.mark.parametrize("header", ["Bearer nonsense", "Bearer drp_" + "x" * 43, "Bearer a b"])
def test_an_unknown_token_gets_401(db, client, header):
    response = client.get(ME, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_no_credentials_get_401_not_the_login_page(client):
    response = client.get("/api/v1/sources/")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")


def test_the_token_ceiling_caps_what_a_manager_token_may_do(manager):
    job = BackupJobFactory()
    api = Api(token_for(manager, role="viewer"))
    assert api.get(ME).json()["role"] == "viewer"
    response = api.post(f"/api/v1/jobs/{job.pk}/run/")
    assert response.status_code == 403
    assert "operator" in response.json()["detail"]
    assert not job.runs.exists()


def test_demoting_the_user_demotes_the_token_at_the_next_call(operator):
    job = BackupJobFactory()
    api = Api(token_for(operator))
    assert api.get(ME).json()["role"] == "operator"
    operator.groups.set([Group.objects.get(name="viewer")])
    assert api.get(ME).json()["role"] == "viewer"
    assert api.post(f"/api/v1/jobs/{job.pk}/run/").status_code == 403
    operator.groups.clear()
    response = api.get(ME)
    assert response.status_code == 401 and "no role" in response.json()["detail"]


def test_a_disabled_account_gets_401(operator):
    api = Api(token_for(operator))
    operator.is_active = False
    operator.save()
    assert api.get(ME).status_code == 401


def test_a_superuser_token_is_capped_too(superuser):
    job = BackupJobFactory()
    api = Api(token_for(superuser, role="viewer"))
    assert api.get(ME).json()["role"] == "viewer"
    assert api.post(f"/api/v1/jobs/{job.pk}/run/").status_code == 403


def test_session_calls_need_the_csrf_token_for_writes(operator):
    from django.test import Client

    job = BackupJobFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.get("/api/v1/jobs/").status_code == 200
    response = client.post(f"/api/v1/jobs/{job.pk}/run/")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert not job.runs.exists()


def test_a_superuser_revokes_any_token_in_the_admin(operator, superuser_client):
    token = ApiToken.issue(operator, name="leaked", role="viewer", days=5)[0]
    listing = superuser_client.get("/admin/api/apitoken/")
    assert listing.status_code == 200 and token.prefix in listing.content.decode()
    assert token.digest not in listing.content.decode()
    response = superuser_client.post(
        "/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
