"""Who is calling: a bearer API token, or the portal session (with CSRF) in a browser.

A token acts as its user with roles capped at its ceiling (dr_portal.lib.roles.limit_roles),
and the audit context names the token, so every row the call changes says which one did it.
"""

from rest_framework import authentication, exceptions

from api import calls
from api.models import PREFIX, ApiToken, TokenRefused
from dr_portal import audit
from dr_portal.lib import roles

KEYWORD = "Bearer"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer drp_…`; anything else is left to session authentication."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() != KEYWORD.lower():
            return None
        calls.check_failed_auth_budget(request)
        if len(header) != 2 or not header[1].startswith(PREFIX):
            raise exceptions.AuthenticationFailed(
                f"Send one API token: 'Authorization: {KEYWORD} {PREFIX}…'."
            )
        try:
            token = ApiToken.authenticate(header[1])
        except TokenRefused as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        user = token.user
        ceiling = token.effective_role()
        if not ceiling:
            raise exceptions.AuthenticationFailed(
                f"The account of API token {token.prefix}… has no role any more."
            )
        roles.limit_roles(user, ceiling)
        set_audit_actor(request, user, token)
        return user, token

    def authenticate_header(self, request):
        return f'{KEYWORD} realm="api"'


class SessionAuthentication(authentication.SessionAuthentication):
    """The portal's session, CSRF enforced on writes (DRF's own check)."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            set_audit_actor(request, result[0], None)
        return result


def set_audit_actor(request, user, token):
    """Name the caller in the audit context for the rest of this request.

    The portal's middleware entered the context before the token was read; this replaces it
    inside that block, which restores the outer value when the request ends."""
    ctx = audit.current()
    audit.replace_context(
        audit.AuditContext(
            actor_id=user.pk,
            actor_name=user.get_username() + (f" (token {token.prefix}…)" if token else ""),
            source="api",
            address=ctx.address,
        )
    )
