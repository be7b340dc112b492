"""{% load incidents_tags %}{% key_contacts %}: the key contacts card for drill and runbook pages.

{% key_contacts %}                      every contact, on-call first
{% key_contacts roles="DBA,Manager" %}  only these roles (case-insensitive)
{% key_contacts oncall_only=True %}     only people on call
"""

from django import template

from incidents.models import Contact, seed_order

register = template.Library()


@register.inclusion_tag("incidents/_contacts.html")
def key_contacts(roles="", oncall_only=False, title="Key contacts"):
    contacts = Contact.objects.all()
    wanted = [r.strip().lower() for r in roles.split(",") if r.strip()]
    items = [c for c in seed_order(contacts) if not wanted or c.role.lower() in wanted]
    if oncall_only:
        items = [c for c in items if c.on_call]
    return {"contacts": items, "title": title}
