"""Incident.move_to: the one place an incident's status changes (view, edit form, code)."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from incidents.models import IncidentStatus


def test_resolving_stamps_time_and_writes_the_timeline(make_incident, operator):
    incident = make_incident()
    assert incident.move_to(IncidentStatus.RESOLVED, by=operator, note="failover done")
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_at is not None
    entry = incident.timeline.get()
    assert entry.text == "Status: Open → Resolved (failover done)"
    assert (entry.author, entry.author_name, entry.automatic) == (operator, "otto", True)


def test_reopening_clears_the_resolved_time(make_incident):
    incident = make_incident(status="resolved", resolved_at=timezone.now())
    assert incident.move_to("open")
    incident.refresh_from_db()
    assert incident.resolved_at is None
    assert incident.timeline.get().author_name == ""


def test_same_status_is_no_move(make_incident):
    incident = make_incident()
    assert not incident.move_to("open")
    assert not incident.timeline.exists()


def test_unknown_status_is_refused(make_incident):
    with pytest.raises(ValueError):
        make_incident().move_to("exploded")


def test_invalid_move_leaves_the_incident_as_it_was(make_incident):
    incident = make_incident(detected_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(ValidationError):
        incident.move_to("resolved")
    assert (incident.status, incident.resolved_at) == ("open", None)
    incident.refresh_from_db()
    assert incident.status == "open" and not incident.timeline.exists()


def test_edit_form_reopening_follows_the_same_rule(operator_client, make_incident):
    """The edit form used to keep the resolved time of a reopened incident."""
    moment = timezone.now().replace(second=0, microsecond=0)
    incident = make_incident(status="resolved", resolved_at=moment)
    local = timezone.localtime
    data = {
        "title": incident.title,
        "summary": incident.summary,
        "severity": incident.severity,
        "status": "open",
        "detected_at": local(incident.detected_at).strftime("%Y-%m-%dT%H:%M"),
        "resolved_at": local(moment).strftime("%Y-%m-%dT%H:%M"),
    }
    response = operator_client.post(reverse("incidents:edit", args=[incident.identifier]), data)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_at) == ("open", None)
    assert incident.timeline.get().text == "Status: Resolved → Open"
