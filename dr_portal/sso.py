"""OIDC single sign-on: the provider's endpoints, its tokens checked, accounts and roles from claims.

Built on mozilla-django-oidc (authorization code flow with PKCE, state and nonce kept in the
session). What this module adds, and why:

- endpoints from the issuer's discovery document, fetched and cached an hour, so one variable
  (DR_OIDC_ISSUER) configures the provider; the document must name the same issuer;
- the ID token's signature, algorithm, issuer, audience (our client id) and expiry are all
  checked (the library skips the audience and issuer);
- the account is found by the identity (issuer, `sub`) through SsoIdentity, never by user
  name: a local account of the same name is not taken over until a superuser links it;
- the role groups are set from the role claim at every sign-in (a group removed at the
  provider removes the role here); SSO never makes or signs in a superuser;
- every sign-in, refusal and role change is in the audit log; tokens are not kept.

Views and URLs are in dr_portal/sso_views.py; the settings block is DR_OIDC_* (docs/sso.md).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import transaction
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from dr_portal import audit
from dr_portal.lib import roles

log = logging.getLogger(__name__)

TIMEOUT_S = 10
DISCOVERY_TTL_S = 3600
# Asymmetric algorithms only: HS* would verify with the client secret, "none" with nothing.
SIGN_ALGOS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
LEEWAY_S = 60  # clock skew between the provider and the portal


class SsoRefused(Exception):
    """Sign-in refused for a reason the audit log and the person should read (no secrets)."""

    def __init__(self, reason: str, user=None):
        super().__init__(reason)
        self.reason = reason
        self.user = user


class SsoUnavailable(SsoRefused):
    """The provider's discovery document could not be fetched or is not acceptable."""


def enabled() -> bool:
    return bool(getattr(settings, "DR_OIDC_ISSUER", ""))


def password_login_allowed(user=None) -> bool:
    """DR_OIDC_PASSWORD_LOGIN=off keeps passwords for superusers only (SSO must be on)."""
    if not enabled() or settings.DR_OIDC_PASSWORD_LOGIN:
        return True
    return bool(user is not None and user.is_superuser)


# --- Configuration ---------------------------------------------------------------------------


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str, what: str) -> str:
    """Why `url` may not be used for the provider ("" when it may): https, or http on loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return ""
    if parts.scheme == "http" and is_loopback_url(url):
        return ""
    return f"{what} must be an https:// URL (http:// only on a loopback address), not {url!r}"


def parse_role_map(text: str) -> dict[str, str]:
    """`group=role,group=role` -> {group: role}; ValueError names the bad entry."""
    mapping = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        group, sep, role = (p.strip() for p in entry.partition("="))
        if not sep or not group or role not in roles.ORDER:
            raise ValueError(
                f"{entry!r} is not group=role with role one of {', '.join(roles.ORDER)}"
            )
        mapping[group] = role
    return mapping


def parse_system_role_map(text: str) -> dict[str, tuple[str, str]]:
    """`group=role@system,...` -> {group: (system, role)}; ValueError names the bad entry."""
    mapping = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        group, sep, target = (p.strip() for p in entry.partition("="))
        role, at, system = (p.strip() for p in target.partition("@"))
        if not sep or not at or not group or not system or role not in roles.ORDER:
            raise ValueError(
                f"{entry!r} is not group=role@system with role one of {', '.join(roles.ORDER)}"
            )
        mapping[group] = (system, role)
    return mapping


def config_problems() -> list[str]:
    """Everything wrong with the DR_OIDC_* settings, one sentence each (for the system check)."""
    if not enabled():
        return []
    problems = []
    issuer_problem = url_problem(settings.DR_OIDC_ISSUER, "DR_OIDC_ISSUER")
    if issuer_problem:
        problems.append(issuer_problem)
    for name in ("DR_OIDC_CLIENT_ID", "DR_OIDC_CLIENT_SECRET"):
        if not getattr(settings, name):
            problems.append(f"{name} must be set when DR_OIDC_ISSUER is")
    if settings.DR_OIDC_SIGN_ALGO not in SIGN_ALGOS:
        problems.append(
            f"DR_OIDC_SIGN_ALGO must be one of {', '.join(sorted(SIGN_ALGOS))}, "
            f"not {settings.DR_OIDC_SIGN_ALGO!r}"
        )
    if "openid" not in settings.DR_OIDC_SCOPES.split():
        problems.append("DR_OIDC_SCOPES must include openid")
    if not settings.DR_OIDC_ROLE_CLAIM:
        problems.append("DR_OIDC_ROLE_CLAIM must name a claim (default: groups)")
    for name, parse in (
        ("DR_OIDC_ROLE_MAP", parse_role_map),
        ("DR_OIDC_SYSTEM_ROLE_MAP", parse_system_role_map),
    ):
        try:
            parse(getattr(settings, name))
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    return problems


# --- The provider's endpoints (discovery) ------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""


_discovered: dict[str, tuple[float, Provider]] = {}
_discovery_lock = threading.Lock()


def forget_provider() -> None:
    """Drop the cached discovery documents (tests; a provider that moved its endpoints)."""
    with _discovery_lock:
        _discovered.clear()


def provider() -> Provider:
    """The configured issuer's endpoints, from its discovery document (cached DISCOVERY_TTL_S)."""
    issuer = settings.DR_OIDC_ISSUER
    with _discovery_lock:
        cached = _discovered.get(issuer)
        if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
            return cached[1]
    found = _discover(issuer)
    with _discovery_lock:
        _discovered[issuer] = (time.monotonic(), found)
    return found


