"""OIDC single sign-on against a real provider run by the test (tests/support/oidc_server.py).

Each login goes the whole way: the portal's start page redirects to the provider, the
provider approves and redirects back with a code, the portal's callback fetches the token
over HTTP, checks it against the provider's JWKS and signs the person in.
"""

import logging
import time
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, override_settings

from dr_portal import checks, sso
from dr_portal.lib import roles
from dr_portal.models import AuditEntry, SsoIdentity
from tests.factories import PASSWORD, UserFactory
from tests.support.oidc_server import OidcProvider

ROLE_MAP = "dr-viewers=viewer,dr-operators=operator,dr-managers=manager"


@pytest.fixture
def idp():
    with OidcProvider() as provider:
        yield provider


@pytest.fixture
def sso_on(idp, db):
    sso.forget_provider()
    with override_settings(
        DR_OIDC_ISSUER=idp.issuer,
        DR_OIDC_CLIENT_ID=idp.client_id,
        DR_OIDC_CLIENT_SECRET=idp.client_secret,
        DR_OIDC_ROLE_MAP=ROLE_MAP,
        DR_OIDC_SYSTEM_ROLE_MAP="",
    ):
        yield idp
    sso.forget_provider()


def sso_login(client: Client, idp: OidcProvider, *, state=None):
    """Start at the portal, approve at the provider, come back: the callback's response."""
    start = client.get("/accounts/oidc/authenticate/")
    assert start.status_code == 302, start
    assert start["Location"].startswith(f"{idp.issuer}/authorize?")
    approved = requests.get(start["Location"], allow_redirects=False, timeout=10)
    assert approved.status_code == 302, approved.text
    back = urlsplit(approved.headers["Location"])
    assert back.path == "/accounts/oidc/callback/"
    query = back.query
    if state is not None:
        query = query.rsplit("state=", 1)[0] + f"state={state}"
    return client.get(f"{back.path}?{query}")


def signed_in_user(client):
    return client.get("/").wsgi_request.user


def actions():
    return list(AuditEntry.objects.order_by("seq").values_list("action", flat=True))


def test_sso_login_maps_the_group_claim_to_a_role(sso_on):
    sso_on.identity = {
        "sub": "u-42",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "groups": ["staff", "dr-operators"],
    }
    client = Client()
    response = sso_login(client, sso_on)
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="alice")
    assert roles.top_role(user) == roles.OPERATOR
    assert not user.has_usable_password() and not user.is_superuser and not user.is_staff
    assert SsoIdentity.objects.get(user=user).subject == "u-42"
    assert client.session.get_expiry_age() == 12 * 3600  # DR_OIDC_SESSION_HOURS
    assert client.get("/").status_code == 200
    assert signed_in_user(client) == user
    entry = AuditEntry.objects.get(action="sso_login")
    assert entry.actor_name == "alice" and "role operator" in entry.detail
    assert AuditEntry.objects.get(action="sso_role_change").changes == {"role": ["", "operator"]}
    # No token is kept, and the PKCE, nonce and client secret went where they belong.
    assert not {"oidc_id_token", "oidc_access_token"} & set(client.session.keys())
    token_call = next(p for m, path, p in sso_on.requests if path == "/token")
    assert token_call["code_verifier"] and token_call["client_secret"] == sso_on.client_secret


def test_the_highest_mapped_group_wins(sso_on):
    sso_on.identity = {
        "sub": "u-1",
        "preferred_username": "bob",
        "groups": "dr-viewers dr-managers",
    }
    sso_login(Client(), sso_on)
    assert roles.top_role(User.objects.get(username="bob")) == roles.MANAGER


def test_roles_are_synced_again_at_every_login(sso_on):
    sso_on.identity = {"sub": "u-7", "preferred_username": "carol", "groups": ["dr-managers"]}
    sso_login(Client(), sso_on)
    carol = User.objects.get(username="carol")
    assert roles.top_role(carol) == roles.MANAGER

    sso_on.identity["groups"] = ["dr-viewers"]  # the provider took the manager group away
    sso_login(Client(), sso_on)
    carol = User.objects.get(pk=carol.pk)
    assert roles.top_role(carol) == roles.VIEWER
    assert set(carol.groups.values_list("name", flat=True)) == {"viewer"}

    sso_on.identity["groups"] = []
    client = Client()
    sso_login(client, sso_on)
    assert roles.top_role(User.objects.get(pk=carol.pk)) == ""
    assert client.get("/").status_code == 403
    changes = [
        e.changes["role"]
        for e in AuditEntry.objects.filter(action="sso_role_change").order_by("seq")
    ]
    assert changes == [["", "manager"], ["manager", "viewer"], ["viewer", ""]]


