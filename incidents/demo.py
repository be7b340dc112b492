"""Demo data: the seed's key contacts and one resolved incident with the seed's timeline.

Idempotent: contacts are matched by role and name, the incident by its title.
"""

from datetime import UTC, datetime, timedelta

from django.contrib.contenttypes.models import ContentType

from incidents.models import Contact, FollowUp, Incident, IncidentStatus, Severity, TimelineEntry

CONTACTS = [
    (
        "On-Call",
        "Alex Rivera",
        "+44 20 7946 0001",
        "oncall-primary@example.com",
        "primary",
        "Pager rotation week A.",
    ),
    (
        "On-Call",
        "Jordan Lee",
        "+44 20 7946 0002",
        "oncall-secondary@example.com",
        "secondary",
        "Pager rotation week B.",
    ),
    (
        "DBA",
        "Priya Natarajan",
        "+44 20 7946 0003",
        "dba@example.com",
        "primary",
        "PostgreSQL, WAL archive, restores.",
    ),
    (
        "Infrastructure",
        "Sam Okafor",
        "+44 20 7946 0004",
        "infra@example.com",
        "",
        "Network, DNS, load balancer.",
    ),
    (
        "Manager",
        "Morgan Blake",
        "+44 20 7946 0005",
        "manager@example.com",
        "",
        "Escalation and stakeholder updates.",
    ),
]

TITLE = "Database connection pool exhausted"
# The seed template's timeline (14:32 to 15:00), on a fixed day so the demo is stable.
DAY = datetime(2026, 1, 15, tzinfo=UTC)
TIMELINE = [
    ("14:32", "Alert: Database connection pool exhausted"),
    ("14:33", "Investigation: Found 500 stuck connections"),
    ("14:45", "Action: Restarted database service"),
    ("14:50", "Resolution: Service restored"),
    ("15:00", "All-clear: Systems verified stable"),
]
FOLLOWUPS = [
    ("Implement connection pool monitoring", 14, True),
    ("Set lower connection timeout", 21, False),
    ("Add automated remediation", 45, False),
]


def _at(hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return DAY + timedelta(hours=hours, minutes=minutes)


def load(stdout):
    created = 0
    for role, name, phone, email, slot, notes in CONTACTS:
        contact, made = Contact.objects.get_or_create(
            role=role, name=name, defaults=dict(phone=phone, email=email, notes=notes)
        )
        created += made
        if made and slot and not Contact.objects.filter(role=role, on_call=slot).exists():
            contact.on_call = slot
            contact.save(update_fields=["on_call"])
    stdout.write(f"incidents: {created} demo contact(s) added")

    if Incident.objects.filter(title=TITLE).exists():
        stdout.write("incidents: demo incident already present")
        return
    incident = Incident.objects.create(
        title=TITLE,
        summary="API requests failed for 18 minutes because the database connection pool was exhausted.",
        severity=Severity.SEV2,
        status=IncidentStatus.RESOLVED,
        started_at=_at("14:32"),
        detected_at=_at("14:32"),
        resolved_at=_at("14:50"),
        root_cause=(
            "A deploy lowered the statement timeout handling in the scheduler: long-running "
            "execution queries held their connections, and the pool (500) filled within minutes."
        ),
        users_affected=500,
        data_loss="0",
        services_down="API + Dashboard",
        recovery_actions="Terminated the stuck connections\nRestarted the database service\nVerified API health checks",
        preventive_measures="Alert on pool usage above 80%\nStatement timeout of 30 s for scheduler queries\nRunbook step for clearing stuck connections",
        lessons_learned="The pool saturation was visible 10 minutes before the outage; nobody was alerted on it.",
    )
    for hhmm, text in TIMELINE:
        TimelineEntry.objects.create(
            incident=incident, at=_at(hhmm), text=text, author_name="Alex Rivera"
        )
    ct = ContentType.objects.get_for_model(Incident)
    owner = Contact.objects.filter(role="DBA").first()
    for text, days, done in FOLLOWUPS:
        FollowUp.objects.create(
            text=text,
            content_type=ct,
            object_id=incident.pk,
            owner_contact=owner,
            due=(DAY + timedelta(days=days)).date(),
            done=done,
        )
    stdout.write(f"incidents: demo incident {incident.identifier} added")
