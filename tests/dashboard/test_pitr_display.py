"""The recoverable window where people and monitors look: source pages, dashboard, /metrics,
compliance report. Rows only (no pgBackRest); the passphrase never appears anywhere."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client

from backups.engine.pgbackrest import Window
from backups.models import record_window
from dashboard import compliance
from tests.dashboard import readiness_data as data
from tests.dashboard.test_metrics import get, parse
from tests.factories import BackupJobFactory, DestinationFactory, SourceFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
GAP = "000000010000000A00000005"
TOKEN = "metrics-token"


@pytest.fixture
def pg(tmp_path):
    """A critical PITR source with a physical job, its passphrase derived, a base backup."""
    data.targets()
    with time_machine.travel(T0 - timedelta(days=30), tick=False):
        source = SourceFactory(
            system__name="tool-hub",
            postgresql=True,
            name="pg-main",
            data_class="critical",
            pitr=True,
            data_directory="/var/lib/postgresql/15/main",
        )
        repo = DestinationFactory(name="repo", path=str(tmp_path / "repo"))
        BackupJobFactory(source=source, name="pg-base", method="physical", destinations=[repo])
    data.backup(source, T0 - timedelta(hours=5), [repo])
    source.passphrase = source.to_stanza().cipher_pass
    return source


def window(source, newest_age=timedelta(seconds=45), gap=False):
    record_window(
        source,
        Window(
            oldest=T0 - timedelta(hours=5),
            newest=T0 - newest_age,
            newest_segment="000000010000000A00000004",
            gap_after="000000010000000A00000004" if gap else "",
            missing_segment=GAP if gap else "",
            checked_at=T0 - timedelta(seconds=20),
        ),
    )


def page(client, url) -> str:
    with time_machine.travel(T0, tick=False):
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_source_page_shows_the_window_and_never_the_passphrase(pg, viewer_client):
    window(pg)
    html = page(viewer_client, f"/backups/sources/{pg.pk}/")
    panel = re.search(r'<div class="card" id="recoverable-window">.*?</div>', html, re.S).group(0)
    assert "2026-06-01 07:00:00 UTC (5\xa0hours ago)" in panel
    assert "2026-06-01 11:59:15 UTC" in panel
    assert "000000010000000A00000004" in panel
    assert "WAL gap" not in panel
    assert f"master key <code>{pg.pitr_key_id}</code>" in html
    assert pg.passphrase not in html


def test_source_page_shows_a_gap_in_red_naming_the_segment(pg, viewer_client):
    window(pg, newest_age=timedelta(minutes=20), gap=True)
    html = page(viewer_client, f"/backups/sources/{pg.pk}/")
    assert re.search(rf'<p class="alert bad">WAL gap: segment <code>{GAP}</code> is missing', html)


def test_source_page_says_when_the_window_is_not_read_yet(pg, viewer_client):
    html = page(viewer_client, f"/backups/sources/{pg.pk}/")
    assert "Not read from pgBackRest yet" in html
    record_window(pg, Window(oldest=None, newest=None, error="repo1: no such bucket"))
    html = page(viewer_client, f"/backups/sources/{pg.pk}/")
    assert "Reading the window failed: repo1: no such bucket" in html


def test_recovery_page_shows_rpo_from_the_archive_and_the_window(pg, viewer_client):
    window(pg)
    html = page(viewer_client, f"/recovery/sources/{pg.pk}/")
    assert "(the newest archived WAL)" in html
    assert "2026-06-01 07:00:00 → 2026-06-01 11:59:15 UTC" in html
    assert pg.passphrase not in html


def test_dashboard_row_shows_the_window_and_the_gap(pg, viewer_client):
    window(pg)
    html = page(viewer_client, "/")
    row = re.search(rf'<tr id="source-{pg.pk}".*?</tr>', html, re.S).group(0)
    assert "recoverable 2026-06-01 07:00 to 2026-06-01 11:59:15 UTC" in row
    assert 'data-colour="green"' in row.split("<td>")[3]  # RPO 45 s of 1 h
    window(pg, newest_age=timedelta(minutes=2), gap=True)
    row = re.search(rf'<tr id="source-{pg.pk}".*?</tr>', page(viewer_client, "/"), re.S).group(0)
    assert f"WAL gap: {GAP} missing" in row
    assert 'data-colour="amber"' in row.split("<td>")[3]
    assert pg.passphrase not in html


def test_metrics_carry_the_window_as_timestamps_and_the_gap(pg, settings):
    settings.DR_METRICS_TOKEN, settings.DR_METRICS_ALLOW = TOKEN, []
    plain = SourceFactory(system__name="tool-hub", name="plain", data_class="critical")
    window(pg)
    with time_machine.travel(T0, tick=False):
        text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    samples = parse(text)
    labels = {"source": "pg-main", "system": "tool-hub", "data_class": "critical"}
    assert get("dr_pitr_recoverable_from_seconds", samples, **labels) == (
        (T0 - timedelta(hours=5)).timestamp()
    )
    assert get("dr_pitr_recoverable_to_seconds", samples, **labels) == (
        (T0 - timedelta(seconds=45)).timestamp()
    )
    assert get("dr_pitr_wal_gap", samples, **labels) == 0
    assert get("dr_rpo_seconds", samples, **labels) == 45
    assert 'dr_pitr_wal_gap{source="plain"' not in text  # only PITR sources have a window
    assert plain.name in text
    window(pg, gap=True)
    with time_machine.travel(T0, tick=False):
        text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert get("dr_pitr_wal_gap", parse(text), **labels) == 1


def test_compliance_report_lists_the_window_outside_the_hash(pg, viewer_client, capsys):
    start, end = compliance.period(date(2026, 5, 1), date(2026, 5, 31))
    window(pg)
    with time_machine.travel(T0, tick=False):
        report = compliance.build(start, end)
        produced = compliance.stamp(report, "vera")
    (item,) = produced["pitr_windows"]
    assert item["source"] == "pg-main"
    assert item["recoverable_to"] == "2026-06-01T11:59:15Z"
    assert item["rpo_s"] == 45.0 and item["wal_gap"] is False
    # The window moves every minute; the hash of the period's evidence does not.
    window(pg, newest_age=timedelta(seconds=5), gap=True)
    with time_machine.travel(T0, tick=False):
        assert compliance.digest(compliance.build(start, end)) == produced["sha256"]
        html = page(viewer_client, "/compliance/?date_from=2026-05-01&date_to=2026-05-31")
        call_command("compliance_report", "--from", "2026-05-01", "--to", "2026-05-31")
    assert "Recoverable windows at report time" in html
    assert f"segment {GAP} missing" in html
    assert pg.passphrase not in html
    out = capsys.readouterr().out
    assert "recoverable window of pg-main: 2026-06-01T07:00:00Z to 2026-06-01T11:59:55Z" in out
    assert f"WAL gap: {GAP} missing" in out


@pytest.mark.parametrize("persona", ["viewer_client", "operator_client", "manager_client"])
def test_every_role_sees_the_window_and_none_the_passphrase(request, persona, pg):
    client = request.getfixturevalue(persona)
    window(pg, gap=True)
    for url in (f"/backups/sources/{pg.pk}/", f"/recovery/sources/{pg.pk}/", "/"):
        html = page(client, url)
        assert GAP in html, url
        assert pg.passphrase not in html, url


def test_manager_forms_offer_pitr_and_refuse_a_physical_job_without_it(manager_client, pg):
    assert "data_directory" in page(manager_client, f"/backups/sources/{pg.pk}/edit/")
    assert 'name="backup_type"' in page(manager_client, "/backups/jobs/new/")
    plain = SourceFactory(postgresql=True, name="plain-pg")
    response = manager_client.post(
        "/backups/jobs/new/",
        {
            "name": "plain-base",
            "source": plain.pk,
            "destinations": [DestinationFactory().pk],
            "timezone": "UTC",
            "method": "physical",
            "backup_type": "full",
            "compression": "zstd",
        },
    )
    assert response.status_code == 400
    assert "turn pitr on for plain-pg" in response.content.decode()
