"""The portal's main paths in a real browser, served by gunicorn, worked by a real cluster.

- operator: logs in, runs a backup now and watches it reach "succeeded", sees the dashboard's
  RPO turn green, finds the run in the filtered run history, runs a restore test and sees
  its measured RTO;
- manager: restores a backup to a new target through the confirmation dialog;
- operator: writes an incident with three timeline entries, print-previews it, downloads its PDF;
- viewer: sees no action buttons; a forged POST (with a valid CSRF token) is refused with 403.
"""

import io
import re
import sqlite3

import pytest
from playwright.sync_api import expect

from backups import services as backup_services
from backups.models import BackupRun
from incidents.models import Incident
from recovery.models import Restore, RestoreTest
from tests.e2e.conftest import log_in
from tests.factories import (
    PASSWORD,
    BackupJobFactory,
    DestinationFactory,
    IncidentFactory,
    UserFactory,
)
from tests.support import data

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RUN_TIMEOUT = 90_000  # ms: a backup or restore test through the queue on a busy machine


@pytest.fixture
def toolhub(tmp_path):
    """The demo's shape: Tool Hub's SQLite database (critical), a local destination, a job."""
    source = data.sqlite_source("toolhub-db", data.small_sqlite(tmp_path / "tool_hub.db", rows=50))
    job = BackupJobFactory(
        name="toolhub-db-hourly",
        source=source,
        destinations=[DestinationFactory(name="local", path=str(tmp_path / "backups"))],
        schedule="0 * * * *",
    )
    return source, job


def rpo_colour(page, source):
    page.goto("/")
    figure = page.locator(f"#source-{source.pk} td:nth-child(3) .fig")
    return figure.get_attribute("data-colour")


def test_operator_runs_a_backup_sees_rpo_green_and_a_measured_rto(page, toolhub):
    source, job = toolhub
    UserFactory(username="otto", role="operator")
    log_in(page, "otto", PASSWORD)
    assert rpo_colour(page, source) == "red"  # no good backup yet
    page.shot("dashboard-rpo-red")

    page.goto(f"/backups/jobs/{job.pk}/")
    page.click("button:has-text('Run now')")
    page.wait_for_url(re.compile(r"/backups/runs/\d+/$"))
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    progress = page.locator("#run-progress .badge").first
    expect(progress).to_have_text("succeeded", timeout=RUN_TIMEOUT)  # htmx polling, no reload
    run = BackupRun.objects.get(pk=run_id)
    assert run.status == "succeeded" and run.requested_by.username == "otto"
    expect(page.locator("#run-progress")).to_contain_text("stored")
    page.shot("backup-succeeded")

    assert rpo_colour(page, source) == "green"
    page.shot("dashboard-rpo-green")

    # The run history finds it by its filters; a filter it does not match shows nothing.
    page.goto("/backups/runs/")
    page.select_option("select[name=status]", "succeeded")
    page.select_option("select[name=source]", label="toolhub-db")
    page.click("button:has-text('Show')")
    expect(page.locator(f"a[href='/backups/runs/{run_id}/']")).to_be_visible()
    page.select_option("select[name=status]", "failed_or_partial")
    page.click("button:has-text('Show')")
    expect(page.locator("table")).to_contain_text("No run matches these filters.")

    page.goto(f"/recovery/sources/{source.pk}/")
    page.click("button:has-text('Run restore test')")
    page.wait_for_url(re.compile(r"/recovery/tests/\d+/$"))
    expect(page.locator("#test-progress .badge").first).to_have_text(
        "succeeded", timeout=RUN_TIMEOUT
    )
    test = RestoreTest.objects.get()
    assert test.status == "succeeded" and test.rto is not None
    rto = page.locator("dt:has-text('Measured RTO') + dd").inner_text()
    assert re.search(r"\d", rto), rto  # a measured duration, e.g. "2 s"
    expect(page.locator("#test-progress")).to_contain_text("workflows")  # the check that ran
    page.shot("restore-test-rto")


