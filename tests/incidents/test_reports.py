"""Reports: printable page, PDF (read back with pypdf), Markdown in the seed's shape; XSS stays text."""

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from pypdf import PdfReader

from incidents.models import FollowUp, Incident, TimelineEntry
from incidents.report import HEADINGS, md_escape, to_markdown

XSS = '<script>alert("owned")</script>'
START = datetime(2026, 1, 15, 14, 32, tzinfo=UTC)


@pytest.fixture
def full_incident(make_incident):
    incident = make_incident(
        title="Database connection pool exhausted",
        summary="API requests failed for 18 minutes.",
        status="resolved",
        started_at=START,
        detected_at=START,
        resolved_at=START + timedelta(minutes=18),
        root_cause="Stuck scheduler queries held every connection.",
        users_affected=500,
        data_loss="0",
        services_down="API + Dashboard",
        recovery_actions="Terminated stuck connections\nRestarted the database service",
        preventive_measures="1. Pool usage alert\n2. Statement timeout",
        lessons_learned="Saturation was visible ten minutes earlier.",
    )
    for minutes, text in [
        (0, "Alert: Database connection pool exhausted"),
        (13, "Action: Restarted database service"),
        (18, "Resolution: Service restored"),
    ]:
        TimelineEntry.objects.create(
            incident=incident, at=START + timedelta(minutes=minutes), text=text
        )
    ct = ContentType.objects.get_for_model(Incident)
    FollowUp.objects.create(
        text="Implement connection pool monitoring",
        content_type=ct,
        object_id=incident.pk,
        done=True,
    )
    FollowUp.objects.create(
        text="Set lower connection timeout", content_type=ct, object_id=incident.pk
    )
    return incident


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_download_contains_every_section(viewer_client, full_incident):
    response = viewer_client.get(reverse("incidents:pdf", args=[full_incident.identifier]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert (
        response["Content-Disposition"] == f'attachment; filename="{full_incident.identifier}.pdf"'
    )
    text = _pdf_text(response.content)
    assert f"Incident Report: {full_incident.identifier}" in text
    for heading in HEADINGS:
        assert heading.removeprefix("## ") in text
    for fragment in [
        "Restarted database service",
        "Stuck scheduler queries",
        "Users Affected: ~500",
        "Duration: 18 minutes",
        "[x] Implement connection pool monitoring",
        "[ ] Set lower connection timeout",
        "Pool usage alert",
    ]:
        assert fragment in text


def test_markdown_export_has_the_seed_template_headings(viewer_client, full_incident):
    response = viewer_client.get(reverse("incidents:markdown", args=[full_incident.identifier]))
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    text = response.content.decode()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [f"# Incident Report: {full_incident.identifier}", *HEADINGS]
    assert "- 14:32 - Alert: Database connection pool exhausted" in text
    assert "- Users Affected: ~500" in text
    assert "- Duration: 18 minutes" in text
    assert "- Data Loss: 0" in text
    assert "- Services Down: API + Dashboard" in text
    assert "1. Terminated stuck connections\n2. Restarted the database service" in text
    assert "1. Pool usage alert\n2. Statement timeout" in text  # pasted numbering not doubled
    assert "- [x] Implement connection pool monitoring" in text
    assert "- [ ] Set lower connection timeout" in text


def test_markdown_of_seed_template_structure_matches_exactly(full_incident):
    text = to_markdown(full_incident)
    # Sections appear once each, in the template's order.
    positions = [text.index("\n" + h + "\n") for h in HEADINGS]
    assert positions == sorted(positions)


def test_printable_page_has_report_and_print_css(viewer_client, full_incident):
    response = viewer_client.get(reverse("incidents:report", args=[full_incident.identifier]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Incident Report: " + full_incident.identifier in body
    assert 'media="print"' in body and "incidents/report.css" in body


def test_xss_in_timeline_is_text_in_page_pdf_and_markdown(viewer_client, full_incident):
    TimelineEntry.objects.create(incident=full_incident, at=START + timedelta(minutes=5), text=XSS)
    full_incident.title = XSS
    full_incident.save()
    for name in ("detail", "report"):
        body = viewer_client.get(
            reverse(f"incidents:{name}", args=[full_incident.identifier])
        ).content.decode()
        assert XSS not in body
        assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in body
    pdf = _pdf_text(
        viewer_client.get(reverse("incidents:pdf", args=[full_incident.identifier])).content
    )
    assert 'alert("owned")' in pdf  # rendered as visible text, not executed or dropped
    assert "<script>" in pdf.replace(" ", "")
    md = viewer_client.get(
        reverse("incidents:markdown", args=[full_incident.identifier])
    ).content.decode()
    assert "<script>" not in md
    assert r"\<script\>" in md


def test_md_escape_neutralises_markup():
    assert md_escape("# not a heading") == r"\# not a heading"
    assert md_escape("[link](javascript:x)") == r"\[link\](javascript:x)"
    assert md_escape("**bold** _it_") == r"\*\*bold\*\* \_it\_"
    assert md_escape("1. not a list") == r"1\. not a list"
    assert md_escape("&lt;b&gt;") == r"\&lt;b\&gt;"
    assert md_escape("plain text, e.g. 5 - 3") == "plain text, e.g. 5 - 3"


def test_multiline_text_cannot_break_out_of_list_items(make_incident):
    incident = make_incident()
    TimelineEntry.objects.create(incident=incident, text="line one\n## Injected heading")
    text = to_markdown(incident)
    assert not re.search(r"^## Injected", text, re.M)


def test_empty_incident_still_renders_every_section(viewer_client, make_incident):
    incident = make_incident(summary="")
    md = to_markdown(incident)
    assert [line for line in md.splitlines() if line.startswith("## ")] == HEADINGS
    response = viewer_client.get(reverse("incidents:pdf", args=[incident.identifier]))
    assert response.status_code == 200
