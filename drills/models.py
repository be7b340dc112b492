"""Drill plans, their scenarios and schedules; drill runs, what happened in them, and findings.

A drill run is driven by people and by workers over an hour or two, so it does not use
dr_portal.runs.RunBase (whose reaper fails a run that stops beating after two minutes).
It has its own explicit status machine:

    running --(all scenarios finished, cleanup checked, end)--> ended   (verdict passed|failed)
    running --(abort)--> aborted                                          (verdict aborted)

Each scenario run moves pending -> running -> passed | failed, or to not_run when the
drill is aborted before it started. Transitions are conditional updates, so two
operators clicking "End" at once end the drill once.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from dr_portal import audit
from dr_portal.evidence import SealedEvidence
from dr_portal.lib.text import LONG_TEXT, validate_single_line
from drills import schedule as sched
from recovery.targets import FailureType, Verdict

# A drill run that has not passed its cells in this long is "stale" on the coverage grid.
STALE_AFTER = timedelta(days=92)


class ScenarioKind(models.TextChoices):
    DATABASE_FAILURE = "database_failure", "Database failure (restore test into scratch)"
    FAILOVER = "failover", "Node failure / failover (runbook)"
    NETWORK_FAILURE = "network_failure", "Network failure (runbook of checks)"
    MANUAL = "manual", "Manual checklist"
    CALLOUT = "callout", "Call-out (notify participants, record acknowledgements)"


AUTOMATED_KINDS = {
    ScenarioKind.DATABASE_FAILURE,
    ScenarioKind.FAILOVER,
    ScenarioKind.NETWORK_FAILURE,
}
RUNBOOK_KINDS = {ScenarioKind.FAILOVER, ScenarioKind.NETWORK_FAILURE}

# The failure type (recovery's RTO targets) each kind exercises unless the scenario says otherwise.
DEFAULT_FAILURE_TYPE = {
    ScenarioKind.DATABASE_FAILURE: "database_failure",
    ScenarioKind.FAILOVER: "single_node",
    ScenarioKind.NETWORK_FAILURE: "network_outage",
    ScenarioKind.MANUAL: "",
    ScenarioKind.CALLOUT: "",
}


def failover_ready() -> bool:
    """True once the recovery app's failover runs are linked to scenario runs (migrated)."""
    return any(f.name == "failover_run" for f in ScenarioRun._meta.get_fields())


def failure_type_choices():
    return FailureType.choices


