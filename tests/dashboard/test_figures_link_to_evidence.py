"""Every figure on the dashboard links to its evidence, and the list it opens is filtered
to what the figure counted (issue 18)."""

import re
from datetime import timedelta
from html import unescape

import time_machine

from dr_portal.runs import RunStatus
from tests.dashboard import readiness_data as data
from tests.dashboard.test_dashboard import CREATED, T0, dests, healthy  # noqa: F401 - fixture


def _href(html: str, text_pattern: str) -> str:
    match = re.search(r'<a [^>]*href="([^"]+)"[^>]*>\s*' + text_pattern, html)
    assert match, f"no link for {text_pattern!r}"
    return unescape(match.group(1))


def _sources(response) -> str:
    """The sources table of the recovery page (the recent tests below name sources too)."""
    html = response.content.decode()
    return html[html.index("<h2>Sources</h2>") : html.index("<h2>Targets</h2>")]


def test_verdict_counts_open_the_sources_with_that_verdict(viewer_client, dests):  # noqa: F811
    with time_machine.travel(T0, tick=False):
        good = healthy("good-db", dests)
        empty = data.source("empty-db", created=CREATED)  # never backed up: breached
        html = viewer_client.get("/").content.decode()
        breached = _sources(viewer_client.get(_href(html, r"\d+ breached")))
        ok = _sources(viewer_client.get(_href(html, r"1 ok")))
    assert (
        f"/recovery/sources/{empty.pk}/" in breached
        and f"/recovery/sources/{good.pk}/" not in breached
    )
    assert f"/recovery/sources/{good.pk}/" in ok and f"/recovery/sources/{empty.pk}/" not in ok
    assert "Showing the sources whose verdict is" in breached


def test_failure_counts_open_the_failed_backups_and_restore_tests(viewer_client, dests):  # noqa: F811
    local, _, _ = dests
    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests)
        bad = data.backup(src, T0 - timedelta(hours=2), [], status=RunStatus.FAILED)
        good_run = data.backup(src, T0 - timedelta(hours=3), [local])
        failed_test = data.restore_test(
            src, good_run, T0 - timedelta(hours=1), status=RunStatus.FAILED
        )
        html = viewer_client.get("/").content.decode()
        backups = viewer_client.get(_href(html, r"1 backup<")).content.decode()
        page = viewer_client.get(_href(html, r"1 restore test<")).content.decode()
        tests = page[page.index('id="tests"') :]
    assert f"/backups/runs/{bad.pk}/" in backups and f"/backups/runs/{good_run.pk}/" not in backups
    assert f"/recovery/tests/{failed_test.pk}/" in tests
    assert "Failed or partial restore tests, last 24 h" in page
    passed = src.restore_tests.filter(status=RunStatus.SUCCEEDED).get()
    assert f"/recovery/tests/{passed.pk}/" not in tests


def test_storage_figures_open_the_destinations_copies(viewer_client, dests):  # noqa: F811
    with time_machine.travel(T0, tick=False):
        healthy("db", dests)
        html = viewer_client.get("/").content.decode()
    linked = re.findall(
        r'<a href="(/backups/destinations/\d+/#copies)"><strong>[^<]+</strong> in 1 copies', html
    )
    assert sorted(linked) == sorted(f"/backups/destinations/{d.pk}/#copies" for d in dests)
