"""Call-out scenarios: participants notified through the incidents outbox, acknowledged by the
signed link in their message (no login) or by a tick in the portal."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from drills import services
from drills.models import CalloutAck, ScenarioStatus

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def callout_started(
    running_drill, operator, sync_queue, django_capture_on_commit_callbacks, mailoutbox
):
    manual = running_drill.scenario_runs.order_by("position").first()
    with time_machine.travel(START, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            for item in manual.items.all():
                services.tick_item(item, operator)
    return running_drill.scenario_runs.get(kind="callout")


def _link(message) -> str:
    return re.search(r"(/drills/ack/[^/\s]+/)", message.body).group(1)


def test_each_participant_gets_a_personal_link_by_email(callout_started, mailoutbox):
    assert callout_started.status == ScenarioStatus.RUNNING
    assert sorted(m.to[0] for m in mailoutbox) == ["bea@example.com", "dana@example.com"]
    links = {m.to[0]: _link(m) for m in mailoutbox}
    assert len(set(links.values())) == 2
    acks = CalloutAck.objects.filter(scenario_run=callout_started)
    assert {a.channels for a in acks} == {"email"}
    assert all(a.notified_at == START for a in acks)


def test_acknowledged_by_link_without_login_and_by_tick_in_the_portal(
    callout_started, mailoutbox, operator_client, django_capture_on_commit_callbacks
):
    dana_mail = next(m for m in mailoutbox if m.to[0] == "dana@example.com")
    link = _link(dana_mail)
    anonymous = Client()
    with time_machine.travel(START + timedelta(minutes=4), tick=False):
        page = anonymous.get(link)
        assert page.status_code == 200 and "I acknowledge the call-out" in page.content.decode()
        dana = CalloutAck.objects.get(contact__name="Dana Ops")
        assert dana.acknowledged_at is None  # opening the link (a mail scanner) is not an answer
        response = anonymous.post(link)
        assert "your acknowledgement is recorded" in response.content.decode()
    dana.refresh_from_db()
    assert dana.via == "link" and dana.time_to_ack == timedelta(minutes=4)
    # A second click keeps the first time.
    with time_machine.travel(START + timedelta(minutes=9), tick=False):
        assert "Already acknowledged" in anonymous.post(link).content.decode()
    dana.refresh_from_db()
    assert dana.acknowledged_at == START + timedelta(minutes=4)

    bea = CalloutAck.objects.get(contact__name="Bea Base")
    with time_machine.travel(START + timedelta(minutes=6), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            operator_client.post(
                reverse("drills:ack_tick", args=[callout_started.drill_id, bea.pk])
            )
    bea.refresh_from_db()
    assert bea.via == "portal" and bea.acknowledged_by.username == "otto"
    callout_started.refresh_from_db()
    assert callout_started.status == ScenarioStatus.PASSED
    assert callout_started.rto == timedelta(minutes=6)
    assert callout_started.rto_target == timedelta(minutes=15)
    texts = list(callout_started.drill.events.values_list("text", flat=True))
    assert any("Dana Ops (DevOps) acknowledged the call-out with the link" in t for t in texts)
    assert any("ticked by otto" in t for t in texts)


def test_missing_acknowledgement_fails_the_callout(callout_started, operator):
    services.acknowledge(CalloutAck.objects.get(contact__name="Bea Base"), "portal", operator)
    callout_started.refresh_from_db()
    services.complete_scenario(callout_started, operator)
    callout_started.refresh_from_db()
    assert callout_started.status == ScenarioStatus.FAILED
    assert callout_started.reasons == ["not acknowledged by Dana Ops (DevOps)"]


@pytest.mark.parametrize("token", ["garbage", "eyJhY2siOjF9:1tZ:forged"])
def test_forged_or_altered_link_is_refused(callout_started, token):
    response = Client().get(reverse("drills:ack", args=[token]))
    assert response.status_code == 404
    assert "This link is not valid" in response.content.decode()
    assert not CalloutAck.objects.filter(acknowledged_at__isnull=False).exists()


def test_expired_link_is_refused(callout_started, mailoutbox):
    link = _link(mailoutbox[0])
    with time_machine.travel(START + timedelta(days=8), tick=False):
        response = Client().post(link)
    assert response.status_code == 404
    assert not CalloutAck.objects.filter(acknowledged_at__isnull=False).exists()