def test_unmapped_user_gets_no_role_and_the_no_role_page(sso_on):
    sso_on.identity = {"sub": "u-9", "preferred_username": "dave", "groups": ["marketing"]}
    client = Client()
    sso_login(client, sso_on)
    dave = User.objects.get(username="dave")
    assert roles.top_role(dave) == "" and not dave.groups.exists()
    page = client.get("/")
    assert page.status_code == 403
    assert "no role yet" in page.content.decode()
    assert "sso_login_no_role" in actions() and "sso_role_change" not in actions()


def test_superuser_claims_are_ignored_and_linked_superusers_are_refused(sso_on):
    sso_on.identity = {"sub": "u-5", "preferred_username": "eve", "is_superuser": True,
                       "is_staff": True, "groups": ["dr-managers"]}  # fmt: skip
    sso_login(Client(), sso_on)
    eve = User.objects.get(username="eve")
    assert not eve.is_superuser and not eve.is_staff

    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    SsoIdentity.objects.create(user=root, issuer=sso_on.issuer, subject="u-root")
    sso_on.identity = {"sub": "u-root", "preferred_username": "root"}
    client = Client()
    sso_login(client, sso_on)
    assert not signed_in_user(client).is_authenticated
    assert (
        "superusers sign in with a password"
        in AuditEntry.objects.get(action="sso_login_refused").detail
    )


def test_an_unlinked_local_account_is_not_taken_over_until_linked(sso_on):
    local = UserFactory(username="frank", role="viewer")
    sso_on.identity = {"sub": "u-frank", "preferred_username": "frank", "groups": ["dr-managers"]}
    client = Client()
    response = sso_login(client, sso_on)
    assert response["Location"] == "/accounts/login/"
    assert not signed_in_user(client).is_authenticated
    assert roles.top_role(User.objects.get(pk=local.pk)) == roles.VIEWER  # untouched
    refused = AuditEntry.objects.get(action="sso_login_refused")
    assert "an account named frank exists and is not linked" in refused.detail
    page = client.get("/accounts/login/").content.decode()
    assert "not linked to this identity" in page

    SsoIdentity.objects.create(user=local, issuer=sso_on.issuer, subject="u-frank")
    client = Client()
    sso_login(client, sso_on)
    assert signed_in_user(client) == local
    assert roles.top_role(User.objects.get(pk=local.pk)) == roles.MANAGER
    assert User.objects.get(pk=local.pk).check_password(PASSWORD)  # still usable, unchanged


def test_another_identity_with_a_taken_name_gets_no_account(sso_on):
    sso_on.identity = {"sub": "u-a", "preferred_username": "gina"}
    sso_login(Client(), sso_on)
    sso_on.identity = {"sub": "u-b", "preferred_username": "gina", "groups": ["dr-managers"]}
    client = Client()
    sso_login(client, sso_on)
    assert not signed_in_user(client).is_authenticated
    assert User.objects.filter(username__iexact="gina").count() == 1


def expired():
    return {"exp": int(time.time()) - 600, "iat": int(time.time()) - 900}


@pytest.mark.parametrize(
    "change, why",
    [
        ("tamper", "Signature verification failed"),
        ({"aud": "another-client"}, "Audience doesn't match"),
        ("expired", "Signature has expired"),
        ({"iss": "https://evil.example"}, "Invalid issuer"),
        ({"nonce": "not-the-nonce"}, "nonce verification failed"),
    ],
)
def test_a_bad_id_token_is_refused(sso_on, change, why):
    sso_on.identity = {"sub": "u-m", "preferred_username": "mallory", "groups": ["dr-managers"]}
    if change == "tamper":
        sso_on.tamper = True
    else:
        sso_on.id_token_changes = expired() if change == "expired" else change
    client = Client()
    response = sso_login(client, sso_on)
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert not signed_in_user(client).is_authenticated
    assert not User.objects.filter(username="mallory").exists()
    assert why in AuditEntry.objects.get(action="sso_login_refused").detail


