"""The plan page's charts: RTO and RPO achieved per drill (and per scenario) against targets."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from drills.models import DrillRun, ScenarioRun
from tests.drills.conftest import make_plan

pytestmark = pytest.mark.django_db


def add_drill(plan, days_ago, rto, rpo, status="ended", scenarios=()):
    declared = timezone.now() - timedelta(days=days_ago)
    drill = DrillRun.objects.create(
        plan=plan,
        plan_name=plan.name,
        status=status,
        declared_at=declared,
        ended_at=None if status == "running" else declared + (rto or timedelta(minutes=5)),
        time_budget=plan.time_budget,
        rto_achieved=rto,
        rpo_achieved=rpo,
        rpo_target=timedelta(hours=1) if rpo is not None else None,
    )
    for position, (title, srto, status_) in enumerate(scenarios, 1):
        ScenarioRun.objects.create(
            drill=drill,
            position=position,
            kind="manual",
            title=title,
            status=status_,
            rto=srto,
            rto_target=timedelta(minutes=30),
        )
    return drill


def figure(html: str, title: str) -> str:
    """The <svg> whose title starts with `title`."""
    start = html.index(f'aria-label="{title}')
    return html[html.rindex("<svg", 0, start) : html.index("</svg>", start)]


def test_plan_page_charts_each_drill_against_its_targets(viewer_client):
    plan = make_plan(time_budget=timedelta(hours=2))
    m = timedelta(minutes=1)
    add_drill(plan, 90, 80 * m, 20 * m, scenarios=[("Restore DB", 25 * m, "passed")])
    add_drill(plan, 60, 150 * m, 90 * m, scenarios=[("Restore DB", 45 * m, "failed")])
    add_drill(
        plan,
        30,
        100 * m,
        30 * m,
        scenarios=[("Restore DB", 20 * m, "passed"), ("Call the DBA", 5 * m, "passed")],
    )
    # Aborted before anything recovered: no figures, no points.
    add_drill(plan, 20, None, None, status="aborted")
    # Still running: not charted.
    add_drill(plan, 0, 10 * m, 10 * m, status="running", scenarios=[("Restore DB", m, "passed")])
    # Another plan's drill never shows here.
    add_drill(make_plan(name="Other"), 10, 10 * m, 10 * m, scenarios=[("Restore DB", m, "passed")])

    html = viewer_client.get(reverse("drills:plan", args=[plan.pk])).content.decode()
    rto = figure(html, "RTO achieved per drill")
    assert "time budget 2h" in rto
    assert rto.count("<circle") == 3
    assert rto.count('fill="#c62828"><title>') == 1  # the 2h30m drill
    rpo = figure(html, "RPO achieved per drill")
    assert "RPO target 1h" in rpo
    assert rpo.count("<circle") == 3
    assert rpo.count('fill="#c62828"><title>') == 1  # 1h30m of data lost
    db = figure(html, "Restore DB: RTO achieved vs target")
    assert "RTO target 30m" in db
    assert db.count("<circle") == 3
    assert db.count('fill="#c62828"><title>') == 1
    assert figure(html, "Call the DBA: RTO achieved vs target").count("<circle") == 1


def test_plan_never_run_shows_no_data(viewer_client):
    plan = make_plan()
    html = viewer_client.get(reverse("drills:plan", args=[plan.pk])).content.decode()
    assert "No data yet." in figure(html, "RTO achieved per drill")
    assert "No data yet." in figure(html, "RPO achieved per drill")
    assert "RTO achieved vs target" not in html


def test_plan_page_queries_do_not_grow_with_drills(viewer_client, django_assert_max_num_queries):
    plan = make_plan()
    m = timedelta(minutes=1)
    url = reverse("drills:plan", args=[plan.pk])
    scenarios = [("Restore DB", 20 * m, "passed"), ("Call the DBA", 5 * m, "passed")]
    add_drill(plan, 100, 60 * m, 10 * m, scenarios=scenarios)
    viewer_client.get(url)  # warm the session
    with CaptureQueriesContext(connection) as few:
        viewer_client.get(url)
    for days in range(1, 25):
        add_drill(plan, days, 60 * m, 10 * m, scenarios=scenarios)
    with django_assert_max_num_queries(len(few)):
        html = viewer_client.get(url).content.decode()
    assert figure(html, "RTO achieved per drill").count("<circle") == 25
    assert figure(html, "Restore DB: RTO achieved vs target").count("<circle") == 25
