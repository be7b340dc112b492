"""recovery/targets.py: one fallback rule for RTO/RPO targets, one Verdict, one judge()."""

from datetime import timedelta

import pytest

from drills import models as drill_models
from recovery import targets
from recovery.failover import models as failover_models
from recovery.models import RPOTarget, RTOTarget, ServiceLevel
from recovery.targets import AT_RISK_FRACTION, Verdict, at_risk, judge, restore_rto_target
from tests.factories import SourceFactory

HOUR = timedelta(hours=1)


def test_rto_target_is_the_managers_row(db):
    RTOTarget.objects.filter(failure_type="database_failure").update(target=timedelta(hours=2))
    assert RTOTarget.for_failure("database_failure") == timedelta(hours=2)


def test_deleted_rto_row_falls_back_to_the_seed_table(db):
    RTOTarget.objects.filter(failure_type="database_failure").delete()
    assert RTOTarget.for_failure("database_failure") == timedelta(hours=4)


def test_no_failure_type_has_no_rto_target(db):
    assert RTOTarget.for_failure("") is None
    assert RTOTarget.for_failure("no_such_type") is None


def test_restore_target_uses_the_same_fallback(db):
    """The restore path used to answer None once the row was deleted (no target at all)."""
    RTOTarget.objects.filter(failure_type="database_failure").delete()
    ServiceLevel.objects.all().delete()
    assert restore_rto_target() == timedelta(hours=4)
    ServiceLevel.objects.create(rto=HOUR)
    assert restore_rto_target() == HOUR  # the stricter of the two


def test_rpo_target_fallbacks(db):
    RPOTarget.objects.filter(data_class="critical").update(target=timedelta(minutes=15))
    assert RPOTarget.for_data_class("critical") == timedelta(minutes=15)
    RPOTarget.objects.filter(data_class="critical").delete()
    assert RPOTarget.for_data_class("critical") == HOUR  # the seed's
    assert RPOTarget.for_data_class("unknown") == timedelta(hours=24)  # as important


def test_source_rpo_target_and_for_data_class_agree(db):
    source = SourceFactory(
        system__name="s",
        name="db1",
        kind="sqlite",
        path="/tmp/x.db",
        data_class="non_critical",
    )
    RPOTarget.objects.all().delete()
    assert source.rpo_target == RPOTarget.for_data_class("non_critical") == timedelta(days=7)


def test_judge():
    assert judge(HOUR, HOUR) == Verdict.MET
    assert judge(HOUR + timedelta(seconds=1), HOUR) == Verdict.MISSED
    assert judge(None, HOUR) == Verdict.NONE
    assert judge(HOUR, None) == Verdict.NONE


def test_at_risk_is_over_the_fraction_but_within_the_target():
    assert AT_RISK_FRACTION == 0.8
    assert not at_risk(HOUR * 0.8, HOUR)
    assert at_risk(HOUR * 0.81, HOUR)
    assert at_risk(HOUR, HOUR)
    assert not at_risk(HOUR * 2, HOUR)  # missed, not at risk
    assert not at_risk(None, HOUR)


def test_one_verdict_and_one_trigger():
    assert drill_models.Verdict is failover_models.Verdict is targets.Verdict
    from backups.models import Trigger
    from recovery.models import RestoreTest

    assert RestoreTest._meta.get_field("trigger").choices == Trigger.choices


@pytest.mark.parametrize("value", ["", "met", "missed", "passed", "failed", "aborted"])
def test_stored_verdicts_stay_valid(value):
    for model in (drill_models.DrillRun, failover_models.FailoverRun):
        field = model._meta.get_field("verdict")
        assert value in dict(field.choices)
