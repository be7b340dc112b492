"""'Accept new baseline' for the data-loss canary: after an intentional bulk delete a manager
accepts the newest test's value (reason audited) and the next test compares with it."""

import pytest
from django.urls import reverse
from django.utils import timezone

from dr_portal.models import AuditEntry
from recovery import baselines
from recovery.models import CanaryBaseline
from recovery.restore_tests import previous_observations
from tests.factories import RestoreTestFactory, SourceFactory
from tests.recovery.conftest import run_test
from tests.support.data import backup

pytestmark = pytest.mark.django_db

CANARY = "not below 90% of previous"


def _test(source, outcome, observed, *, name="rows", expect=CANARY, minutes_ago=0):
    return RestoreTestFactory(
        source=source,
        status="succeeded" if outcome == "passed" else "failed",
        finished=timezone.now() - timezone.timedelta(minutes=minutes_ago),
        checks=[
            {"name": name, "sql": "SELECT 1", "expect": expect, "observed": observed,
             "outcome": outcome, "detail": ""}
        ],
    )  # fmt: skip


@pytest.fixture
def dropped(db):
    """A source whose last test saw 40 rows where the one before saw 100."""
    source = SourceFactory()
    before = _test(source, "passed", "100", minutes_ago=60)
    after = _test(source, "failed", "40")
    return source, before, after


def test_manager_accepts_the_new_value_and_the_next_test_compares_with_it(
    dropped, manager_client, viewer_client
):
    source, _before, after = dropped
    assert previous_observations(source) == {"rows": "100"}
    page = manager_client.get(after.get_absolute_url()).content.decode()
    assert "Accept 40 as the new baseline" in page
    assert "Accept 40" not in viewer_client.get(after.get_absolute_url()).content.decode()

    response = manager_client.post(
        reverse("recovery:accept_baseline", args=[after.pk]),
        {"check": "rows", "reason": "archived 60 % of old executions on purpose"},
    )
    assert response.status_code == 302
    assert previous_observations(source) == {"rows": "40"}
    entry = AuditEntry.objects.get(action="accept new baseline")
    assert "archived 60 % of old executions on purpose" in entry.detail
    assert "40" in entry.detail
    page = viewer_client.get(after.get_absolute_url()).content.decode()
    assert "New baseline for “rows”: 40" in page
    # Once accepted, not again.
    assert baselines.acceptable_checks(after) == set()


@pytest.mark.parametrize(
    ("client", "data", "status"),
    [
        ("operator_client", {"check": "rows", "reason": "x"}, 403),
        ("viewer_client", {"check": "rows", "reason": "x"}, 403),
        ("manager_client", {"check": "rows", "reason": "  "}, 302),  # no reason: refused
        ("manager_client", {"check": "nope", "reason": "x"}, 302),  # no such failed canary
    ],
)
def test_only_a_manager_with_a_reason_can_accept(dropped, request, client, data, status):
    _source, _before, after = dropped
    response = request.getfixturevalue(client).post(
        reverse("recovery:accept_baseline", args=[after.pk]), data
    )
    assert response.status_code == status
    assert not CanaryBaseline.objects.exists()
    assert not AuditEntry.objects.filter(action="accept new baseline").exists()


def test_only_the_newest_tests_failed_canary_can_become_the_baseline(dropped):
    source, before, after = dropped
    assert baselines.acceptable_checks(after) == {"rows"}
    assert baselines.acceptable_checks(before) == set()  # passed anyway
    newer = _test(source, "failed", "30")
    assert baselines.acceptable_checks(after) == set()  # no longer the newest
    assert baselines.acceptable_checks(newer) == {"rows"}
    plain = _test(source, "failed", "0", name="other", expect="> 0")
    assert baselines.acceptable_checks(plain) == set()  # not a canary
    with pytest.raises(baselines.BaselineRefused):
        baselines.accept(after, "rows", None, "because")


def test_bulk_delete_then_accept_then_the_next_real_restore_test_passes(
    pg_source, work_dir, manager_client
):
    """Real PostgreSQL: the canary fails after a bulk delete, and fails again on the next
    test; accepted, the test after that passes against the accepted value."""
    backup(pg_source)
    assert run_test(pg_source).passed
    with pg_source.db.connect() as conn:
        conn.execute("DELETE FROM executions WHERE id > 50")
    backup(pg_source)
    failed = run_test(pg_source)
    assert failed.status == "failed" and failed.checks[2]["observed"] == "50"
    assert run_test(pg_source).status == "failed"  # it would fail forever

    latest = pg_source.restore_tests.order_by("-finished").first()
    manager_client.post(
        reverse("recovery:accept_baseline", args=[latest.pk]),
        {"check": "executions canary", "reason": "pruned old executions"},
    )
    assert CanaryBaseline.objects.filter(value="50").exists()
    passed = run_test(pg_source)
    assert passed.passed, passed.error
    assert passed.checks[2]["previous"] == "50"
