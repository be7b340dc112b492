"""The demo loader: the seed's four contact roles and one resolved incident; idempotent."""

import io

from incidents import demo
from incidents.models import Contact, Incident
from incidents.report import HEADINGS, to_markdown


def test_demo_loads_once(db):
    demo.load(io.StringIO())
    demo.load(io.StringIO())
    assert {c.role for c in Contact.objects.all()} == {
        "On-Call",
        "DBA",
        "Infrastructure",
        "Manager",
    }
    assert Contact.objects.count() == len(demo.CONTACTS)
    incident = Incident.objects.get()
    assert incident.status == "resolved"
    assert [e.text for e in incident.timeline.all()] == [t for _, t in demo.TIMELINE]
    md = to_markdown(incident)
    assert "- 14:32 - Alert: Database connection pool exhausted" in md
    assert "- Duration: 18 minutes" in md
    assert [line for line in md.splitlines() if line.startswith("## ")] == HEADINGS