def test_a_state_this_browser_did_not_start_is_refused(sso_on):
    client = Client()
    response = sso_login(client, sso_on, state="forged-state")
    assert response["Location"] == "/accounts/login/"
    assert not signed_in_user(client).is_authenticated
    assert "state" in AuditEntry.objects.get(action="sso_login_refused").detail
    # A callback in a browser that started nothing at all is refused the same way.
    stranger = Client()
    assert stranger.get("/accounts/oidc/callback/?code=x&state=y")["Location"] == "/accounts/login/"
    assert not signed_in_user(stranger).is_authenticated


def test_a_wrong_client_secret_is_refused_and_never_shown(sso_on, caplog):
    with override_settings(DR_OIDC_CLIENT_SECRET="wrong-Secret-Value-99"):
        client = Client()
        with caplog.at_level(logging.DEBUG):
            response = sso_login(client, sso_on)
        page = client.get(response["Location"]).content.decode()
    assert not signed_in_user(client).is_authenticated
    refused = AuditEntry.objects.get(action="sso_login_refused")
    assert "provider refused the code (HTTP 401)" in refused.detail
    assert "provider refused the code" in page
    for secret in ("wrong-Secret-Value-99", sso_on.client_secret):
        assert secret not in page and secret not in caplog.text and secret not in str(refused)


def test_the_secret_and_tokens_never_reach_logs_pages_or_the_audit_log(sso_on, caplog):
    sso_on.identity = {"sub": "u-h", "preferred_username": "hana", "groups": ["dr-managers"]}
    client = Client()
    with caplog.at_level(logging.DEBUG):
        sso_login(client, sso_on)
        pages = [client.get(p).content.decode() for p in ("/", "/admin/", "/accounts/login/")]
    token = next(p for m, path, p in sso_on.requests if path == "/userinfo" or m == "POST")
    access_tokens = list(sso_on._access)
    trail = str(list(AuditEntry.objects.values()))
    session = str(dict(client.session.items()))
    for text in [*pages, caplog.text, trail, session]:
        assert sso_on.client_secret not in text
        assert not any(t in text for t in access_tokens)
    assert token  # the flow did reach the provider's token endpoint


def test_mfa_at_the_provider_marks_the_session_for_two_factor(sso_on):
    sso_on.identity = {"sub": "u-i", "preferred_username": "ivan", "groups": ["dr-managers"]}
    sso_on.id_token_changes = {"amr": ["pwd", "otp"]}
    client = Client()
    sso_login(client, sso_on)
    assert client.session["dr_mfa_verified_by"] == "sso"

    sso_on.id_token_changes = {"amr": ["pwd"]}
    client = Client()
    sso_login(client, sso_on)
    assert signed_in_user(client).is_authenticated
    assert "dr_mfa_verified_by" not in client.session


def test_the_login_page_offers_sso_only_when_configured(db, idp):
    assert "Sign in with SSO" not in Client().get("/accounts/login/").content.decode()
    assert Client().get("/accounts/oidc/authenticate/").status_code == 404
    with override_settings(DR_OIDC_ISSUER=idp.issuer, DR_OIDC_CLIENT_ID="x"):
        page = Client().get("/accounts/login/?next=/backups/").content.decode()
    assert "Sign in with SSO" in page
    assert "/accounts/oidc/authenticate/?next=/backups/" in page
    assert "<script>" not in page  # the CSP allows no inline script


def test_sso_keeps_the_next_page(sso_on):
    sso_on.identity = {"sub": "u-n", "preferred_username": "nina", "groups": ["dr-viewers"]}
    client = Client()
    start = client.get("/accounts/oidc/authenticate/?next=/backups/")
    approved = requests.get(start["Location"], allow_redirects=False, timeout=10)
    back = urlsplit(approved.headers["Location"])
    assert client.get(f"{back.path}?{back.query}")["Location"] == "/backups/"


def test_password_login_off_refuses_everyone_but_superusers(sso_on):
    UserFactory(username="otto", role="operator")
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    with override_settings(DR_OIDC_PASSWORD_LOGIN=False):
        page = Client().get("/accounts/login/").content.decode()
        assert "Superuser sign-in with a password" in page
        refused = Client()
        response = refused.post("/accounts/login/", {"username": "otto", "password": PASSWORD})
        assert response.status_code == 200 and not signed_in_user(refused).is_authenticated
        root = Client()
        root.post("/accounts/login/", {"username": "root", "password": PASSWORD})
        assert signed_in_user(root).is_superuser
    allowed = Client()  # passwords are back once the setting is
    allowed.post("/accounts/login/", {"username": "otto", "password": PASSWORD})
    assert signed_in_user(allowed).username == "otto"