class DrillPlan(models.Model):
    """A recurring exercise: systems, participants, ordered scenarios, time budget, schedule."""

    name = models.CharField(max_length=120, unique=True, validators=[validate_single_line])
    description = models.TextField(
        blank=True, max_length=LONG_TEXT, validators=[MaxLengthValidator(LONG_TEXT)]
    )
    systems = models.ManyToManyField("backups.System", blank=True, related_name="drill_plans")
    participants = models.ManyToManyField(
        "incidents.Contact", blank=True, related_name="drill_plans"
    )
    time_budget = models.DurationField(
        default=timedelta(hours=2), help_text="The whole drill should fit in this (e.g. 2h)."
    )
    rule = models.CharField(
        max_length=300,
        default=sched.DEFAULT_RULE,
        help_text="Recurrence rule (RFC 5545 RRULE). Default: first Friday of each quarter.",
    )
    start_time = models.TimeField(default=sched.DEFAULT_TIME)
    time_zone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True, help_text="Disabled plans are never overdue.")
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("drills:plan", args=[self.pk])

    def clean(self):
        errors = {}
        try:
            sched.build(self.rule, self.start_time, self.time_zone, self.anchor_date)
            self.rule = sched.normalise_rule(self.rule)
            sched.check_recurs(
                self.rule,
                self.start_time,
                self.time_zone,
                anchor=self.anchor_date,
                now=timezone.now(),
            )
        except sched.ScheduleError as exc:
            field = "timezone" if "time zone" in str(exc) and "rule" not in str(exc) else "rule"
            errors[field] = str(exc)
        if self.time_budget is not None and self.time_budget <= timedelta(0):
            errors["time_budget"] = "Give the drill a positive time budget, like 2h."
        if errors:
            raise ValidationError(errors)

    # --- schedule ----------------------------------------------------------------
    @property
    def anchor_date(self):
        """Occurrences count from the plan's creation, in its own zone."""
        created = self.created or timezone.now()
        try:
            return created.astimezone(sched.zone(self.time_zone)).date()
        except sched.ScheduleError:
            return created.date()

    @property
    def schedule_text(self) -> str:
        return f"{sched.describe(self.rule)}, {self.start_time:%H:%M} {self.time_zone}"

    def next_dates(self, count: int = 4, now=None):
        try:
            return sched.next_dates(
                self.rule,
                self.start_time,
                self.time_zone,
                after=now or timezone.now(),
                anchor=self.anchor_date,
                count=count,
            )
        except sched.ScheduleError:
            return []

    def last_due(self, now=None):
        """The latest scheduled date after the plan was created and at or before now."""
        now = now or timezone.now()
        try:
            found = sched.previous_date(
                self.rule, self.start_time, self.time_zone, before=now, anchor=self.anchor_date
            )
        except sched.ScheduleError:
            return None
        if found is None or found <= self.created:
            return None
        return found

    def overdue_since(self, now=None):
        """The scheduled date that passed without a drill, or None.

        A drill counts for a date if it started after the previous scheduled date (or the
        plan's creation) — early is fine, it just has to happen in that period. The date has
        "passed" once its time budget is over.
        """
        if not self.enabled:
            return None
        now = now or timezone.now()
        due = self.last_due(now - self.time_budget)
        if due is None:
            return None
        try:
            earlier = sched.previous_date(
                self.rule,
                self.start_time,
                self.time_zone,
                before=due - timedelta(seconds=1),
                anchor=self.anchor_date,
            )
        except sched.ScheduleError:
            earlier = None
        window_start = max(earlier, self.created) if earlier else self.created
        ran = self.runs.filter(declared_at__gt=window_start).exists()
        return None if ran else due

    def alert_key(self) -> str:
        return f"drill:plan:{self.pk}:overdue"

    def problems(self) -> list[str]:
        """Why this plan cannot be started now; empty when it can."""
        out = []
        scenarios = list(self.scenarios.all())
        if not scenarios:
            out.append(f"The plan “{self.name}” has no scenarios: add at least one.")
        for scenario in scenarios:
            out.extend(scenario.problems())
        return out


class Scenario(models.Model):
    """One step of a plan: a failure to simulate (or a checklist, or a call-out), in order."""

    plan = models.ForeignKey(DrillPlan, on_delete=models.CASCADE, related_name="scenarios")
    order = models.PositiveIntegerField(default=1)
    kind = models.CharField(max_length=20, choices=ScenarioKind.choices)
    title = models.CharField(max_length=120, validators=[validate_single_line])
    instructions = models.TextField(
        blank=True,
        max_length=LONG_TEXT,
        validators=[MaxLengthValidator(LONG_TEXT)],
        help_text="What to simulate and how to validate.",
    )
    failure_type = models.CharField(
        max_length=20,
        choices=failure_type_choices,
        blank=True,
        help_text="Which RTO target applies and which coverage cell this fills.",
    )
    time_budget = models.DurationField(
        null=True, blank=True, help_text="Time set aside, e.g. 30m (the target when no RTO target)."
    )
    runbook = models.ForeignKey(
        "recovery.Runbook",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="drill_scenarios",
    )
    runbook_name = models.CharField(max_length=200, blank=True, editable=False)
    live = models.BooleanField(
        default=False, help_text="Run the runbook live (only against a test environment)."
    )
    checklist = models.TextField(
        blank=True,
        max_length=LONG_TEXT,
        validators=[MaxLengthValidator(LONG_TEXT)],
        help_text="Manual scenarios: one instruction per line, ticked off in order.",
    )

    class Meta:
        ordering = ["plan", "order", "pk"]

    def __str__(self):
        return f"{self.order}. {self.title}"

    def save(self, *args, **kwargs):
        if self.runbook_id and self.runbook:
            self.runbook_name = str(self.runbook)[:200]
        if not self.failure_type:
            self.failure_type = DEFAULT_FAILURE_TYPE.get(self.kind, "")
        super().save(*args, **kwargs)

    @property
    def checklist_items(self) -> list[str]:
        return [line.strip() for line in (self.checklist or "").splitlines() if line.strip()]

    @property
    def is_automated(self) -> bool:
        return self.kind in AUTOMATED_KINDS

    def problems(self) -> list[str]:
        """What stops this scenario from running as configured."""
        out = []
        label = f"Scenario “{self.title}”"
        if self.kind == ScenarioKind.DATABASE_FAILURE:
            links = list(self.source_links.all())
            if not links:
                out.append(f"{label} restores no source: choose at least one.")
            for link in links:
                if link.source_id is None:
                    out.append(
                        f"{label} restores source “{link.source_name}”, which was deleted: "
                        "edit the plan."
                    )
        elif self.kind in RUNBOOK_KINDS:
            if self.runbook_id is None:
                if self.runbook_name:
                    out.append(
                        f"{label} uses runbook “{self.runbook_name}”, which was deleted: "
                        "edit the plan."
                    )
                else:
                    out.append(f"{label} needs a runbook.")
        elif self.kind == ScenarioKind.MANUAL:
            if not self.checklist_items:
                out.append(f"{label} has an empty checklist.")
        elif self.kind == ScenarioKind.CALLOUT:
            if not self.plan.participants.exists():
                out.append(f"{label} calls out the participants, but the plan has none.")
        return out


