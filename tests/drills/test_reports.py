"""The drill report (page and PDF) in the seed's Document Results shape, the RTO charts, the
coverage grid, and follow-ups listed with the incidents' ones."""

import io
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from pypdf import PdfReader

from drills import services
from drills.models import DrillRun
from tests.factories import RestoreTestFactory, SourceFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def ended_drill(running_drill, operator, contacts):
    """Network scenario ticked over 20 minutes, call-out answered, one finding, one action."""
    drill = running_drill
    DrillRun.objects.filter(pk=drill.pk).update(declared_at=START)
    drill.scenario_runs.filter(position=1).update(started=START)
    drill.refresh_from_db()
    network, callout = drill.scenario_runs.order_by("position")
    for minutes, item in zip((5, 12, 20), network.items.all(), strict=True):
        with time_machine.travel(START + timedelta(minutes=minutes), tick=False):
            services.tick_item(item, operator)
    with time_machine.travel(START + timedelta(minutes=24), tick=False):
        for ack in callout.acks.all():
            services.acknowledge(ack, "portal", operator)
        services.add_finding(drill, "Runbook lacks the DNS TTL step", operator, "high")
        services.add_followup(
            drill, "Add the DNS TTL step to the runbook", operator, contacts[0], date(2026, 2, 1)
        )
        services.verify_cleanup(drill)
        return services.end_drill(drill, operator)


def test_report_page_has_the_document_results_fields_and_the_timeline(ended_drill, viewer_client):
    body = viewer_client.get(reverse("drills:report", args=[ended_drill.pk])).content.decode()
    assert "Document Results" in body
    assert "Date: Q1 2026 (2026-01-02)" in body
    assert "Scenario: Simulate network failure" in body
    assert "RTO Achieved: 20m (target 30m, met)" in body
    assert "RPO Achieved: not applicable" in body
    assert "Runbook lacks the DNS TTL step (high)" in body
    assert "Add the DNS TTL step to the runbook" in body and "Dana Ops" in body
    # the timeline of every step, with who did it
    assert "Ticked “Restore the link”" in body and "otto" in body
    assert "Drill ended: passed" in body


@pytest.mark.slow
def test_pdf_contains_the_document_results_fields(ended_drill, viewer_client):
    response = viewer_client.get(reverse("drills:pdf", args=[ended_drill.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    for needle in [
        "Date: Q1 2026",
        "Scenario: Simulate network failure",
        "RTO Achieved: 20m",
        "RPO Achieved",
        "Issues",
        "Runbook lacks the DNS TTL step",
        "Actions",
        "Add the DNS TTL step to the runbook",
        "Timeline",
    ]:
        assert needle in text, needle


def test_index_charts_rto_against_target_per_scenario(ended_drill, viewer_client):
    body = viewer_client.get(reverse("drills:index")).content.decode()
    assert "Simulate network failure: RTO achieved vs target" in body
    assert "RTO target 30m" in body
    assert "<svg" in body


def test_drill_followups_are_listed_with_the_incidents_followups(ended_drill, viewer_client):
    body = viewer_client.get(reverse("incidents:followups")).content.decode()
    assert "Add the DNS TTL step to the runbook" in body


def test_coverage_grid_marks_exercised_empty_and_stale_cells(ended_drill, viewer_client, system):
    source = SourceFactory(system=system, name="toolhub-db", kind="sqlite", path="/tmp/x")
    old = datetime(2025, 6, 1, tzinfo=UTC)
    RestoreTestFactory(source=source, status="succeeded", queued=old, finished=old)
    from drills.coverage import build

    with time_machine.travel(START + timedelta(days=30), tick=False):
        types, rows = build()
    cells = dict(rows)[system]
    by_type = dict(zip([t for t, _ in types], cells, strict=True))
    assert by_type["network_outage"].label == f"Drill #{ended_drill.pk}: Simulate network failure"
    assert by_type["network_outage"].css == "cell-passed"
    assert by_type["database_failure"].stale and by_type["database_failure"].css == "cell-stale"
    assert by_type["region_failure"].empty and by_type["region_failure"].css == "cell-empty"
    with time_machine.travel(START + timedelta(days=30), tick=False):
        body = viewer_client.get(reverse("drills:coverage")).content.decode()
    assert (
        "cell-passed" in body and "cell-empty" in body and "cell-stale" in body and "never" in body
    )


def test_finding_added_through_the_view_lands_in_its_scenario_block(running_drill, operator_client):
    first = running_drill.scenario_runs.order_by("position").first()
    response = operator_client.post(
        reverse("drills:finding_add", args=[running_drill.pk]),
        {"text": "Nobody knew where the link switch was", "severity": "low",
         "scenario_run": first.pk},
    )  # fmt: skip
    assert response.status_code == 302
    assert running_drill.findings.get().scenario_run == first
    body = operator_client.get(reverse("drills:report", args=[running_drill.pk])).content.decode()
    assert "Scenario: Simulate network failure" in body
    assert "Issues: Nobody knew where the link switch was" in body
    assert "Issues: none" in body  # the call-out block has none
    empty = operator_client.post(
        reverse("drills:finding_add", args=[running_drill.pk]), {"text": "", "severity": "low"},
        follow=True,
    )  # fmt: skip
    assert "Describe the issue found." in empty.content.decode()


def test_a_drill_follow_up_appears_once_not_under_every_scenario(ended_drill, viewer_client):
    """Two scenarios, one drill-wide follow-up and finding: one 'whole drill' block has them."""
    body = viewer_client.get(reverse("drills:report", args=[ended_drill.pk])).content.decode()
    results = body.split("<h2>Document Results</h2>")[1].split("<h2>Issues</h2>")[0]
    assert results.count("Scenario: ") == 3  # two scenarios and the whole drill
    assert results.count("Add the DNS TTL step to the runbook") == 1
    assert results.count("Runbook lacks the DNS TTL step") == 1
    assert "Scenario: whole drill (2 scenarios)" in results