def _discover(issuer: str) -> Provider:
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=TIMEOUT_S, allow_redirects=False)
        response.raise_for_status()
        doc = response.json()
    except (requests.RequestException, ValueError) as exc:
        log.warning("SSO: discovery document %s could not be read: %s", url, type(exc).__name__)
        raise SsoUnavailable("the identity provider could not be reached") from None
    # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was fetched for.
    if not isinstance(doc, dict) or doc.get("issuer", "").rstrip("/") != issuer:
        raise SsoUnavailable("the identity provider's discovery document names another issuer")
    fields = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        value = doc.get(name) or ""
        if not value and name != "userinfo_endpoint":
            raise SsoUnavailable(f"the identity provider's discovery document has no {name}")
        if value and url_problem(value, name):
            raise SsoUnavailable(url_problem(value, f"the provider's {name}"))
        fields[name] = value
    return Provider(issuer=issuer, **fields)


_LIBRARY_SETTINGS = {
    # mozilla-django-oidc's names -> ours, read at request time (override_settings works).
    "OIDC_RP_CLIENT_ID": lambda: settings.DR_OIDC_CLIENT_ID,
    "OIDC_RP_CLIENT_SECRET": lambda: settings.DR_OIDC_CLIENT_SECRET,
    "OIDC_RP_SIGN_ALGO": lambda: settings.DR_OIDC_SIGN_ALGO,
    "OIDC_RP_SCOPES": lambda: settings.DR_OIDC_SCOPES,
    "OIDC_OP_AUTHORIZATION_ENDPOINT": lambda: provider().authorization_endpoint,
    "OIDC_OP_TOKEN_ENDPOINT": lambda: provider().token_endpoint,
    "OIDC_OP_JWKS_ENDPOINT": lambda: provider().jwks_uri,
    "OIDC_OP_USER_ENDPOINT": lambda: provider().userinfo_endpoint,
    "OIDC_RP_IDP_SIGN_KEY": lambda: None,
    "OIDC_USE_PKCE": lambda: True,
    "OIDC_USE_NONCE": lambda: True,
    "OIDC_TIMEOUT": lambda: TIMEOUT_S,
    "OIDC_CREATE_USER": lambda: True,
    "OIDC_STORE_ACCESS_TOKEN": lambda: False,
    "OIDC_STORE_ID_TOKEN": lambda: False,
    "OIDC_ALLOW_UNSECURED_JWT": lambda: False,
    "OIDC_AUTHENTICATION_CALLBACK_URL": lambda: "oidc_authentication_callback",
}


