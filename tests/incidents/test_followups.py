"""Follow-ups: one model for incidents and drills; overdue lists; the daily overdue alert."""

from datetime import date, timedelta

import time_machine
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.urls import reverse

from incidents.models import Alert, FollowUp
from incidents.tasks import check_overdue_followups
from tests.factories import ContactFactory

TODAY = date(2026, 3, 10)


def _item(obj, text, due=None, **kw):
    return FollowUp.objects.create(
        text=text,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=obj.pk,
        due=due,
        **kw,
    )


def test_overdue_list_across_incidents_and_other_sources(viewer_client, make_incident):
    a, b = make_incident(title="A"), make_incident(title="B")
    contact = ContactFactory(role="DBA", name="Dee")  # stands in for a drill run: any model
    _item(a, "late one", TODAY - timedelta(days=1))
    _item(b, "late two", TODAY - timedelta(days=30), owner_contact=contact)
    _item(contact, "late from another kind of source", TODAY - timedelta(days=2))
    _item(a, "due today", TODAY)
    _item(a, "late but done", TODAY - timedelta(days=5), done=True)
    _item(a, "no date")
    with time_machine.travel(TODAY, tick=False):
        body = viewer_client.get(reverse("incidents:followups")).content.decode()
        open_body = viewer_client.get(
            reverse("incidents:followups") + "?show=open"
        ).content.decode()
    for text in ("late one", "late two", "late from another kind of source"):
        assert text in body
    for text in ("due today", "late but done", "no date"):
        assert text not in body
    assert "due today" in open_body and "no date" in open_body and "late but done" not in open_body
    assert a.get_absolute_url() in body


def test_overdue_shown_on_the_incident(viewer_client, make_incident):
    incident = make_incident()
    _item(incident, "rotate the pager", TODAY - timedelta(days=3))
    with time_machine.travel(TODAY, tick=False):
        body = viewer_client.get(incident.get_absolute_url()).content.decode()
    assert "1 follow-up item overdue" in body
    assert "overdue</span>" in body


def test_operator_adds_and_ticks_off_follow_up(operator_client, make_incident, operator):
    incident = make_incident()
    response = operator_client.post(
        reverse("incidents:followup_add", args=[incident.identifier]),
        {"text": "Add pool monitoring", "owner_user": operator.pk, "due": "2026-04-01"},
    )
    assert response.status_code == 302
    item = incident.followups().get()
    assert (item.text, item.owner_user, item.due, item.source) == (
        "Add pool monitoring",
        operator,
        date(2026, 4, 1),
        incident,
    )
    operator_client.post(reverse("incidents:followup_toggle", args=[item.pk]))
    item.refresh_from_db()
    assert item.done and item.done_at is not None


def test_follow_up_needs_text_and_one_owner(operator_client, make_incident, operator):
    incident = make_incident()
    contact = ContactFactory(role="DBA", name="Dee")
    operator_client.post(
        reverse("incidents:followup_add", args=[incident.identifier]), {"text": ""}
    )
    operator_client.post(
        reverse("incidents:followup_add", args=[incident.identifier]),
        {"text": "x", "owner_user": operator.pk, "owner_contact": contact.pk},
    )
    assert not FollowUp.objects.exists()


def test_daily_check_alerts_once_per_item_and_recovers_when_done(sync_queue, oncall, make_incident):
    incident = make_incident()
    owner = ContactFactory(role="DBA", name="Dee", email="dee@example.com")
    item = _item(incident, "rotate the pager", TODAY - timedelta(days=1), owner_contact=owner)
    _item(incident, "not late", TODAY + timedelta(days=1))
    with time_machine.travel(TODAY, tick=False):
        assert sync_queue(check_overdue_followups) == 1
        assert sync_queue(check_overdue_followups) == 1  # next day's run: no second message
    assert sorted(m.to[0] for m in mail.outbox) == [
        "dee@example.com",
        "pat@example.com",
        "sam@example.com",
    ]
    assert "rotate the pager" in mail.outbox[0].subject
    assert incident.identifier in mail.outbox[0].body
    mail.outbox.clear()
    item.done = True
    item.save()
    with time_machine.travel(TODAY, tick=False):
        sync_queue(check_overdue_followups)
    assert (
        len(mail.outbox) == 2
    )  # one recovered message to on-call (owner was an extra for the alert)
    assert all(m.subject.startswith("[DR Portal] Recovered:") for m in mail.outbox)
    assert not Alert.objects.filter(recovered__isnull=True).exists()


def test_ticking_off_recovers_at_once(sync_queue, oncall, operator_client, make_incident):
    incident = make_incident()
    item = _item(incident, "rotate the pager", TODAY - timedelta(days=1))
    with time_machine.travel(TODAY, tick=False):
        sync_queue(check_overdue_followups)
    mail.outbox.clear()
    sync_queue(operator_client.post, reverse("incidents:followup_toggle", args=[item.pk]))
    assert [m.subject for m in mail.outbox][:1] == [
        f"[DR Portal] Recovered: Follow-up overdue since {item.due:%Y-%m-%d}: rotate the pager"
    ]


def test_schedules_exist_after_migrate(db):
    from django_q.models import Schedule

    names = set(Schedule.objects.values_list("name", flat=True))
    assert {"system: retry due notifications", "system: follow-ups overdue"} <= names
    from incidents.schedules import ensure_schedules

    ensure_schedules()
    assert Schedule.objects.filter(name="system: follow-ups overdue").count() == 1


def test_deleting_an_incident_deletes_its_followups(make_incident):
    incident = make_incident()
    _item(incident, "goes with it")
    incident.delete()
    assert not FollowUp.objects.exists()


def test_followups_of_deleted_source_still_listed(viewer_client, db):
    source = ContactFactory(role="DBA", name="Temp")  # a source without a GenericRelation
    _item(source, "orphan", TODAY - timedelta(days=1))
    source.delete()
    with time_machine.travel(TODAY, tick=False):
        body = viewer_client.get(reverse("incidents:followups")).content.decode()
    assert "orphan" in body and "(deleted)" in body


def test_toggle_never_redirects_off_site(operator_client, make_incident):
    incident = make_incident()
    item = _item(incident, "x")
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        response = operator_client.post(
            reverse("incidents:followup_toggle", args=[item.pk]), {"next": evil}
        )
        assert response["Location"] == incident.get_absolute_url() + "#followups"
    response = operator_client.post(
        reverse("incidents:followup_toggle", args=[item.pk]),
        {"next": "/incidents/follow-ups/?show=all"},
    )
    assert response["Location"] == "/incidents/follow-ups/?show=all"
