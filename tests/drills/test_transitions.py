"""DrillRun.end / DrillRun.abort: the drill's only status moves, each one conditional update."""

from datetime import timedelta

import pytest

from drills.models import DrillRun, DrillStatus, DrillTransitionError
from recovery.targets import Verdict


def test_end_records_verdict_and_figures(running_drill, operator):
    running_drill.end(
        Verdict.PASSED, by=operator, reasons=["ok"], rto_achieved=timedelta(minutes=5)
    )
    drill = DrillRun.objects.get(pk=running_drill.pk)
    assert (drill.status, drill.verdict, drill.ended_by) == (DrillStatus.ENDED, "passed", operator)
    assert drill.verdict_reasons == ["ok"] and drill.rto_achieved == timedelta(minutes=5)
    assert drill.ended_at is not None


def test_a_stale_copy_cannot_end_an_aborted_drill(running_drill):
    stale = DrillRun.objects.get(pk=running_drill.pk)
    running_drill.abort()
    with pytest.raises(DrillTransitionError):
        stale.end(Verdict.PASSED)
    assert stale.status == DrillStatus.ABORTED and stale.verdict == Verdict.ABORTED
    with pytest.raises(DrillTransitionError, match="already aborted"):
        running_drill.abort()
