"""The SSO pages: start a sign-in at the provider, and its callback (dr_portal/sso.py does the work).

Both answer 404 while SSO is not configured. A refused sign-in is audited with its reason and
sends the person back to the login page with a plain message; tokens and the client secret
never reach a page, a log line or the audit log.
"""

import logging

import requests
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path
from django.views.generic import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from dr_portal import audit, sso
from dr_portal.lib.logsafe import one_line

log = logging.getLogger(__name__)

REFUSED_MESSAGE = "Single sign-on did not sign you in: {reason}."

# The 2FA middleware treats a session with this key as having passed a second factor.
MFA_SESSION_KEY = "dr_mfa_verified_by"


def _refuse(request, reason: str, user=None):
    reason = one_line(reason)[:300]
    audit.record("sso_login_refused", user, user=user, detail=reason)
    messages.error(request, REFUSED_MESSAGE.format(reason=reason))
    return redirect("login")


def _plain(library_message: str) -> str:
    """mozilla-django-oidc's refusals in words for the person (ours pass through)."""
    if "state not found" in library_message:
        return "this browser did not start that sign-in (state not found)"
    if "Nonce" in library_message:
        return "the ID token was not issued for this sign-in (nonce verification failed)"
    if "JWKS" in library_message or "algorithm" in library_message:
        return f"the ID token was refused: {library_message}"
    return library_message or "the answer from the provider was not valid"


class SsoStartView(OIDCAuthenticationRequestView):
    """Redirects to the provider's authorization endpoint with state, nonce and PKCE."""

    get_settings = staticmethod(sso.library_setting)

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the library's __init__ would discover at every request

    def get(self, request):
        if not sso.enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = sso.provider().authorization_endpoint
        except sso.SsoUnavailable as exc:
            return _refuse(request, exc.reason)
        self.OIDC_RP_CLIENT_ID = sso.library_setting("OIDC_RP_CLIENT_ID")
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the browser back here with a code; every refusal is audited."""

    get_settings = staticmethod(sso.library_setting)

    def get(self, request):
        if not sso.enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except sso.SsoRefused as exc:
            return _refuse(request, exc.reason, exc.user)
        except SuspiciousOperation as exc:
            # A state not issued to this browser, a bad token or nonce: say which, no values.
            return _refuse(request, _plain(str(exc)))
        except (requests.RequestException, ValueError, KeyError) as exc:
            log.warning("SSO: the provider's answer could not be used: %s", type(exc).__name__)
            return _refuse(request, "the identity provider could not be reached or answered badly")
        except IntegrityError:  # two first sign-ins of one identity at once: one made it
            return _refuse(request, "the account was being created by another sign-in: try again")

    def login_failure(self):
        request = self.request
        if request.GET.get("error"):
            reason = f"the provider answered {request.GET['error'][:60]!r}"
        elif "code" not in request.GET or "state" not in request.GET:
            reason = "the answer from the provider had no code or state"
        elif getattr(self, "user", None) is not None and not self.user.is_active:
            reason = f"the account {self.user.username} is deactivated"
        else:
            reason = "this browser did not start that sign-in (state not found)"
        return _refuse(request, reason, getattr(self, "user", None))

    def login_success(self):
        response = super().login_success()
        user, request = self.user, self.request
        mfa = getattr(user, "_dr_sso_mfa", False)
        # Roles come from the provider at sign-in only: a bounded session re-reads them.
        request.session.set_expiry(settings.DR_OIDC_SESSION_HOURS * 3600)
        if mfa:
            request.session[MFA_SESSION_KEY] = "sso"
        role = getattr(user, "_dr_sso_role", "")
        detail = f"role {role}" if role else "no role mapped from the claims: no access"
        if getattr(user, "_dr_sso_created", False):
            detail += "; account created"
        detail += "; second factor at the provider" if mfa else ""
        audit.record("sso_login" if role else "sso_login_no_role", user, user=user, detail=detail)
        return response


urlpatterns = [
    path("authenticate/", SsoStartView.as_view(), name="oidc_authentication_init"),
    path("callback/", SsoCallbackView.as_view(), name="oidc_authentication_callback"),
]
