"""TOTP two-factor sign-in: who must enrol, verification each session, recovery codes,
throttling, resets, and the gate over the portal, the admin and the API's session sign-in.

Codes are computed the way an authenticator app does (django_otp.oath.TOTP over the key).
"""

import logging
import re
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from dr_portal.models import AuditEntry
from dr_portal.two_factor import services
from dr_portal.two_factor.models import RecoveryCode, RecoveryCodeDevice
from tests.dr_portal.test_settings import PRODUCTION_ENV, run_python
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def required(settings):
    settings.DR_REQUIRE_2FA = True


def app_code(device, steps_ahead=0):
    """What the phone shows now (or `steps_ahead` 30-second steps later)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def sign_in(user):
    """A real password sign-in (django-axes in front): a new session, nothing verified."""
    client = Client()
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


def enrol(client, user):
    """Enrol through the pages; returns the recovery codes shown once."""
    page = client.get("/accounts/2fa/enrol/")
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    done = client.post("/accounts/2fa/enrol/", {"code": app_code(device), "next": "/"})
    assert done.status_code == 200
    assert TOTPDevice.objects.get(user=user).confirmed
    return done.context["codes"]


def unthrottle(user):
    """As if the back-off after a wrong code had passed (1 s for the first)."""
    past = timezone.now() - timedelta(hours=1)
    for model in (TOTPDevice, RecoveryCodeDevice):
        model.objects.filter(user=user).update(throttling_failure_timestamp=past)


def actions(user):
    return list(
        AuditEntry.objects.filter(object_id=str(user.pk), action__startswith="2fa_")
        .order_by("pk")
        .values_list("action", flat=True)
    )


def test_manager_is_sent_to_enrol_and_then_reaches_the_dashboard(required, manager):
    client = sign_in(manager)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/enrol/?next=%2F"
    for elsewhere in ("/backups/", "/accounts/2fa/", "/accounts/tokens/", "/health/destinations"):
        assert client.get(elsewhere)["Location"].startswith("/accounts/2fa/enrol/")

    assert client.get("/health/ready").status_code in (200, 503)  # probes stay open
    page = client.get("/accounts/2fa/enrol/?next=/backups/")
    html = page.content.decode()
    assert "<svg" in html and "<script" not in html.split("</head>")[1]
    device = TOTPDevice.objects.get(user=manager, confirmed=False)
    assert re.sub(r"\s", "", page.context["secret"]) in html.replace(" ", "")
    assert client.get("/").status_code == 302  # an unconfirmed device signs nobody in

    done = client.post("/accounts/2fa/enrol/", {"code": app_code(device), "next": "/backups/"})
    codes = done.context["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert done["Cache-Control"].startswith("max-age=0") or "no-cache" in done["Cache-Control"]
    assert all(code in done.content.decode() for code in codes)
    assert client.get("/").status_code == 200
    assert actions(manager) == ["2fa_enrolled"]
    # Stored as digests only.
    stored = set(RecoveryCode.objects.values_list("digest", flat=True))
    assert not stored & {c.replace("-", "") for c in codes} and len(stored) == 10


def test_enrol_page_shows_each_key_once_and_a_wrong_code_does_not_enrol(required, manager):
    client = sign_in(manager)
    first = client.get("/accounts/2fa/enrol/").context["secret"]
    second = client.get("/accounts/2fa/enrol/").context["secret"]
    assert first != second and TOTPDevice.objects.filter(user=manager).count() == 1
    device = TOTPDevice.objects.get(user=manager)
    wrong = client.post("/accounts/2fa/enrol/", {"code": "000000"})
    assert "That code is not right" in wrong.content.decode()
    assert device.key not in wrong.content.decode() and "secret" not in wrong.context
    assert not TOTPDevice.objects.get(user=manager).confirmed
    assert actions(manager) == ["2fa_enrol_failed"]


def test_next_session_must_verify_and_a_wrong_code_is_refused_and_audited(required, manager):
    enrol(sign_in(manager), manager)
    device = TOTPDevice.objects.get(user=manager)

    client = sign_in(manager)
    assert client.get("/incidents/")["Location"] == "/accounts/2fa/verify/?next=%2Fincidents%2F"
    wrong = client.post("/accounts/2fa/verify/", {"code": "123456", "next": "/incidents/"})
    assert wrong.status_code == 200 and "That code is not right" in wrong.content.decode()
    assert client.get("/").status_code == 302
    # Throttled: even the right code right after a wrong one is refused, and said so.
    throttled = client.post("/accounts/2fa/verify/", {"code": app_code(device, 1)})
    assert "wrong codes in a row: wait until" in throttled.content.decode()
    assert client.get("/").status_code == 302
    # Audited: the wrong code; the refused-unchecked try is only logged (no audit flood).
    assert actions(manager) == ["2fa_enrolled", "2fa_verify_failed"]

    unthrottle(manager)
    ok = client.post("/accounts/2fa/verify/", {"code": app_code(device, 1), "next": "/incidents/"})
    assert ok["Location"] == "/incidents/"
    assert client.get("/incidents/").status_code == 200
    assert client.session[services.SESSION_KEY] == services.TOTP


def test_verifying_gives_the_session_a_new_key(required, manager):
    enrol(sign_in(manager), manager)
    device = TOTPDevice.objects.get(user=manager)
    client = sign_in(manager)
    before = client.cookies["sessionid"].value
    client.post("/accounts/2fa/verify/", {"code": app_code(device, 1)})
    assert client.cookies["sessionid"].value != before
    stale = Client()
    stale.cookies["sessionid"] = before
    assert stale.get("/")["Location"].startswith("/accounts/login/")


def test_a_code_is_not_accepted_twice(required, manager):
    enrol(sign_in(manager), manager)
    device = TOTPDevice.objects.get(user=manager)
    code = app_code(device, 1)
    sign_in(manager).post("/accounts/2fa/verify/", {"code": code})
    unthrottle(manager)
    replay = sign_in(manager)
    replay.post("/accounts/2fa/verify/", {"code": code})
    assert replay.get("/").status_code == 302


def test_a_recovery_code_works_once(required, manager):
    codes = enrol(sign_in(manager), manager)
    client = sign_in(manager)
    used = client.post("/accounts/2fa/verify/", {"code": codes[3].upper().replace("-", " ")})
    assert used.status_code == 302 and client.get("/").status_code == 200
    assert client.session[services.SESSION_KEY] == services.RECOVERY_CODE
    entry = AuditEntry.objects.get(action="2fa_recovery_code_used")
    assert entry.detail == "9 recovery codes left"

    again = sign_in(manager)
    refused = again.post("/accounts/2fa/verify/", {"code": codes[3]})
    assert "That code is not right" in refused.content.decode()
    assert again.get("/").status_code == 302
    assert "2fa_verify_failed" in actions(manager)


def test_regenerating_codes_needs_a_code_and_invalidates_the_old_ones(required, manager):
    client = sign_in(manager)
    old = enrol(client, manager)
    device = TOTPDevice.objects.get(user=manager)
    assert client.get("/accounts/2fa/recovery-codes/").status_code == 405
    refused = client.post("/accounts/2fa/recovery-codes/", {"code": "999999"}, follow=True)
    assert "That code is not right" in refused.content.decode()
    unthrottle(manager)
    new = client.post("/accounts/2fa/recovery-codes/", {"code": app_code(device, 1)})
    fresh = new.context["codes"]
    assert set(fresh).isdisjoint(old)
    assert "2fa_codes_regenerated" in actions(manager)
    stale = sign_in(manager)
    stale.post("/accounts/2fa/verify/", {"code": old[0]})
    assert stale.get("/").status_code == 302
    unthrottle(manager)
    good = sign_in(manager)
    good.post("/accounts/2fa/verify/", {"code": fresh[0]})
    assert good.get("/").status_code == 200


def test_operator_is_not_forced_but_once_enrolled_is_always_asked(required, operator):
    client = sign_in(operator)
    assert client.get("/").status_code == 200
    assert client.get("/accounts/2fa/").status_code == 200
    enrol(client, operator)
    assert client.get("/").status_code == 200  # the enrolment verified this session
    later = sign_in(operator)
    assert later.get("/")["Location"].startswith("/accounts/2fa/verify/")


def test_voluntary_enrolment_is_enforced_with_the_setting_off(settings, viewer):
    settings.DR_REQUIRE_2FA = False
    enrol(sign_in(viewer), viewer)
    assert sign_in(viewer).get("/backups/")["Location"].startswith("/accounts/2fa/verify/")


def test_without_the_setting_a_manager_is_not_forced(settings, manager):
    settings.DR_REQUIRE_2FA = False
    assert sign_in(manager).get("/").status_code == 200


def test_admin_is_gated_too(required, superuser):
    client = sign_in(superuser)
    for path in ("/admin/", "/admin/dr_portal/auditentry/"):
        assert client.get(path)["Location"].startswith("/accounts/2fa/enrol/")
    enrol(client, superuser)
    assert client.get("/admin/").status_code == 200


def test_the_api_session_is_gated_but_tokens_are_not(required, manager):
    from api.models import ApiToken

    client = sign_in(manager)
    refused = client.get("/api/v1/sources/")
    assert refused.status_code == 403 and "two-factor" in refused.json()["detail"]
    _, secret = ApiToken.issue(manager, name="ci", role="viewer", days=30)
    token = Client().get("/api/v1/sources/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert token.status_code == 200
    # Another scheme is not a token: the session still decides, and it is not verified.
    basic = client.get("/api/v1/sources/", HTTP_AUTHORIZATION="Basic bW9uYTp4")
    assert basic.status_code == 403
    bogus = client.get("/api/v1/sources/", HTTP_AUTHORIZATION="Bearer drp_forged")
    assert bogus.status_code == 401  # a bearer header is checked as a token, never the session
    assert client.get("/api/docs/")["Location"].startswith("/accounts/2fa/enrol/")


def test_a_session_verified_by_sso_counts(required, manager):
    enrol(sign_in(manager), manager)
    client = sign_in(manager)
    session = client.session
    session[services.SESSION_KEY] = services.SSO  # what the OIDC sign-in sets
    session.save()
    assert client.get("/").status_code == 200
    assert "single sign-on" in client.get("/accounts/2fa/").content.decode()


def test_disabling_needs_a_current_code(settings, operator):
    settings.DR_REQUIRE_2FA = False
    client = sign_in(operator)
    enrol(client, operator)
    device = TOTPDevice.objects.get(user=operator)
    client.post("/accounts/2fa/disable/", {"code": "000000"})
    assert TOTPDevice.objects.filter(user=operator).exists()
    unthrottle(operator)
    client.post("/accounts/2fa/disable/", {"code": app_code(device, 1)})
    assert not TOTPDevice.objects.filter(user=operator).exists()
    assert not RecoveryCode.objects.exists()
    assert actions(operator)[-1] == "2fa_disabled"
    assert sign_in(operator).get("/").status_code == 200


def test_superuser_resets_a_user_by_command_and_admin_action(required, manager, superuser):
    enrol(sign_in(manager), manager)
    call_command("reset_2fa", manager.username)
    assert not TOTPDevice.objects.filter(user=manager).exists()
    assert actions(manager)[-1] == "2fa_reset"
    assert sign_in(manager).get("/")["Location"].startswith("/accounts/2fa/enrol/")

    enrol(sign_in(manager), manager)
    admin = sign_in(superuser)
    enrol(admin, superuser)
    listing = admin.get("/admin/two_factor/authenticatorapp/")
    device = TOTPDevice.objects.get(user=manager)
    assert listing.status_code == 200 and device.key not in listing.content.decode()
    assert admin.get(f"/admin/two_factor/authenticatorapp/{device.pk}/change/").status_code == 200
    assert (
        device.key
        not in admin.get(f"/admin/two_factor/authenticatorapp/{device.pk}/change/").content.decode()
    )
    admin.post(
        "/admin/two_factor/authenticatorapp/",
        {"action": "reset_two_factor", "_selected_action": [device.pk]},
    )
    assert not TOTPDevice.objects.filter(user=manager).exists()
    reset = (
        AuditEntry.objects.filter(action="2fa_reset", object_id=str(manager.pk))
        .order_by("pk")
        .last()
    )
    assert reset.actor_name == superuser.username and "by root" in reset.detail


def test_a_manager_cannot_see_the_two_factor_admin(settings, manager):
    settings.DR_REQUIRE_2FA = False
    manager.is_staff = True
    manager.save()
    client = sign_in(manager)
    assert client.get("/admin/two_factor/authenticatorapp/").status_code == 403


def test_the_key_is_never_logged_nor_audited(required, manager, caplog):
    caplog.set_level(logging.DEBUG)
    client = sign_in(manager)
    codes = enrol(client, manager)
    device = TOTPDevice.objects.get(user=manager)
    other = sign_in(manager)
    other.post("/accounts/2fa/verify/", {"code": codes[0]})
    secrets = [device.key, device.key.upper(), re.sub(r"\s", "", str(device.config_url))]
    secrets += [c.replace("-", "") for c in codes] + codes
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    audited = " ".join(str(v) for v in AuditEntry.objects.values_list("changes", "detail"))
    from base64 import b32encode

    b32 = b32encode(device.bin_key).decode()
    for secret in [*secrets, b32]:
        assert secret not in logged and secret not in audited


def test_next_must_stay_on_the_portal(required, manager):
    enrol(sign_in(manager), manager)
    device = TOTPDevice.objects.get(user=manager)
    client = sign_in(manager)
    response = client.post(
        "/accounts/2fa/verify/", {"code": app_code(device, 1), "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


@pytest.mark.slow
def test_production_requires_two_factor_by_default(tmp_path):
    show = "from django.conf import settings; print(settings.DR_REQUIRE_2FA)"
    assert run_python(show, PRODUCTION_ENV, tmp_path).stdout.split() == ["True"]
    assert run_python(show, {}, tmp_path).stdout.split() == ["False"]
    off = {**PRODUCTION_ENV, "DR_REQUIRE_2FA": "off"}
    assert run_python(show, off, tmp_path).stdout.split() == ["False"]


def test_enrolling_signs_out_the_users_other_sessions(settings, operator, viewer):
    settings.DR_REQUIRE_2FA = False
    before = sign_in(operator)
    bystander = sign_in(viewer)
    enrolling = sign_in(operator)
    enrol(enrolling, operator)
    assert before.get("/")["Location"].startswith("/accounts/login/")
    assert enrolling.get("/").status_code == 200
    assert bystander.get("/").status_code == 200
    assert "1 other sessions signed out" in AuditEntry.objects.get(action="2fa_enrolled").detail


def test_a_reset_signs_the_user_out_everywhere(required, manager):
    client = sign_in(manager)
    enrol(client, manager)
    assert services.reset(manager, by="root")
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_turned_off_elsewhere_the_verify_page_lets_an_unverified_session_on(settings, operator):
    settings.DR_REQUIRE_2FA = False
    enrol(sign_in(operator), operator)
    waiting = sign_in(operator)
    assert waiting.get("/")["Location"].startswith("/accounts/2fa/verify/")
    services._remove_devices(operator)  # as if turned off in another session
    response = waiting.get("/accounts/2fa/verify/?next=/backups/", follow=True)
    assert response.redirect_chain[-1][0] == "/backups/" and response.status_code == 200


def test_pages_cost_no_two_factor_query_once_signed_in(settings, viewer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.DR_REQUIRE_2FA = True
    client = sign_in(viewer)
    client.get("/")
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/").status_code == 200
    assert not [q for q in ctx.captured_queries if "otp_totp" in q["sql"]]


@pytest.fixture
def provider(db):
    from django.test import override_settings

    from dr_portal import sso
    from tests.dr_portal.test_sso import ROLE_MAP
    from tests.support.oidc_server import OidcProvider

    with OidcProvider() as idp:
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


def test_sso_with_mfa_at_the_provider_counts_as_the_second_factor(required, provider):
    from tests.dr_portal.test_sso import sso_login

    provider.identity = {"sub": "u-m", "preferred_username": "mira", "groups": ["dr-managers"]}
    provider.id_token_changes = {"amr": ["pwd", "otp"]}
    with_mfa = Client()
    sso_login(with_mfa, provider)
    assert with_mfa.get("/").status_code == 200

    provider.id_token_changes = {"amr": ["pwd"]}
    without = Client()
    sso_login(without, provider)
    assert without.get("/")["Location"].startswith("/accounts/2fa/enrol/")


def test_a_manager_of_one_system_only_must_enrol_and_can(required):
    """A per-system manager has no global role: 2FA still applies, and the role middleware
    (system-scoped views only) lets them reach the 2FA pages."""
    from backups.models import SystemRole
    from tests.factories import SystemFactory, UserFactory

    user = UserFactory(username="sysmgr")
    SystemRole.objects.create(user=user, system=SystemFactory(name="payments"), role="manager")
    assert services.required(user)
    client = sign_in(user)
    assert client.get("/")["Location"].startswith("/accounts/2fa/enrol/")
    enrol(client, user)
    assert client.get("/").status_code == 200
    assert client.get("/accounts/2fa/").status_code == 200

    viewer_only = UserFactory(username="sysviewer")
    SystemRole.objects.create(user=viewer_only, system=SystemFactory(name="crm"), role="viewer")
    assert not services.required(viewer_only)