def test_deactivating_an_sso_account_ends_its_sessions(sso_on):
    sso_on.identity = {"sub": "u-k", "preferred_username": "kai", "groups": ["dr-viewers"]}
    client = Client()
    sso_login(client, sso_on)
    assert client.get("/").status_code == 200
    User.objects.filter(username="kai").update(is_active=False)
    assert client.get("/")["Location"].startswith("/accounts/login/")
    client = Client()
    sso_login(client, sso_on)
    assert not signed_in_user(client).is_authenticated
    assert "deactivated" in AuditEntry.objects.get(action="sso_login_refused").detail


def test_next_may_not_lead_off_the_portal(sso_on):
    sso_on.identity = {"sub": "u-o", "preferred_username": "olga", "groups": ["dr-viewers"]}
    client = Client()
    start = client.get("/accounts/oidc/authenticate/?next=https://evil.example/")
    approved = requests.get(start["Location"], allow_redirects=False, timeout=10)
    back = urlsplit(approved.headers["Location"])
    assert client.get(f"{back.path}?{back.query}")["Location"] == "/"


def test_an_unreachable_provider_is_a_clear_refusal(db):
    with OidcProvider() as gone:
        issuer = gone.issuer  # a loopback port nobody listens on once this block ends
    sso.forget_provider()
    with override_settings(DR_OIDC_ISSUER=issuer, DR_OIDC_CLIENT_ID="x", DR_OIDC_CLIENT_SECRET="y"):
        client = Client()
        response = client.get("/accounts/oidc/authenticate/")
        assert response["Location"] == "/accounts/login/"
        page = client.get("/accounts/login/").content.decode()
    assert "identity provider could not be reached" in page
    assert "could not be reached" in AuditEntry.objects.get(action="sso_login_refused").detail


def test_a_provider_naming_another_issuer_is_refused(sso_on):
    with override_settings(DR_OIDC_ISSUER=sso_on.issuer.replace("127.0.0.1", "localhost")):
        sso.forget_provider()
        response = Client().get("/accounts/oidc/authenticate/")
    assert response["Location"] == "/accounts/login/"
    assert "names another issuer" in AuditEntry.objects.get(action="sso_login_refused").detail


def test_logout_ends_the_portal_session(sso_on):
    sso_on.identity = {"sub": "u-l", "preferred_username": "lena", "groups": ["dr-viewers"]}
    client = Client()
    sso_login(client, sso_on)
    client.post("/accounts/logout/")
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_system_roles_from_claims_follow_the_map(settings):
    settings.DR_OIDC_ROLE_CLAIM = "groups"
    settings.DR_OIDC_SYSTEM_ROLE_MAP = "dr-payments-ops=operator@payments, dr-crm-view=viewer@crm"
    claims = {"groups": ["dr-payments-ops", "dr-crm-view", "other"]}
    assert sso.system_roles_from_claims(claims) == [("crm", "viewer"), ("payments", "operator")]
    assert sso.apply_system_roles(object(), [("crm", "viewer")]) is None  # documented no-op


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"DR_OIDC_ISSUER": "http://idp.example.com"}, "must be an https:// URL"),
        ({"DR_OIDC_CLIENT_SECRET": ""}, "DR_OIDC_CLIENT_SECRET must be set"),
        ({"DR_OIDC_ROLE_MAP": "dr-admins=admin"}, "'dr-admins=admin' is not group=role"),
        ({"DR_OIDC_SYSTEM_ROLE_MAP": "x=operator"}, "is not group=role@system"),
        ({"DR_OIDC_SIGN_ALGO": "HS256"}, "DR_OIDC_SIGN_ALGO must be one of"),
    ],
)
def test_system_check_names_bad_sso_settings(overrides, message):
    good = {
        "DR_OIDC_ISSUER": "https://idp.example.com/realms/dr",
        "DR_OIDC_CLIENT_ID": "dr-portal",
        "DR_OIDC_CLIENT_SECRET": "s3cret-value",
        "DR_OIDC_ROLE_MAP": ROLE_MAP,
    }
    with override_settings(**good):
        assert checks.check_sso(None) == []
    with override_settings(**{**good, **overrides}):
        found = checks.check_sso(None)
    assert [m.id for m in found] == ["dr_portal.E021"]
    assert message in found[0].msg
    assert "s3cret-value" not in found[0].msg


def test_manage_check_passes_with_loopback_issuer(sso_on):
    call_command("check")  # http:// is fine on loopback (this test's provider)