def test_manager_restores_to_a_new_target_through_the_confirmation(page, toolhub, tmp_path):
    source, job = toolhub
    run = backup_services.backup_now(job)
    assert run.status == "succeeded", run.error
    UserFactory(username="mona", role="manager")
    target = tmp_path / "restored" / "tool_hub.db"
    target.parent.mkdir()

    log_in(page, "mona", PASSWORD)
    page.goto(f"/recovery/sources/{source.pk}/")
    page.click("a:has-text('Restore…')")
    page.fill("input[name=target]", str(target))
    page.shot("restore-form")

    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("button:has-text('Restore')")
    page.wait_for_timeout(300)
    assert dialogs and str(target) in dialogs[0]
    assert "/restore/" in page.url and not Restore.objects.exists()  # dismissed: nothing queued

    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.click("button:has-text('Restore')")
    page.wait_for_url(re.compile(r"/recovery/restores/\d+/$"))
    assert len(dialogs) == 2 and str(target) in dialogs[1]
    expect(page.locator("body")).to_contain_text("succeeded", timeout=RUN_TIMEOUT)
    restore = Restore.objects.get()
    assert restore.status == "succeeded", restore.error
    assert restore.target == str(target) and restore.requested_by.username == "mona"
    page.shot("restore-succeeded")
    with sqlite3.connect(target) as conn:  # the restored file is a real, complete copy
        assert conn.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 50


def test_incident_with_timeline_print_preview_and_pdf(page, tmp_path):
    from pypdf import PdfReader

    UserFactory(username="otto", role="operator")
    log_in(page, "otto", PASSWORD)
    page.goto("/incidents/new/")
    title = "Tool Hub database lost its disk"
    page.fill("input[name=title]", title)
    page.fill("[name=summary]", "The primary database volume failed; restored from backup.")
    page.click("button:has-text('Open incident')")
    page.wait_for_url(re.compile(r"/incidents/[^/]+/$"))
    incident = Incident.objects.get()

    entries = [
        "Detection: disk alarms on db-1",
        "Action: restore of toolhub-db started",
        "Resolution: service verified by the workflows check",
    ]
    for text in entries:
        page.fill("#timeline input[name=text]", text)
        page.click("#timeline button:has-text('Add')")
        expect(page.locator("#timeline")).to_contain_text(text)  # htmx swapped the fragment
    rows = page.locator("#timeline tbody tr")
    expect(rows).to_have_count(4)  # "Incident declared" + the three entries
    assert incident.timeline.filter(automatic=False).count() == 3
    page.shot("incident-timeline")

    page.click("a:has-text('Printable report')")
    page.emulate_media(media="print")
    expect(page.locator("header.topbar")).to_be_hidden()
    expect(page.locator("footer.print-only")).to_be_visible()
    for text in entries:
        expect(page.locator("body")).to_contain_text(text)
    page.shot("incident-print-preview")
    page.emulate_media(media="screen")

    page.goto(incident.get_absolute_url())
    with page.expect_download() as download_info:
        page.click("a.button:has-text('PDF')")
    download = download_info.value
    assert download.suggested_filename == f"{incident.identifier}.pdf"
    pdf = download.path().read_bytes()
    assert pdf.startswith(b"%PDF-")
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert title in " ".join(text.split())
    assert "restore of toolhub-db started" in " ".join(text.split())
    page.shot("incident-after-pdf")


def test_viewer_sees_no_action_buttons_and_a_forged_post_is_refused(page, toolhub):
    source, job = toolhub
    UserFactory(username="vera", role="viewer")
    incident = IncidentFactory(title="Read-only look")
    log_in(page, "vera", PASSWORD)

    page.goto(f"/backups/jobs/{job.pk}/")
    expect(page.locator("h1")).to_contain_text(job.name)
    for label in ("Run now", "Edit", "Delete"):
        expect(page.get_by_role("button", name=label)).to_have_count(0)
        expect(page.get_by_role("link", name=label, exact=True)).to_have_count(0)
    page.shot("viewer-job")
    page.goto(f"/recovery/sources/{source.pk}/")
    expect(page.get_by_role("button", name="Run restore test")).to_have_count(0)
    expect(page.get_by_role("link", name="Restore…")).to_have_count(0)
    page.goto(incident.get_absolute_url())
    expect(page.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    expect(page.locator("#timeline form")).to_have_count(0)
    page.shot("viewer-incident")

    # A forged POST from the viewer's own page, with the page's valid CSRF token.
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    assert token
    for url in (
        f"/backups/jobs/{job.pk}/run/",
        f"/recovery/sources/{source.pk}/test/",
        f"/incidents/{incident.identifier}/timeline/",
    ):
        status = page.evaluate(
            """async ([url, token]) => {
                const body = new URLSearchParams({csrfmiddlewaretoken: token, text: "forged"});
                const r = await fetch(url, {method: "POST", body, headers: {"X-CSRFToken": token}});
                return r.status;
            }""",
            [url, token],
        )
        assert status == 403, (url, status)
    assert not BackupRun.objects.exists() and not RestoreTest.objects.exists()
    assert incident.timeline.filter(text="forged").count() == 0
    page.goto(f"/backups/jobs/{job.pk}/")
    page.shot("viewer-after-forged-posts")
