"""The login page's single sign-on parts, read from settings at render time (dr_portal/sso.py)."""

from django import template

from dr_portal import sso

register = template.Library()


@register.simple_tag
def sso_enabled():
    return sso.enabled()


@register.simple_tag
def sso_passwords_for_everyone():
    """False when DR_OIDC_PASSWORD_LOGIN=off: the password form is for superusers only."""
    return sso.password_login_allowed()