def library_setting(attr, *default):
    """get_settings for mozilla-django-oidc's classes: our DR_OIDC_* and discovered endpoints."""
    if attr in _LIBRARY_SETTINGS:
        return _LIBRARY_SETTINGS[attr]()
    return getattr(settings, attr, *default)


# --- Accounts and roles from claims --------------------------------------------------------


def claim_values(claims: dict, name: str) -> list[str]:
    """A claim as a list of strings: a JSON list, or one string (space- or comma-separated)."""
    value = claims.get(name)
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def role_from_claims(claims: dict) -> str:
    """The highest role the role claim maps to ("" for none)."""
    mapping = parse_role_map(settings.DR_OIDC_ROLE_MAP)
    mapped = {mapping[g] for g in claim_values(claims, settings.DR_OIDC_ROLE_CLAIM) if g in mapping}
    return next((r for r in reversed(roles.ORDER) if r in mapped), "")


def system_roles_from_claims(claims: dict) -> list[tuple[str, str]]:
    """(system name, role) pairs the role claim maps to through DR_OIDC_SYSTEM_ROLE_MAP."""
    mapping = parse_system_role_map(settings.DR_OIDC_SYSTEM_ROLE_MAP)
    groups = claim_values(claims, settings.DR_OIDC_ROLE_CLAIM)
    return sorted({mapping[g] for g in groups if g in mapping})


def apply_system_roles(user, pairs: list[tuple[str, str]]) -> None:
    """Give `user` exactly these per-system roles. A documented no-op in this branch.

    Per-system roles (the SystemRole model) are built beside SSO; until they are wired in,
    the pairs from DR_OIDC_SYSTEM_ROLE_MAP are computed and audited at sign-in but grant
    nothing. Wiring: replace the user's SSO-granted SystemRole rows with `pairs`, auditing
    each change, in the same transaction as sync_roles()."""
    return None


def mfa_asserted(claims: dict) -> bool:
    """The provider says it checked a second factor (the ID token's `amr`, RFC 8176)."""
    wanted = {m.strip() for m in settings.DR_OIDC_MFA_AMR if m.strip()}
    return bool(wanted & set(claim_values(claims, "amr")))


def sync_roles(user, role: str) -> tuple[str, str]:
    """Make `role` the user's only role group (none for ""); other groups stay. (old, new)."""
    old = roles.top_role(user)
    current = set(user.groups.filter(name__in=roles.ORDER).values_list("name", flat=True))
    wanted = {role} if role else set()
    if current != wanted:
        user.groups.remove(*Group.objects.filter(name__in=current - wanted))
        if role:
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
        user.__dict__.pop("_dr_roles", None)  # roles.user_roles caches per request
    return old, role


_username_ok = UnicodeUsernameValidator()


def username_for(claims: dict) -> str:
    """preferred_username, else email, else sub: the first that is a valid Django user name."""
    for name in ("preferred_username", "email", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and 0 < len(value) <= 150:
            try:
                _username_ok(value)
            except ValidationError:
                continue
            return value
    raise SsoRefused("the identity has no usable user name (preferred_username, email or sub)")


def account_for(claims: dict):
    """The linked account for (issuer, sub), or a new one; never an unlinked existing account."""
    from dr_portal.models import SsoIdentity  # noqa: PLC0415 (models load after this module)

    User = get_user_model()
    issuer, subject = settings.DR_OIDC_ISSUER, claims["sub"]
    identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject)
    identity = identity.first()
    if identity is not None:
        user = identity.user
        if user.is_superuser:
            raise SsoRefused(f"{user.username} is a superuser: superusers sign in with a password")
        if not user.is_active:
            raise SsoRefused(f"the account {user.username} is deactivated", user=user)
        return user, identity, False
    username = username_for(claims)
    if User.objects.filter(username__iexact=username).exists():
        raise SsoRefused(
            f"an account named {username} exists and is not linked to this identity "
            f"(sub {subject}): a superuser links it under Admin > SSO identities"
        )
    user = User(username=username, email=_email(claims))
    user.first_name = str(claims.get("given_name") or "")[:150]
    user.last_name = str(claims.get("family_name") or "")[:150]
    user.set_unusable_password()  # this account signs in through the provider only
    user.save()
    identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    return user, identity, True


