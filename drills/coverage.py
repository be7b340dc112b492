"""Coverage grid: systems × failure types, each cell the last evidence that exercised it.

Evidence is a drill scenario (its failure type and systems), a restore test (database
failure of its source's system) or a failover run (its runbook's failure type and system).
An empty cell was never exercised; a stale one not within STALE_AFTER; a partial one only
by a test run that skipped side-effect steps (rehearsed, not proven). Those are what the
next drill should cover.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from backups.models import System
from dr_portal.runs import RunStatus
from drills.models import STALE_AFTER, ScenarioRun, ScenarioStatus, failover_ready
from recovery.failover.models import FailoverRun
from recovery.models import FailureType, RestoreTest


@dataclass
class Cell:
    label: str = ""
    url: str = ""
    at: datetime | None = None
    verdict: str = ""  # passed / partial (a test run that skipped steps) / failed
    now: datetime | None = None  # when the grid was built

    @property
    def empty(self) -> bool:
        return self.at is None

    @property
    def age(self) -> timedelta | None:
        return (self.now or timezone.now()) - self.at if self.at else None

    @property
    def stale(self) -> bool:
        return self.at is not None and self.age > STALE_AFTER

    @property
    def css(self) -> str:
        if self.empty:
            return "cell-empty"
        if self.stale:
            return "cell-stale"
        return {"passed": "cell-passed", "partial": "cell-partial"}.get(self.verdict, "cell-failed")


def _failover_verdict(run) -> str:
    """A test run that skipped side-effect steps rehearsed the failover; it did not pass it."""
    if run.status != RunStatus.SUCCEEDED:
        return "failed"
    return "partial" if run.rehearsed else "passed"


def _scenario_cell(srun) -> Cell:
    run = getattr(srun, "failover_run", None)
    verdict = srun.status
    label = f"Drill #{srun.drill_id}: {srun.title}"
    if run is not None and verdict == ScenarioStatus.PASSED and run.rehearsed:
        verdict = "partial"
        label += f" (test mode: {run.not_exercised})"
    return Cell(label=label, url=srun.drill.get_absolute_url(), at=srun.finished, verdict=verdict)


def _offer(grid, system_id, failure_type, cell):
    key = (system_id, failure_type)
    if key not in grid or (grid[key].at or datetime.min.replace(tzinfo=cell.at.tzinfo)) < cell.at:
        grid[key] = cell


def build():
    """(systems, failure types, {(system_id, failure_type): Cell})."""
    systems = list(System.objects.order_by("name"))
    types = list(FailureType.choices)
    grid: dict = {}
    scenario_runs = (
        ScenarioRun.objects.filter(
            status__in=[ScenarioStatus.PASSED, ScenarioStatus.FAILED], finished__isnull=False
        )
        .exclude(failure_type="")
        .select_related("drill", *(["failover_run"] if failover_ready() else []))
        .prefetch_related("systems")
        .order_by("-finished")[:500]
    )
    for srun in scenario_runs:
        cell = _scenario_cell(srun)
        for system in srun.systems.all():
            _offer(grid, system.pk, srun.failure_type, cell)
    # Newest finished restore test per source: the last proof per system.
    tests = (
        RestoreTest.objects.filter(
            status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED], finished__isnull=False
        )
        .select_related("source")
        .order_by("-finished")[:500]
    )
    for test in tests:
        cell = Cell(
            label=f"Restore test #{test.pk} of {test.source.name}",
            url=test.get_absolute_url(),
            at=test.finished,
            verdict="passed" if test.status == RunStatus.SUCCEEDED else "failed",
        )
        _offer(grid, test.source.system_id, "database_failure", cell)
    if failover_ready():
        runs = (
            FailoverRun.objects.filter(
                status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.PARTIAL],
                finished__isnull=False,
            )
            .select_related("runbook")
            .order_by("-finished")[:500]
        )
        for run in runs:
            cell = Cell(
                label=f"Failover run #{run.pk}: {run.runbook.name} ({run.mode})",
                url=run.get_absolute_url(),
                at=run.finished,
                verdict=_failover_verdict(run),
            )
            _offer(grid, run.system_id, run.runbook.failure_type, cell)
    now = timezone.now()
    for cell in grid.values():
        cell.now = now
    rows = []
    for system in systems:
        rows.append((system, [grid.get((system.pk, value), Cell()) for value, _ in types]))
    return types, rows
