"""Incidents: identifiers, validation, timeline order, quick timeline entries, edits."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from incidents.models import Incident, IncidentSequence, TimelineEntry
from tests.factories import IncidentFactory


def _post_data(**over):
    data = {
        "title": "Primary database down",
        "summary": "Writes failing",
        "severity": "sev1",
        "status": "open",
        "detected_at": "2026-03-01T10:05",
        "started_at": "2026-03-01T10:00",
        "resolved_at": "",
    }
    data.update(over)
    return data


def test_identifiers_count_per_year(make_incident):
    first = make_incident(detected_at=datetime(2026, 2, 1, tzinfo=UTC))
    second = make_incident(detected_at=datetime(2026, 5, 1, tzinfo=UTC))
    other_year = make_incident(detected_at=datetime(2027, 1, 2, tzinfo=UTC))
    assert (first.identifier, second.identifier) == ("INC-2026-001", "INC-2026-002")
    assert other_year.identifier == "INC-2027-001"
    assert IncidentSequence.objects.get(year=2026).last == 2


def test_identifier_survives_deleted_incidents(make_incident):
    a = make_incident(detected_at=datetime(2026, 2, 1, tzinfo=UTC))
    a.delete()
    b = make_incident(detected_at=datetime(2026, 2, 2, tzinfo=UTC))
    assert b.identifier == "INC-2026-002"  # numbers are never reused


@pytest.mark.django_db(transaction=True)
def test_identifiers_unique_under_concurrent_creation():
    from django.db import connections

    errors, made = [], []

    def create(n):
        try:
            for _ in range(5):
                made.append(
                    IncidentFactory(
                        title=f"race {n}", detected_at=datetime(2026, 6, 1, tzinfo=UTC)
                    ).identifier
                )
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(made) == [f"INC-2026-{n:03d}" for n in range(1, 21)]


def test_operator_declares_incident(operator_client):
    response = operator_client.post(reverse("incidents:new"), _post_data())
    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response["Location"] == incident.get_absolute_url()
    assert incident.identifier.startswith("INC-")
    assert incident.created_by.username == "otto"
    assert incident.timeline.get().text == "Incident declared"


def test_resolved_before_detected_is_refused(operator_client):
    response = operator_client.post(
        reverse("incidents:new"), _post_data(resolved_at="2026-03-01T10:02", status="resolved")
    )
    assert response.status_code == 200
    assert "Resolved time is before the detected time." in response.content.decode()
    assert not Incident.objects.exists()


def test_resolved_before_started_is_refused(operator_client):
    response = operator_client.post(
        reverse("incidents:new"),
        _post_data(
            detected_at="2026-03-01T09:00",
            started_at="2026-03-01T10:00",
            resolved_at="2026-03-01T09:30",
        ),
    )
    assert "before the start time" in response.content.decode()
    assert not Incident.objects.exists()


@pytest.mark.parametrize("title", ["", "   "])
def test_empty_title_is_refused(operator_client, title):
    response = operator_client.post(reverse("incidents:new"), _post_data(title=title))
    assert response.status_code == 200
    assert "Give the incident a title." in response.content.decode()
    assert not Incident.objects.exists()


def test_resolved_status_needs_resolved_time(operator_client):
    response = operator_client.post(reverse("incidents:new"), _post_data(status="resolved"))
    assert "needs its resolved time" in response.content.decode()
    assert not Incident.objects.exists()


def test_duration_computed_from_times(make_incident):
    start = datetime(2026, 1, 15, 14, 32, tzinfo=UTC)
    incident = make_incident(
        started_at=start,
        detected_at=start + timedelta(minutes=3),
        resolved_at=start + timedelta(minutes=18),
    )
    assert incident.duration == timedelta(minutes=18)
    assert incident.time_to_detect == timedelta(minutes=3)
    assert make_incident().duration is None


def test_edit_status_adds_timeline_entry(operator_client, make_incident):
    incident = make_incident()
    data = _post_data(
        status="mitigated",
        detected_at=timezone.localtime(incident.detected_at).strftime("%Y-%m-%dT%H:%M"),
        started_at="",
    )
    response = operator_client.post(reverse("incidents:edit", args=[incident.identifier]), data)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "mitigated"
    assert incident.timeline.get().text == "Status: Open → Mitigated"


def test_timeline_shown_in_time_order_whatever_the_entry_order(operator_client, make_incident):
    incident = make_incident()
    url = reverse("incidents:timeline_add", args=[incident.identifier])
    operator_client.post(url, {"at": "2026-03-01T14:45", "text": "third: restarted"})
    operator_client.post(url, {"at": "2026-03-01T14:32", "text": "first: alert"})
    operator_client.post(url, {"at": "2026-03-01T14:33", "text": "second: found stuck connections"})
    page = operator_client.get(incident.get_absolute_url()).content.decode()
    assert page.index("first: alert") < page.index("second: found") < page.index("third: restarted")


def test_htmx_timeline_add_returns_fragment(operator_client, make_incident):
    incident = make_incident()
    with time_machine.travel(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), tick=False):
        response = operator_client.post(
            reverse("incidents:timeline_add", args=[incident.identifier]),
            {"at": "", "text": "DNS flipped to standby"},
            HTTP_HX_REQUEST="true",
        )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="timeline">')
    assert "DNS flipped to standby" in body
    entry = TimelineEntry.objects.get()
    assert entry.at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # empty time = now
    assert entry.author_name == "otto"


def test_htmx_timeline_empty_text_shows_error_and_adds_nothing(operator_client, make_incident):
    incident = make_incident()
    response = operator_client.post(
        reverse("incidents:timeline_add", args=[incident.identifier]),
        {"at": "", "text": "  "},
        HTTP_HX_REQUEST="true",
    )
    assert "Write what happened." in response.content.decode()
    assert not TimelineEntry.objects.exists()


def test_automatic_timeline_entries_cannot_be_deleted(operator_client, make_incident):
    incident = make_incident()
    auto = TimelineEntry.objects.create(incident=incident, text="run finished", automatic=True)
    manual = TimelineEntry.objects.create(incident=incident, text="typo")
    operator_client.post(reverse("incidents:timeline_delete", args=[incident.identifier, auto.pk]))
    operator_client.post(
        reverse("incidents:timeline_delete", args=[incident.identifier, manual.pk])
    )
    assert list(incident.timeline.values_list("text", flat=True)) == ["run finished"]


def test_one_click_resolve_stamps_now_and_notes_timeline(operator_client, make_incident):
    incident = make_incident()
    moment = timezone.now().replace(microsecond=0)
    with time_machine.travel(moment, tick=False):
        response = operator_client.post(
            reverse("incidents:status", args=[incident.identifier]), {"status": "resolved"}
        )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_at) == ("resolved", moment)
    assert incident.timeline.get().text == "Status: Open → Resolved"


def test_one_click_status_refuses_impossible_times(operator_client, make_incident):
    incident = make_incident(detected_at=timezone.now() + timedelta(hours=1))  # clock skew
    response = operator_client.post(
        reverse("incidents:status", args=[incident.identifier]), {"status": "resolved"}, follow=True
    )
    assert "Resolved time is before the detected time." in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == "open" and incident.resolved_at is None


def test_status_change_needs_operator_and_post(viewer_client, operator_client, make_incident):
    incident = make_incident()
    url = reverse("incidents:status", args=[incident.identifier])
    assert viewer_client.post(url, {"status": "closed"}).status_code == 403
    assert operator_client.get(url).status_code == 405