def _email(claims: dict) -> str:
    email = claims.get("email")
    return email[:254] if isinstance(email, str) else ""


def sign_in(claims: dict):
    """The account for verified claims, its roles re-synced from them, everything audited."""
    try:
        role = role_from_claims(claims)
        system_pairs = system_roles_from_claims(claims)
    except ValueError as exc:  # also reported by `manage.py check` (dr_portal.E021)
        raise SsoRefused(f"the portal's role map is not valid: {exc}") from None
    with transaction.atomic():
        user, identity, created = account_for(claims)
        email = _email(claims)
        if email and email != user.email:
            user.email = email
            user.save(update_fields=["email"])
        old, new = sync_roles(user, role)
        identity.last_login = timezone.now()
        identity.save(update_fields=["last_login"])
        if old != new:
            audit.record(
                "sso_role_change",
                user,
                user=user,
                changes={"role": [old, new]},
                detail=f"role from the {settings.DR_OIDC_ROLE_CLAIM} claim at SSO sign-in",
            )
        if system_pairs:
            apply_system_roles(user, system_pairs)
            audit.record(
                "sso_system_roles",
                user,
                user=user,
                changes={"system_roles": [f"{r}@{s}" for s, r in system_pairs]},
                detail="per-system roles from claims (applied once per-system roles exist)",
            )
    user._dr_sso_created = created
    user._dr_sso_mfa = mfa_asserted(claims)
    user._dr_sso_role = new
    return user


class SsoBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with strict token checks and our account rules.

    Inert (returns None) unless SSO is configured and the call comes from the callback view.
    """

    get_settings = staticmethod(library_setting)

    def __init__(self, *args, **kwargs):
        # The library reads its endpoints here; ours come from discovery, only when used.
        self.UserModel = get_user_model()

    def authenticate(self, request, nonce=None, code_verifier=None, **kwargs):
        # Only the callback view passes a nonce (the one kept in the session with the state).
        if nonce is None or request is None or not enabled():
            return None
        found = provider()  # SsoUnavailable goes to the callback view, which audits it
        self.OIDC_OP_TOKEN_ENDPOINT = found.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = found.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = found.jwks_uri
        self.OIDC_RP_CLIENT_ID = settings.DR_OIDC_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.DR_OIDC_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.DR_OIDC_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        return super().authenticate(request, nonce=nonce, code_verifier=code_verifier)

    def get_user(self, user_id):
        """The session's user; none once deactivated, or once SSO is turned off."""
        user = super().get_user(user_id)
        if user is None or not enabled() or not self.user_can_authenticate(user):
            return None
        return user

    def _verify_jws(self, payload, key):
        """Signature, algorithm, issuer, audience, expiry and issue time, all required."""
        try:
            return jwt.decode(
                payload,
                key,
                algorithms=[settings.DR_OIDC_SIGN_ALGO],
                audience=settings.DR_OIDC_CLIENT_ID,
                issuer=settings.DR_OIDC_ISSUER,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"the ID token was refused: {exc}") from None

    def raise_token_response_error(self, response):
        # The library's message carries the provider's whole answer; ours only its status.
        if response.status_code != 200:
            raise SsoRefused(f"the provider refused the code (HTTP {response.status_code})")

    def get_userinfo(self, access_token, id_token, payload):
        if not self.OIDC_OP_USER_ENDPOINT:
            return {}
        return super().get_userinfo(access_token, id_token, payload)

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 5.3.2: userinfo about another subject must not be used.
        if userinfo and userinfo.get("sub") != payload.get("sub"):
            raise SsoRefused("the provider's userinfo is about another subject")
        # Signed ID token claims win over userinfo where both say something.
        return sign_in({**userinfo, **payload})


class PasswordBackend(ModelBackend):
    """Password sign-in, for superusers only when DR_OIDC_PASSWORD_LOGIN is off."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and not password_login_allowed(user):
            return None  # counted as a failure by axes like a wrong password
        return user