class ScenarioSource(models.Model):
    """A source a database-failure scenario restores; the name survives the source's deletion."""

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="source_links")
    source = models.ForeignKey(
        "backups.Source", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_name = models.CharField(max_length=100, editable=False)

    class Meta:
        ordering = ["pk"]

    def __str__(self):
        return self.source_name

    def save(self, *args, **kwargs):
        if self.source_id:
            self.source_name = self.source.name
        super().save(*args, **kwargs)


# --- Runs ---------------------------------------------------------------------------


class DrillStatus(models.TextChoices):
    RUNNING = "running", "Running"
    ENDED = "ended", "Ended"
    ABORTED = "aborted", "Aborted"


class CleanupState(models.TextChoices):
    NOT_CHECKED = "", "Not checked"
    CHECKING = "checking", "Checking"
    VERIFIED = "verified", "Verified clean"
    FAILED = "failed", "Left-overs found"


class DrillTransitionError(Exception):
    """A refused move (ending twice, ticking after the end); the message is for people."""


class DrillRun(SealedEvidence):
    """One execution of a plan, from the declared failure to the verdict."""

    # Sealed when the drill ends or is aborted (dr_portal.evidence); the clean-up check and
    # the notes come later and are not.
    EVIDENCE_FIELDS = (
        *("plan", "plan_name", "status", "declared_at", "started_by", "ended_at", "ended_by"),
        *("time_budget", "verdict", "verdict_reasons", "rto_achieved", "rpo_achieved"),
        "rpo_target",
    )

    plan = models.ForeignKey(DrillPlan, on_delete=models.PROTECT, related_name="runs")
    plan_name = models.CharField(max_length=120)
    status = models.CharField(
        max_length=10, choices=DrillStatus.choices, default=DrillStatus.RUNNING
    )
    declared_at = models.DateTimeField(
        default=timezone.now, help_text="The declared failure: the drill's clock starts here."
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    time_budget = models.DurationField(default=timedelta(hours=2))
    verdict = models.CharField(max_length=8, choices=Verdict.choices, blank=True, default="")
    verdict_reasons = models.JSONField(default=list, blank=True)
    rto_achieved = models.DurationField(
        null=True, blank=True, help_text="Declared failure → last scenario recovered."
    )
    rpo_achieved = models.DurationField(
        null=True, blank=True, help_text="Largest data age of what the drill restored."
    )
    rpo_target = models.DurationField(null=True, blank=True)
    cleanup_state = models.CharField(
        max_length=10, choices=CleanupState.choices, blank=True, default=""
    )
    cleanup_checked_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(
        blank=True, max_length=LONG_TEXT, validators=[MaxLengthValidator(LONG_TEXT)]
    )

    audit = False  # the drill's own event rows are its history; actions are audited explicitly

    class Meta:
        ordering = ["-declared_at", "-pk"]
        indexes = [
            # Plan page and overdue check: a plan's runs, newest first.
            models.Index(fields=["plan", "-declared_at"], name="drillrun_plan_idx"),
            # The sync task: drills still running.
            models.Index(fields=["status"], name="drillrun_status_idx"),
        ]

    def __str__(self):
        return f"drill #{self.pk} {self.plan_name} ({self.declared_at:%Y-%m-%d})"

    def get_absolute_url(self):
        return reverse("drills:run", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status == DrillStatus.RUNNING

    def is_sealed(self) -> bool:
        return self.status != DrillStatus.RUNNING

    # --- transitions: running -> ended | aborted, each one conditional update -----------
    def end(self, verdict: str, *, by=None, at=None, reasons=(), **figures):
        """running -> ended with its verdict, reasons and achieved figures."""
        fields = {"verdict": verdict, "verdict_reasons": list(reasons), **figures}
        if not self._close(DrillStatus.ENDED, by=by, at=at, **fields):
            raise DrillTransitionError("This drill was ended by someone else meanwhile.")

    def abort(self, *, by=None, at=None, reasons=(), **figures):
        """running -> aborted; the verdict says so, with the figures of what ran."""
        fields = {"verdict": Verdict.ABORTED, "verdict_reasons": list(reasons), **figures}
        if not self._close(DrillStatus.ABORTED, by=by, at=at, **fields):
            raise DrillTransitionError(
                f"This drill is already {self.get_status_display().lower()}."
            )

    def _close(self, status, *, by, at, **fields) -> bool:
        """Claim the move with a conditional update (a concurrent end or abort loses)."""
        with transaction.atomic():
            moved = (
                type(self)
                .objects.filter(pk=self.pk, status=DrillStatus.RUNNING)
                .update(status=status, ended_at=at or timezone.now(), ended_by=by, **fields)
            )
            if moved:
                audit.seal_evidence(self)
        self.refresh_from_db()
        return bool(moved)

    @property
    def clock(self) -> timedelta:
        return (self.ended_at or timezone.now()) - self.declared_at

    @property
    def over_budget(self) -> bool:
        return self.clock > self.time_budget

    @property
    def rto_target(self):
        """The whole drill is held to the plan's time budget."""
        return self.time_budget

    # The names incidents.links.note_run_transition reads from any run.
    @property
    def finished(self):
        return self.ended_at

    @property
    def duration(self):
        return self.clock

    @property
    def error(self) -> str:
        """The verdict and its reasons in one line (what a linked incident's timeline shows)."""
        if not self.verdict:
            return ""
        reasons = "; ".join(self.verdict_reasons or [])
        return f"verdict {self.verdict}" + (f": {reasons}" if reasons else "")


class ScenarioStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    NOT_RUN = "not_run", "Not run"


SCENARIO_DONE = {ScenarioStatus.PASSED, ScenarioStatus.FAILED, ScenarioStatus.NOT_RUN}


class ScenarioRun(models.Model):
    """One scenario as run in one drill: its own failure time, what ran, RTO/RPO and verdict."""

    drill = models.ForeignKey(DrillRun, on_delete=models.CASCADE, related_name="scenario_runs")
    scenario = models.ForeignKey(
        Scenario, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=ScenarioKind.choices)
    title = models.CharField(max_length=120)
    instructions = models.TextField(blank=True)
    failure_type = models.CharField(max_length=20, blank=True)
    systems = models.ManyToManyField("backups.System", blank=True, related_name="+")
    status = models.CharField(
        max_length=10, choices=ScenarioStatus.choices, default=ScenarioStatus.PENDING
    )
    started = models.DateTimeField(null=True, blank=True, help_text="Failure injected/declared.")
    recovered_at = models.DateTimeField(null=True, blank=True, help_text="Service verified.")
    finished = models.DateTimeField(null=True, blank=True)
    rto = models.DurationField(null=True, blank=True)
    rto_target = models.DurationField(null=True, blank=True)
    rpo = models.DurationField(null=True, blank=True)
    rpo_target = models.DurationField(null=True, blank=True)
    reasons = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    restore_tests = models.ManyToManyField(
        "recovery.RestoreTest", blank=True, related_name="drill_scenarios"
    )
    failover_run = models.ForeignKey(
        "recovery.FailoverRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="drill_scenarios",
    )
    live = models.BooleanField(default=False)

    audit = False

    class Meta:
        ordering = ["drill", "position", "pk"]
        indexes = [
            # Coverage grid and charts: finished scenario runs by failure type, newest first.
            models.Index(fields=["failure_type", "-finished"], name="scenariorun_cover_idx"),
        ]

    def __str__(self):
        return f"{self.position}. {self.title}"

    @property
    def is_done(self) -> bool:
        return self.status in SCENARIO_DONE

    @property
    def failure_type_label(self) -> str:
        return dict(failure_type_choices()).get(self.failure_type, self.failure_type)

    @property
    def rto_met(self) -> bool | None:
        if self.rto is None or self.rto_target is None:
            return None
        return self.rto <= self.rto_target

    @property
    def rpo_met(self) -> bool | None:
        if self.rpo is None or self.rpo_target is None:
            return None
        return self.rpo <= self.rpo_target

    @property
    def elapsed(self):
        if self.started is None:
            return None
        return (self.finished or timezone.now()) - self.started


class ChecklistItem(models.Model):
    """One instruction of a manual scenario, ticked off by a participant with a note."""

    scenario_run = models.ForeignKey(ScenarioRun, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    text = models.CharField(max_length=500)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    problem = models.BooleanField(default=False, help_text="Done, but it did not work as expected.")
    note = models.CharField(max_length=500, blank=True)

    audit = False

    class Meta:
        ordering = ["scenario_run", "position"]

    def __str__(self):
        return f"{self.position}. {self.text}"


class CalloutAck(models.Model):
    """A participant called out by a call-out scenario, and when they acknowledged."""

    class Via(models.TextChoices):
        LINK = "link", "Link in the message"
        PORTAL = "portal", "Tick in the portal"

    scenario_run = models.ForeignKey(ScenarioRun, on_delete=models.CASCADE, related_name="acks")
    contact = models.ForeignKey(
        "incidents.Contact", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    contact_name = models.CharField(max_length=200)
    notified_at = models.DateTimeField(default=timezone.now)
    channels = models.CharField(max_length=100, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    via = models.CharField(max_length=8, choices=Via.choices, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    audit = False

    class Meta:
        ordering = ["scenario_run", "contact_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["scenario_run", "contact"], name="calloutack_once_per_contact"
            )
        ]

    def __str__(self):
        return f"call-out of {self.contact_name}"

    @property
    def time_to_ack(self):
        if self.acknowledged_at is None:
            return None
        return self.acknowledged_at - self.notified_at


class CleanupCheck(models.Model):
    """One thing a drill created (scratch database, test run) and whether it is gone."""

    drill = models.ForeignKey(DrillRun, on_delete=models.CASCADE, related_name="cleanup_checks")
    resource = models.CharField(max_length=200)
    gone = models.BooleanField(default=False)
    removed = models.BooleanField(default=False, help_text="The check removed it itself.")
    detail = models.CharField(max_length=500, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    audit = False

    class Meta:
        ordering = ["drill", "pk"]

    def __str__(self):
        return f"{self.resource}: {'gone' if self.gone else 'still there'}"


class Finding(models.Model):
    """An issue found during a drill (the report's "Issues")."""

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    drill = models.ForeignKey(DrillRun, on_delete=models.CASCADE, related_name="findings")
    scenario_run = models.ForeignKey(
        ScenarioRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="findings"
    )
    text = models.TextField(max_length=LONG_TEXT, validators=[MaxLengthValidator(LONG_TEXT)])
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["drill", "created", "pk"]

    def __str__(self):
        return self.text[:80]


class DrillEvent(models.Model):
    """One line of a drill's timeline: who did what, when (also the report's timeline)."""

    drill = models.ForeignKey(DrillRun, on_delete=models.CASCADE, related_name="events")
    scenario_run = models.ForeignKey(
        ScenarioRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, default="DR Portal")
    text = models.TextField()

    audit = False

    class Meta:
        ordering = ["drill", "at", "pk"]
        indexes = [
            # The live page and report: a drill's timeline in order.
            models.Index(fields=["drill", "at"], name="drillevent_drill_at_idx"),
        ]

    def __str__(self):
        return f"{self.at:%H:%M:%S} {self.actor_name}: {self.text[:60]}"

    @property
    def offset(self):
        """Time since the declared failure (T+…)."""
        return self.at - self.drill.declared_at
