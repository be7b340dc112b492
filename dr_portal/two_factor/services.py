"""Two-factor sign-in: who must use it, enrolment, verification, recovery codes, resets.

A session counts as verified when `request.session[SESSION_KEY]` names how: "totp" or
"recovery_code" (set here) or "sso" (set by the OIDC sign-in when the identity provider did
the MFA). Django's login() starts a new session for every sign-in, so the mark lasts one
session. Views, the admin action and `manage.py reset_2fa` all call these functions; every
change and every failed code is in the audit log (never a key or a code).
"""

import logging

from django.conf import settings
from django.contrib import auth
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from django_otp import verify_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from dr_portal import audit
from dr_portal.lib import roles
from dr_portal.two_factor.models import RecoveryCodeDevice, normalise

log = logging.getLogger(__name__)

SESSION_KEY = "dr_mfa_verified_by"
ENROLLED_KEY = "dr_mfa_enrolled"
TOTP, RECOVERY_CODE, SSO = "totp", "recovery_code", "sso"
VERIFY, ENROL = "verify", "enrol"


class CodeRefused(Exception):
    """A wrong, reused or throttled code; the message is for the person who typed it."""


def required(user) -> bool:
    """DR_REQUIRE_2FA makes managers (globally or of any one system) and superusers enrol."""
    return (
        bool(getattr(settings, "DR_REQUIRE_2FA", False))
        and roles.top_role_anywhere(user) == roles.MANAGER
    )


def totp_device(user, *, confirmed=True) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=confirmed).first()


