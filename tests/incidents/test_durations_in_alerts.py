"""Durations in alerts, notifications, timelines and run pages read 11m53s, never the raw
Python `0:11:52.608847` (issue 18)."""

import re
from datetime import timedelta

from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.utils import timezone

from dr_portal.runs import RunStatus
from incidents import events
from incidents.models import Alert, IncidentLink, TimelineEntry
from recovery.failover.models import FailoverRun
from tests.factories import IncidentFactory, RunbookFactory

RAW = re.compile(r"\d:\d\d:\d\d\.\d{6}|0:11:5\d")  # str(timedelta) of the RTO
RTO = timedelta(minutes=11, seconds=52, microseconds=608847)


def _finished_live_run():
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    run = FailoverRun.objects.create(
        runbook=runbook, system=runbook.system, mode="live", status=RunStatus.FAILED
    )
    ended = timezone.now()
    FailoverRun.objects.filter(pk=run.pk).update(
        started=ended - RTO, finished=ended, rto=RTO, error="DNS switch refused"
    )
    run.refresh_from_db()
    return run


def test_a_failover_alert_and_its_mail_show_the_rto_formatted(db, oncall, sync_queue):
    run = _finished_live_run()
    sync_queue(events.failover_alert, None, run)
    alert = Alert.objects.get(kind="failover_finished")
    assert alert.title.endswith("RTO 11m53s") and not RAW.search(alert.title)
    assert mail.outbox and all(not RAW.search(m.subject + m.body) for m in mail.outbox)


def test_timeline_and_run_page_show_durations_formatted(db, viewer_client):
    run = _finished_live_run()
    incident = IncidentFactory()
    IncidentLink.objects.create(
        incident=incident,
        content_type=ContentType.objects.get_for_model(FailoverRun),
        object_id=run.pk,
    )
    events.timeline(None, run)
    text = TimelineEntry.objects.get(incident=incident).text
    assert "11m53s" in text and not RAW.search(text)
    page = viewer_client.get(run.get_absolute_url()).content.decode()
    assert "11m53s" in page and not RAW.search(page)
