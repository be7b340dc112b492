"""The readiness dashboard: personas, figures, colours and evidence ages, htmx fragment, query count."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashboard import board
from dashboard.board import AMBER, GREEN, RED
from dr_portal.runs import RunStatus
from dr_portal.templatetags.portal import filesize
from tests.dashboard import readiness_data as data
from tests.factories import DrillPlanFactory, IncidentFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CREATED = T0 - timedelta(days=30)


def colour_of(html: str, row_id: str, column: int) -> str:
    """data-colour of the column-th figure (0-based) in the table row with this id."""
    row = re.search(rf'<tr id="{row_id}".*?</tr>', html, re.S).group(0)
    return re.findall(r'data-colour="(\w+)"', row)[column]


RPO, VERIFIED, LAST_TEST, RTO, FORECAST, RULE = range(6)


@pytest.fixture
def dests(tmp_path):
    data.targets()
    return data.destinations(tmp_path)


def healthy(name, dests, rpo_minutes=20, test_minutes_ago=10, schedule="0 * * * *", **kw):
    """A critical source (1 h RPO target) with a passed restore test of its newest backup."""
    local, s3, glacier = dests
    src = data.source(name, created=CREATED, **kw)
    data.job(src, [local, s3, glacier], schedule=schedule, changed=CREATED)
    run = data.backup(src, T0 - timedelta(minutes=rpo_minutes), [local, s3, glacier])
    data.restore_test(src, run, T0 - timedelta(minutes=test_minutes_ago), seconds=120)
    return src


# --- access -----------------------------------------------------------------------------


def test_anonymous_goes_to_login():
    for path in ("/", "/dashboard/fragment"):
        response = Client().get(path)
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("persona", ["viewer_client", "operator_client", "manager_client"])
def test_every_role_sees_dashboard_and_fragment(request, persona, dests):
    client = request.getfixturevalue(persona)
    with time_machine.travel(T0, tick=False):
        healthy("toolhub-db", dests)
        page = client.get("/")
        fragment = client.get("/dashboard/fragment")
    assert page.status_code == 200 and fragment.status_code == 200
    html = page.content.decode()
    assert 'hx-get="/dashboard/fragment"' in html and 'hx-trigger="every 30s"' in html
    assert "toolhub-db" in fragment.content.decode()
    assert "<html" not in fragment.content.decode()  # a fragment, not a page
    assert "no-cache" in fragment["Cache-Control"] or "max-age=0" in fragment["Cache-Control"]


def test_fragment_refuses_post(viewer_client):
    assert viewer_client.post("/dashboard/fragment").status_code == 405


def test_escrow_warning_stays_until_a_manager_confirms(viewer_client, manager_client):
    assert b"escrow-warning" in viewer_client.get("/").content
    manager_client.post("/escrow/confirm/", {"where": "ops password manager"})
    assert b"escrow-warning" not in viewer_client.get("/").content


# --- figures and colours -------------------------------------------------------------------


def test_healthy_source_is_green_with_evidence_links_and_ages(viewer_client, dests):
    with time_machine.travel(T0, tick=False):
        src = healthy("toolhub-db", dests)
        html = viewer_client.get("/").content.decode()
    row = re.search(rf'<tr id="source-{src.pk}".*?</tr>', html, re.S).group(0)
    for column in (RPO, VERIFIED, LAST_TEST, RTO, FORECAST, RULE):
        assert colour_of(html, f"source-{src.pk}", column) == GREEN
    assert 'data-verdict="ok"' in row
    assert "evidence 20m ago" in row  # the backup
    assert "evidence 10m ago" in row  # the passed restore test
    run = src.runs.get()
    test = src.restore_tests.get()
    assert f'href="/backups/runs/{run.pk}/"' in row
    assert f'href="/recovery/tests/{test.pk}/"' in row
    assert "3 copies, 2 kind(s), off-site" in row


@pytest.mark.parametrize(
    "minutes, expected", [(20, GREEN), (47, GREEN), (49, AMBER), (59, AMBER), (61, RED)]
)
def test_rpo_colour_thresholds(viewer_client, dests, minutes, expected):
    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests, rpo_minutes=minutes, schedule="")
        html = viewer_client.get("/").content.decode()
    assert colour_of(html, f"source-{src.pk}", RPO) == expected


def test_backup_older_than_its_schedule_is_amber_not_green(viewer_client, dests):
    """Important data (24 h target), hourly job, newest backup 3 h old: 12 % of target, yet stale."""
    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests, rpo_minutes=180, data_class="important")
        html = viewer_client.get("/").content.decode()
    assert colour_of(html, f"source-{src.pk}", RPO) == AMBER
    assert "older than its schedule" in html


def test_restore_test_older_than_its_schedule_is_amber_not_green(viewer_client, dests):
    # Weekly schedule (Sundays 03:00); the last passed test is three weeks old.
    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests, test_minutes_ago=60 * 24 * 21, rpo_minutes=20)
        html = viewer_client.get("/").content.decode()
    for column in (LAST_TEST, RTO):
        assert colour_of(html, f"source-{src.pk}", column) == AMBER
    assert "evidence 21d ago" in html


def test_configuration_change_invalidates_evidence(viewer_client, dests):
    from backups.models import Source

    with time_machine.travel(T0 - timedelta(minutes=5), tick=False):
        src = healthy("db", dests)
        # An edit after the restore test: the proof no longer holds.
        src = Source.objects.get(pk=src.pk)
        src.path = "/tmp/elsewhere.db"
        src.save()
    with time_machine.travel(T0, tick=False):
        html = viewer_client.get("/").content.decode()
    for column in (VERIFIED, LAST_TEST, RTO):
        assert colour_of(html, f"source-{src.pk}", column) == AMBER
    assert "configuration changed since" in html
    assert 'data-verdict="at_risk"' in html


def test_failed_newest_test_and_no_backup_are_red(viewer_client, dests):
    local, s3, _ = dests
    with time_machine.travel(T0, tick=False):
        src = data.source("db", created=CREATED)
        data.job(src, [local], changed=CREATED)
        run = data.backup(src, T0 - timedelta(minutes=20), [local])
        data.restore_test(src, run, T0 - timedelta(minutes=10), status=RunStatus.FAILED)
        empty = data.source("empty", created=CREATED)
        html = viewer_client.get("/").content.decode()
    assert colour_of(html, f"source-{src.pk}", LAST_TEST) == RED
    assert colour_of(html, f"source-{src.pk}", RULE) == AMBER  # one local copy only
    assert colour_of(html, f"source-{empty.pk}", RPO) == RED
    assert colour_of(html, f"source-{empty.pk}", RULE) == RED
    assert 'data-verdict="breached"' in html


def test_rule_321_definition():
    local = {"kind": "local"}
    s3 = {"kind": "s3"}
    assert board.rule_321([local, s3, s3]) == (True, True, True)
    assert board.rule_321([local, local, local]) == (True, False, False)
    assert board.rule_321([s3, s3, s3]) == (True, False, True)
    assert board.rule_321([local, s3]) == (False, True, True)


def test_deleted_copies_do_not_count(viewer_client, dests):
    local, s3, glacier = dests
    with time_machine.travel(T0, tick=False):
        src = data.source("db", created=CREATED)
        data.backup(src, T0 - timedelta(minutes=20), [local])
        data.backup(src, T0 - timedelta(days=40), [s3, glacier], deleted=True)
        copies = board.copies_by_source([src])[src.pk]
    assert [c["name"] for c in copies] == ["local"]


def test_failures_incidents_followups_drills_and_storage(viewer_client, dests):
    from django.contrib.contenttypes.models import ContentType

    from drills.models import DrillRun
    from incidents.models import FollowUp, Incident

    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests)
        bad = data.backup(src, T0 - timedelta(hours=2), [], status=RunStatus.FAILED)
        data.backup(src, T0 - timedelta(hours=30), [], status=RunStatus.FAILED)  # older than 24 h
        inc = IncidentFactory(title="API down", severity="sev1", detected_at=T0)
        FollowUp.objects.create(
            text="add a replica",
            due=(T0 - timedelta(days=3)).date(),
            content_type=ContentType.objects.get_for_model(Incident),
            object_id=inc.pk,
        )
        plan = DrillPlanFactory(name="quarterly", created=T0 - timedelta(days=400))
        plan.systems.set([src.system])
        drill = DrillRun.objects.create(
            plan=plan,
            plan_name=plan.name,
            status="ended",
            verdict="passed",
            declared_at=T0 - timedelta(days=10),
        )
        html = viewer_client.get("/").content.decode()
    assert re.search(r'id="failures-24h"><span class="v">1 failed, 0 partial', html)
    assert f"/backups/runs/{bad.pk}/" in html
    assert 'data-colour="red" id="open-incidents"' in html and inc.identifier in html
    assert 'data-colour="amber" id="overdue-followups"' in html and "add a replica" in html
    assert f"/drills/runs/{drill.pk}/" in html and "evidence 10d ago" in html
    assert "passed (quarterly)" in html
    assert "/backups/destinations/" in html and "3 copies" in html


def test_long_lists_show_eight_and_link_to_the_rest(viewer_client, dests):
    from django.contrib.contenttypes.models import ContentType

    from incidents.models import FollowUp, Incident

    with time_machine.travel(T0, tick=False):
        for k in range(11):
            inc = IncidentFactory(title=f"outage {k}", severity="sev3", detected_at=T0)
            FollowUp.objects.create(
                text=f"fix number {k}",
                due=(T0 - timedelta(days=k + 1)).date(),
                content_type=ContentType.objects.get_for_model(Incident),
                object_id=inc.pk,
            )
        html = viewer_client.get("/").content.decode()
    assert 'id="open-incidents"' in html and '<span class="v">11 open</span>' in html
    assert len(re.findall(r"fix number \d+ — due", html)) == 8
    assert len(re.findall(r"</a> outage \d+ <span", html)) == 8
    assert '/incidents/">and 3 more</a>' in html
    assert "and 3 more</a>" in html.split('id="overdue-followups"')[1]


def test_overdue_drill_plan_is_red(viewer_client, dests):
    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests)
        plan = DrillPlanFactory(name="quarterly", created=T0 - timedelta(days=400))
        plan.systems.set([src.system])
        context = board.build(now=T0, charts=False)
    block = next(b for b in context["systems"] if b.system == src.system)
    assert block.drill.value == "never drilled"
    assert block.next_drill.colour == RED and "overdue since" in block.next_drill.value


def test_dashboard_verdicts_come_from_recovery_readiness(dests):
    from recovery.readiness import source_readiness

    with time_machine.travel(T0, tick=False):
        a = healthy("a", dests)
        b = healthy("b", dests, rpo_minutes=70)
        context = board.build(now=T0, charts=False)
        ready = source_readiness([a, b], now=T0)
    rows = {row.source.pk: row for block in context["systems"] for row in block.rows}
    assert rows[a.pk].verdict == ready[a.pk].verdict == "ok"
    assert rows[b.pk].verdict == ready[b.pk].verdict == "breached"


def test_verdicts_read_as_words(viewer_client, dests):
    """at_risk is a code; people read "at risk" (it used to show as "atrisk" on the recovery page)."""
    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests, rpo_minutes=55)  # over 80 % of the 1 h target
        dashboard = viewer_client.get("/").content.decode()
        recovery = viewer_client.get("/recovery/").content.decode()
        detail = viewer_client.get(f"/recovery/sources/{src.pk}/").content.decode()
    assert f'<tr id="source-{src.pk}" data-verdict="at_risk">' in dashboard
    assert '"badge status-amber" title="RPO 55m is over 80% of its target 1h">at risk</span>' in (
        dashboard
    )
    assert '<span class="badge status-at_risk">at risk</span>' in recovery
    assert '<span class="badge status-at_risk">at risk</span>' in detail
    assert "atrisk" not in dashboard + recovery + detail


def test_charts_rendered_against_targets(viewer_client, dests):
    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests)
        data.backup(src, T0 - timedelta(hours=3), [dests[0]])
        html = viewer_client.get("/").content.decode()
    assert "db: RPO, last 7 days" in html
    assert "RPO target 1h" in html
    assert "Restore tests: measured RTO per day" in html and "RTO target 1h" in html


# --- scale: the query count does not grow with the data --------------------------------------------


def _queries(client, path, django_assert_max_num_queries, limit):
    from django.core.cache import cache

    cache.delete(board.SLOW_FIGURES_KEY)  # count the worst case: slow figures recomputed
    with django_assert_max_num_queries(limit) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_query_count_does_not_grow_with_history(
    viewer_client, tmp_path, django_assert_max_num_queries
):
    """2 sources × 5 runs, then 20 sources × 50 runs (and their tests): the same number of queries."""
    from backups.models import BackupRun

    paths = ("/", "/dashboard/fragment")
    # 50: the page's own queries plus the worker banner's (no worker runs in this test) and,
    # each write here being a readiness change, a miss of the readiness cache (read, store).
    with time_machine.travel(T0, tick=False):
        data.world(tmp_path, 2, 5, now=T0)
        viewer_client.get("/")  # session, content types
        small = {p: _queries(viewer_client, p, django_assert_max_num_queries, 50) for p in paths}
        data.world(tmp_path, 18, 50, now=T0, offset=2)
        assert BackupRun.objects.count() == 2 * 5 + 18 * 50
        viewer_client.get("/")  # the readiness cache filled again, as it was for `small`
        large = {p: _queries(viewer_client, p, django_assert_max_num_queries, 50) for p in paths}
    assert large == small


def test_slow_figures_are_shared_until_the_count_is_two_minutes_old(dests):
    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests)
        first = board.slow_figures([src], T0)
        data.backup(src, T0 - timedelta(minutes=1), [dests[0]], size=5)
        assert board.slow_figures([src], T0 + timedelta(seconds=119)) == first
        later = board.slow_figures([src], T0 + timedelta(seconds=121))
    assert later["at"] == T0 + timedelta(seconds=121)
    assert [d["used"] for d in later["storage"] if d["name"] == "local"] == [1_000_005]


def test_worker_recount_spares_the_page_the_sums(viewer_client, dests):
    """The scheduled task counts storage and 3-2-1; the next render reads that count."""
    from django.core.cache import cache
    from django_q.models import Schedule

    from backups.models import Source
    from dashboard.tasks import refresh_dashboard_figures

    assert Schedule.objects.filter(func="dashboard.tasks.refresh_dashboard_figures").exists()
    with time_machine.travel(T0, tick=False):
        src = healthy("db", dests)
        viewer_client.get("/dashboard/fragment")  # session, content types
        cache.delete(board.SLOW_FIGURES_KEY)
        with CaptureQueriesContext(connection) as recounting:
            viewer_client.get("/dashboard/fragment")
        data.backup(src, T0 - timedelta(minutes=1), [dests[0]], size=5)
        assert refresh_dashboard_figures() == Source.objects.count()  # with the seeded portal DB
        with CaptureQueriesContext(connection) as reading:
            html = viewer_client.get("/dashboard/fragment").content.decode()
        counted = cache.get(board.SLOW_FIGURES_KEY)

    def sums(captured):  # storage per destination, copies per source and destination
        return [
            q["sql"]
            for q in captured.captured_queries
            if 'SUM("backups_backupcopy"."bytes_stored")' in q["sql"]
            or 'FROM "backups_backupcopy" INNER JOIN' in q["sql"]
        ]

    assert len(sums(recounting)) == 3  # storage, 3-2-1 copies, copies per master key
    assert sums(reading) == []
    assert [d["used"] for d in counted["storage"] if d["name"] == "local"] == [1_000_005]
    assert f"<strong>{filesize(1_000_005)}</strong> in 2 copies" in html