def is_enrolled(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def verified_by(request) -> str:
    return request.session.get(SESSION_KEY, "")


def pending_step(request) -> str:
    """What this signed-in session must do before any other page: VERIFY, ENROL or ""."""
    if verified_by(request):
        return ""
    if session_enrolled(request):
        return VERIFY  # enrolled of their own accord or not: always asked
    return ENROL if required(request.user) else ""


def session_enrolled(request, *, refresh=False) -> bool:
    """Whether the user had a second factor when this session signed in (no query per page).

    Kept true by construction: enrolling signs the user's other sessions out, and a session
    whose user lost the factor (reset, turned off elsewhere) refreshes it on the verify page.
    With a session engine other than the database one, it is read on every request."""
    if not _sessions_in_database():
        return is_enrolled(request.user)
    enrolled = request.session.get(ENROLLED_KEY)
    if enrolled is None or refresh:
        enrolled = request.session[ENROLLED_KEY] = is_enrolled(request.user)
    return enrolled


def remember_enrolment(sender, request, user, **kwargs):
    """user_logged_in receiver: note in the new session whether the user has a second factor."""
    if request is not None and hasattr(request, "session"):
        request.session[ENROLLED_KEY] = is_enrolled(user)


def sign_out_sessions(user, *, keep: str = "") -> int:
    """End `user`'s sessions but `keep` (a session key): after enrolling or a reset, no
    session started without the new factor goes on. Enrolment is rare, so reading every
    live session is fine; only the database session engine can be searched this way."""
    if not _sessions_in_database():
        return 0
    ended = 0
    live = Session.objects.filter(expire_date__gt=timezone.now()).exclude(session_key=keep)
    for session in live.iterator():
        if session.get_decoded().get(auth.SESSION_KEY) == str(user.pk):
            session.delete()
            ended += 1
    return ended


def _sessions_in_database() -> bool:
    return settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"


def start_enrolment(user) -> TOTPDevice:
    """A fresh unconfirmed device (an earlier unconfirmed one is dropped): its key is shown
    on exactly one page, and it signs nobody in until a code from it is confirmed."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def confirm_enrolment(request, code: str) -> list[str]:
    """Activate the pending device with a code from it; returns the new recovery codes."""
    user = request.user
    pending = totp_device(user, confirmed=False)
    if pending is None:
        raise CodeRefused("That set-up has expired: start again with a new key.")
    if is_enrolled(user):
        raise CodeRefused("Two-factor sign-in is already set up for your account.")
    if not _attempt(user, pending, _digits(code)):
        audit.record("2fa_enrol_failed", user, user=user, detail="wrong code while enrolling")
        raise CodeRefused("That code is not right: type the six digits the app shows now.")
    with transaction.atomic():
        if not TOTPDevice.objects.filter(pk=pending.pk, confirmed=False).update(confirmed=True):
            raise CodeRefused("Two-factor sign-in was just set up in another window.")
        codes = _new_recovery_codes(user)
        ended = sign_out_sessions(user, keep=request.session.session_key or "")
        audit.record(
            "2fa_enrolled",
            user,
            user=user,
            detail=f"authenticator app and 10 codes; {ended} other sessions signed out",
        )
    _mark_verified(request, TOTP)
    request.session[ENROLLED_KEY] = True
    return codes


def verify(request, code: str) -> str:
    """Check a code from the app or a recovery code; mark the session verified."""
    user = request.user
    how = _check(user, code)
    _mark_verified(request, how)
    if how == RECOVERY_CODE:
        left = RecoveryCodeDevice.objects.get(user=user).remaining()
        audit.record(
            "2fa_recovery_code_used", user, user=user, detail=f"{left} recovery codes left"
        )
    return how


def regenerate_codes(request, code: str) -> list[str]:
    """New recovery codes (the old ones stop working); needs a current code."""
    user = request.user
    _check(user, code)
    with transaction.atomic():
        codes = _new_recovery_codes(user)
        audit.record("2fa_codes_regenerated", user, user=user, detail="10 new recovery codes")
    return codes


def disable_own(request, code: str) -> None:
    """Remove one's own second factor after proving a current code."""
    user = request.user
    _check(user, code)
    _remove_devices(user)
    audit.record("2fa_disabled", user, user=user, detail="by the user, with a current code")
    request.session.pop(SESSION_KEY, None)
    request.session[ENROLLED_KEY] = False


def reset(user, *, by: str) -> bool:
    """A superuser's reset of `user`'s second factor (lost phone); False if none was set up.

    The audit context (admin request or manage.py) names who did it."""
    with transaction.atomic():
        had = _remove_devices(user)
        if had:
            ended = sign_out_sessions(user)
            detail = f"second factor removed by {by}; {ended} sessions signed out"
            audit.record("2fa_reset", user, detail=detail[:1000])
    return had


def _mark_verified(request, how: str) -> None:
    # A new session key with the new privilege, as login() does: a key seen before the
    # second factor (a fixed or sniffed cookie) does not become a verified session.
    request.session.cycle_key()
    request.session[SESSION_KEY] = how


def _check(user, code: str) -> str:
    """TOTP or RECOVERY_CODE for a good code; CodeRefused (audited) otherwise."""
    device = totp_device(user)
    if device is None:
        raise CodeRefused("Two-factor sign-in is not set up for your account.")
    digits = _digits(code)
    if digits and len(digits) == device.digits:
        if _attempt(user, device, digits):
            return TOTP
    else:
        codes = RecoveryCodeDevice.objects.filter(user=user).first()
        if codes is not None and _attempt(user, codes, normalise(code)):
            return RECOVERY_CODE
    audit.record("2fa_verify_failed", user, user=user, detail="wrong code")
    raise CodeRefused("That code is not right.")


def _attempt(user, device, token: str) -> bool:
    """One throttled try (django-otp's back-off: 1, 2, 4, 8 ... s after each wrong code)."""
    allowed, info = device.verify_is_allowed()
    if not allowed:
        until = info["locked_until"].strftime("%H:%M:%S UTC")
        # Logged, not audited: the back-off bounds the audited wrong codes to a handful an
        # hour, and refused-unchecked tries must not let anyone flood the audit chain.
        log.warning(
            "two-factor code refused unchecked for %s: %s wrong in a row, locked until %s",
            user.get_username(),
            info["failure_count"],
            until,
        )
        raise CodeRefused(
            f"{info['failure_count']} wrong codes in a row: wait until {until}, then try again."
        )
    # In a transaction with the device row locked: a code cannot be used twice in a race.
    return verify_token(user, device.persistent_id, token) is not None


def _digits(code: str) -> str:
    compact = "".join(code.split())
    return compact if compact.isdigit() else ""


def _new_recovery_codes(user) -> list[str]:
    device, _ = RecoveryCodeDevice.objects.get_or_create(
        user=user, defaults={"name": "Recovery codes", "confirmed": True}
    )
    return device.regenerate()


def _remove_devices(user) -> bool:
    removed, _ = TOTPDevice.objects.filter(user=user).delete()
    removed_codes, _ = RecoveryCodeDevice.objects.filter(user=user).delete()
    return bool(removed or removed_codes)
