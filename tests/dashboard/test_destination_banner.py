"""Destination health on every page beside the worker banner: a destination that failed a
backup write, lost a copy or failed its test in the last hour is named, with a link."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from dashboard.destination_health import failing_destinations
from dr_portal import audit
from dr_portal.runs import RunStatus
from tests.factories import BackupCopyFactory, BackupRunFactory, DestinationFactory

PAGES = ["dashboard", "backups:index", "incidents:index", "drills:index"]


@pytest.fixture
def destinations(db):
    return DestinationFactory(name="offsite-s3"), DestinationFactory(name="nas")


def _banner(client, name="dashboard"):
    html = client.get(reverse(name)).content.decode()
    start = html.find('id="destination-warning"')
    return "" if start < 0 else html[start : html.index("</section>", start)]


def test_no_banner_while_destinations_are_fine(viewer_client, destinations):
    assert _banner(viewer_client) == ""


@pytest.mark.parametrize("page", PAGES)
def test_a_failed_write_is_named_with_a_link_on_every_page(viewer_client, destinations, page):
    offsite, _ = destinations
    run = BackupRunFactory(status=RunStatus.PARTIAL, finished=timezone.now())
    run.append_log("not stored at offsite-s3: AccessDenied")
    run.save()
    banner = _banner(viewer_client, page)
    assert f'href="{offsite.get_absolute_url()}">offsite-s3</a>' in banner
    assert "a backup could not write to it" in banner and "nas" not in banner


def test_lost_copies_and_failed_tests_are_named_and_an_ok_test_clears_it(destinations):
    offsite, nas = destinations
    copy = BackupCopyFactory(destination=nas, ok=True)
    copy.mark_lost("scrub: checksum mismatch")
    audit.record("test destination", offsite, detail="failed: bucket not found")
    assert [(d["name"], d["reasons"]) for d in failing_destinations()] == [
        ("nas", ["a copy there was found lost"]),
        ("offsite-s3", ["its last test failed"]),
    ]
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        audit.record("test destination", offsite, detail="ok")
    assert [d["name"] for d in failing_destinations()] == ["nas"]


def test_the_banner_goes_after_an_hour(destinations):
    offsite, _ = destinations
    audit.record("test destination", offsite, detail="failed: timeout")
    assert failing_destinations(now=timezone.now() + timedelta(minutes=59))
    assert failing_destinations(now=timezone.now() + timedelta(minutes=61)) == []
