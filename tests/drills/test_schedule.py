"""Schedule math: first Friday of each quarter, across a year boundary, in local zones; overdue."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from drills import schedule as sched
from tests.drills.conftest import add_scenario, make_plan

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def test_first_friday_of_each_quarter_across_the_year_boundary():
    dates = sched.next_dates(
        sched.DEFAULT_RULE,
        time(10, 0),
        "UTC",
        after=datetime(2025, 11, 20, tzinfo=UTC),
        anchor=date(2025, 1, 1),
        count=5,
    )
    assert [d.date() for d in dates] == [
        date(2026, 1, 2),  # Jan 1 2026 is a Thursday: the first Friday is the 2nd
        date(2026, 4, 3),
        date(2026, 7, 3),
        date(2026, 10, 2),
        date(2027, 1, 1),  # 2027 starts on a Friday
    ]
    assert all(d.weekday() == 4 and d.hour == 10 for d in dates)


def test_local_time_stays_on_the_wall_clock_across_dst_in_berlin():
    dates = sched.next_dates(
        sched.DEFAULT_RULE,
        time(9, 30),
        "Europe/Berlin",
        after=datetime(2025, 12, 1, tzinfo=UTC),
        anchor=date(2025, 1, 1),
        count=4,
    )
    # Winter (CET, UTC+1) and summer (CEST, UTC+2): 09:30 local both times.
    assert dates[0] == datetime(2026, 1, 2, 9, 30, tzinfo=BERLIN)
    assert dates[0].astimezone(UTC) == datetime(2026, 1, 2, 8, 30, tzinfo=UTC)
    assert dates[2] == datetime(2026, 7, 3, 9, 30, tzinfo=BERLIN)
    assert dates[2].astimezone(UTC) == datetime(2026, 7, 3, 7, 30, tzinfo=UTC)


def test_first_friday_is_decided_in_the_plans_zone_not_utc():
    # 23:30 in New York on Friday 2 Jan 2026 is already Saturday 3 Jan in UTC.
    dates = sched.next_dates(
        sched.DEFAULT_RULE,
        time(23, 30),
        "America/New_York",
        after=datetime(2025, 12, 15, tzinfo=UTC),
        anchor=date(2025, 1, 1),
        count=1,
    )
    assert dates[0] == datetime(2026, 1, 2, 23, 30, tzinfo=NEW_YORK)
    assert dates[0].astimezone(UTC).date() == date(2026, 1, 3)


def test_the_day_itself_counts_until_its_time_has_passed():
    after = datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
    assert sched.next_dates(
        sched.DEFAULT_RULE, time(10, 0), "UTC", after=after, anchor=date(2025, 1, 1), count=1
    )[0] == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    prev = sched.previous_date(
        sched.DEFAULT_RULE, time(10, 0), "UTC", before=after, anchor=date(2025, 1, 1)
    )
    assert prev == datetime(2025, 10, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "rule, message",
    [
        ("", "Write a recurrence rule"),
        ("FREQ=FORTNIGHTLY", "Not a valid recurrence rule"),
        ("FREQ=HOURLY", "at most daily"),
        ("FREQ=MONTHLY;BYHOUR=10", "Leave BYHOUR out"),
        ("DTSTART:20260101T000000\nFREQ=MONTHLY", "Leave DTSTART out"),
    ],
)
def test_unusable_rules_are_refused_with_a_message(rule, message):
    with pytest.raises(sched.ScheduleError, match=message):
        sched.build(rule, time(10, 0), "UTC", date(2026, 1, 1))


def test_unknown_time_zone_is_refused():
    with pytest.raises(sched.ScheduleError, match="not a known time zone"):
        sched.build(sched.DEFAULT_RULE, time(10, 0), "Mars/Olympus", date(2026, 1, 1))


def test_rrule_prefix_and_spacing_are_accepted():
    assert sched.normalise_rule(" rrule:freq=monthly; bymonth=1,4,7,10; byday=1fr ") == (
        sched.DEFAULT_RULE
    )


# --- overdue ----------------------------------------------------------------------------


@pytest.fixture
def plan(db):
    plan = make_plan(
        name="Quarterly",
        created=datetime(2025, 9, 1, tzinfo=UTC),
        time_zone="Europe/Berlin",
        start_time=time(10, 0),
        time_budget=timedelta(hours=2),
    )
    add_scenario(plan, "manual", "Document results", checklist="Write it down")
    return plan


def test_plan_is_overdue_once_its_date_and_budget_passed_without_a_run(plan):
    due = datetime(2025, 10, 3, 10, 0, tzinfo=BERLIN)
    assert plan.overdue_since(due + timedelta(hours=1)) is None  # the drill slot is still open
    assert plan.overdue_since(due + timedelta(hours=2, minutes=1)) == due
    assert plan.overdue_since(datetime(2025, 12, 24, tzinfo=UTC)) == due


def test_a_drill_in_the_period_clears_overdue_even_if_early(plan):
    from drills.services import start_drill

    start_drill(plan, declared_at=datetime(2025, 9, 25, 14, 0, tzinfo=UTC))
    assert plan.overdue_since(datetime(2025, 10, 10, tzinfo=UTC)) is None
    # The next quarter's date (2 Jan 2026) needs its own drill.
    assert plan.overdue_since(datetime(2026, 1, 5, tzinfo=UTC)) == datetime(
        2026, 1, 2, 10, 0, tzinfo=BERLIN
    )


def test_dates_before_the_plan_existed_are_not_overdue(db):
    plan = make_plan(name="New", created=datetime(2025, 11, 20, tzinfo=UTC))
    assert plan.overdue_since(datetime(2025, 12, 1, tzinfo=UTC)) is None


def test_disabled_plan_is_never_overdue(plan):
    plan.enabled = False
    plan.save()
    assert plan.overdue_since(datetime(2026, 6, 1, tzinfo=UTC)) is None


def test_daily_check_raises_drill_overdue_once_and_recovers_after_a_drill(plan, contacts):
    from drills.services import start_drill
    from drills.tasks import check_overdue_drills
    from incidents.models import Alert

    plan.participants.set(contacts)
    with time_machine.travel(datetime(2025, 10, 6, 8, 0, tzinfo=UTC), tick=False):
        assert check_overdue_drills() == [plan.pk]
        assert check_overdue_drills() == [plan.pk]
    alert = Alert.objects.get(kind="drill_overdue")
    assert alert.is_open and alert.seen_count == 2
    assert "2025-10-03" in alert.title and plan.name in alert.title
    with time_machine.travel(datetime(2025, 10, 7, 9, 0, tzinfo=UTC), tick=False):
        start_drill(plan)
        assert check_overdue_drills() == []
    alert.refresh_from_db()
    assert alert.recovered is not None


def test_plan_page_shows_next_dates_in_the_plans_zone(plan, viewer_client):
    with time_machine.travel(datetime(2025, 11, 1, tzinfo=UTC), tick=False):
        body = viewer_client.get(f"/drills/plans/{plan.pk}/").content.decode()
    assert "First Friday of each quarter, 10:00 Europe/Berlin" in body
    assert "Fri 2 Jan 2026, 10:00 CET" in body
    assert "Fri 3 Jul 2026, 10:00 CEST" in body
    assert "Overdue" in body  # 3 Oct 2025 passed without a drill


def test_system_schedules_exist_once_after_migrate(db):
    from django_q.models import Schedule

    from drills.schedules import ensure_schedules

    ensure_schedules()
    ensure_schedules()
    for name, func in [
        ("system: drills overdue", "drills.tasks.check_overdue_drills"),
        ("system: sync running drills", "drills.tasks.sync_running_drills"),
    ]:
        (schedule,) = Schedule.objects.filter(name=name)
        assert schedule.func == func
