"""Template helpers shared by every app: durations, sizes, roles, status badges."""

from django import template

from dr_portal.lib import roles
from dr_portal.lib.durations import format_duration
from dr_portal.related import related
from dr_portal.signed_reports import issued

register = template.Library()


@register.filter
def duration(value):
    return format_duration(value)


@register.filter
def words(value):
    """A code as text: at_risk → at risk."""
    return str(value).replace("_", " ")


@register.filter
def filesize(num):
    if num is None:
        return "—"
    num = float(num)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(num) < 1024 or unit == "TB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1024


@register.filter
def has_role(user, role):
    return roles.has_role(user, role)


@register.filter
def has_role_somewhere(user, role):
    return roles.has_role_somewhere(user, role)


@register.filter
def roles_on(user, system):
    """{% if "operator" in user|roles_on:job.source.system_id %}: the roles on one system."""
    return roles.roles_on(user, system)


@register.inclusion_tag("dr_portal/_status.html")
def status_badge(status):
    return {"status": status}


@register.inclusion_tag("dr_portal/_related.html", takes_context=True)
def related_links(context, obj):
    """The records of other apps that belong to obj (restore tests, incidents…) that the
    user may see, linked."""
    request = context.get("request")
    return {"groups": related(obj, getattr(request, "user", None))}


@register.inclusion_tag("dr_portal/_signed_reports.html")
def signed_reports(kind, obj=None):
    """The signed PDFs issued of this report (newest first), each with its .sig."""
    return {"reports": issued(kind, obj)}
