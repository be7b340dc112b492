"""Failover runbooks, their steps, and the runs that execute and time them.

Imported by recovery/models.py, so these models belong to the recovery app.
"""

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import IntegrityError, models, transaction
from django.db.models import Q, Value
from django.db.models.functions import Concat
from django.urls import reverse
from django.utils import timezone

from dr_portal.fields import EncryptedTextField
from dr_portal.lib.paths import check_allowed_path
from dr_portal.lib.queue import enqueue
from dr_portal.lib.text import validate_single_line
from dr_portal.runs import ACTIVE, RunBase, RunStatus
from recovery.failover.steps import KIND_CHOICES, KINDS, parse_step, same_endpoint
from recovery.targets import FailureType, RTOTarget, Verdict

__all__ = ["FailoverRun", "ReplicationLagSample", "Runbook", "RunbookStep", "StepRun"]


def failure_type_choices():
    """The recovery app's failure types (the same choices as its RTO targets)."""
    return FailureType.choices


def portal_checks(kind: str, params: dict) -> list[str]:
    """Checks that need the portal's settings (the engine has none): a command's cwd."""
    problems = []
    if kind == "command" and params.get("cwd"):
        try:
            check_allowed_path(params["cwd"], must_exist=False)
        except ValidationError as exc:
            problems.append(f"params.cwd: {' '.join(exc.messages)}")
    return problems


class LiveRunExists(Exception):
    """A live failover of this system is already queued or running."""


class Runbook(models.Model):
    """Ordered steps that recover one system from one failure type."""

    system = models.ForeignKey("backups.System", on_delete=models.CASCADE, related_name="runbooks")
    name = models.CharField(max_length=120, validators=[validate_single_line])
    failure_type = models.CharField(max_length=40, choices=failure_type_choices)
    description = models.TextField(
        blank=True, max_length=2000, validators=[MaxLengthValidator(2000)]
    )
    template = models.CharField(
        max_length=60, blank=True, help_text="built-in template it came from"
    )
    created = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(default=timezone.now)
    # sha256 of the step definitions; a run that succeeded with the same hash verifies this version.
    config_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["system__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["system", "name"], name="runbook_unique_name_per_system"
            )
        ]

    def __str__(self):
        return f"{self.system} · {self.name}"

    def get_absolute_url(self):
        return reverse("recovery:failover:runbook", args=[self.pk])

    # --- steps -----------------------------------------------------------------
    def main_steps(self):
        return self.steps.filter(rollback_of__isnull=True).prefetch_related("rollback_steps")

    def definitions(self, *, with_ids=False) -> list[dict]:
        """Step definitions (as in YAML), rollbacks nested; secrets only as 'set or not'."""
        steps = list(self.steps.all())
        rollbacks: dict[int, list] = {}
        for step in steps:
            if step.rollback_of_id:
                rollbacks.setdefault(step.rollback_of_id, []).append(step)
        out = []
        for step in steps:
            if step.rollback_of_id:
                continue
            defn = step.definition(with_ids=with_ids)
            children = sorted(rollbacks.get(step.pk, []), key=lambda s: (s.order, s.pk))
            if children:
                defn["rollback"] = [c.definition(with_ids=with_ids) for c in children]
            out.append(defn)
        return out

    def compute_hash(self) -> str:
        payload = json.dumps(self.definitions(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def refresh_config(self, save=True) -> bool:
        """Re-hash the steps after an edit; stamp edited_at when they changed."""
        new = self.compute_hash()
        if new == self.config_hash:
            return False
        self.config_hash = new
        self.edited_at = timezone.now()
        if save:
            type(self).objects.filter(pk=self.pk).update(config_hash=new, edited_at=self.edited_at)
        return True

    @transaction.atomic
    def replace_steps(self, definitions: list[dict], secrets: dict | None = None) -> list[str]:
        """Replace all steps from validated definitions (YAML import, templates).

        `secrets` maps a step name to its secret; a step that keeps its name, its kind and
        its endpoint (URL, host, port) and gets no new secret keeps the one it had. A
        secret whose endpoint changed is dropped: it was entered for the old address.
        Returns the names of the steps whose stored secret was dropped.
        """
        secrets = secrets or {}
        old = {s.name: s for s in self.steps.all() if s.secret}
        dropped = []

        def secret_for(defn):
            if secrets.get(defn["name"]):
                return secrets[defn["name"]]
            before = old.get(defn["name"])
            if before is None:
                return None
            if same_endpoint(
                before.kind,
                before.params,
                before.test_params,
                defn["kind"],
                defn.get("params"),
                defn.get("test_params"),
            ):
                return before.secret
            dropped.append(defn["name"])
            return None

        self.steps.all().delete()
        for order, defn in enumerate(definitions, 1):
            step = RunbookStep.from_definition(self, defn, order, secret_for(defn))
            for rb_order, rb in enumerate(defn.get("rollback") or [], 1):
                RunbookStep.from_definition(self, rb, rb_order, secret_for(rb), rollback_of=step)
        self.refresh_config()
        return dropped

    # --- verification ----------------------------------------------------------
    def _passed_runs(self):
        return self.runs.filter(status=RunStatus.SUCCEEDED, config_hash=self.config_hash)

    def last_verifying_run(self):
        """The newest run of the current steps that succeeded with every step exercised."""
        return self._passed_runs().filter(EXERCISED).order_by("-finished").first()

    def last_rehearsal(self):
        """The newest test run of the current steps that succeeded with steps not exercised."""
        return self._passed_runs().exclude(EXERCISED).order_by("-finished").first()

    def verification(self) -> tuple[str, str]:
        """(badge state, badge text): verified; verified in test mode, saying what that run
        did not exercise; or needs verification. List pages annotate verified_runs,
        rehearsal_effects and rehearsal_unproven (see views.runbook_list)."""
        if hasattr(self, "verified_runs"):
            verified = self.verified_runs
            rehearsal = None
            if self.rehearsal_effects is not None:
                rehearsal = FailoverRun(
                    skipped_effects=self.rehearsal_effects,
                    unproven_checks=self.rehearsal_unproven,
                )
        else:
            verified = self.last_verifying_run() is not None
            rehearsal = None if verified else self.last_rehearsal()
        if verified:
            return "succeeded", "verified"
        if rehearsal is not None:
            return "partial", f"verified in test mode — {rehearsal.not_exercised}"
        return "needs_verification", "needs verification"

    @property
    def needs_verification(self) -> bool:
        """True until a run of the current step definitions succeeded (a rehearsal counts,
        its badge saying what it did not exercise)."""
        return self.verification()[0] == "needs_verification"

    @property
    def rto_target(self):
        return RTOTarget.for_failure(self.failure_type)

    def longest_run(self) -> timedelta:
        """Worst case: every step and rollback using all its attempts up to its timeout."""
        total = timedelta(0)
        for step in self.steps.all():
            total += step.timeout + step.retries * step.retry_delay
        return total

    def exceeds_task_timeout(self) -> bool:
        """A run longer than the worker's task timeout would be killed by django-q2 midway."""
        return self.longest_run().total_seconds() > settings.Q_CLUSTER["timeout"]


class OnFailure(models.TextChoices):
    STOP = "stop", "Stop the run (and roll back)"
    CONTINUE = "continue", "Continue with the next step"


class RunbookStep(models.Model):
    """One step of a runbook, or a rollback step of another step."""

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField(default=1)
    rollback_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="rollback_steps",
        help_text="set for a rollback step: it undoes that step when a later step fails",
    )
    name = models.CharField(max_length=120, validators=[validate_single_line])
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    params = models.JSONField(default=dict, blank=True)
    test_params = models.JSONField(
        default=dict,
        blank=True,
        help_text="in test mode, a side-effect step runs with these parameters overridden "
        "(a test zone, a test URL) instead of being skipped",
    )
    secret = EncryptedTextField(help_text="bearer token, password or secret key; stored encrypted")
    timeout = models.DurationField(default=timedelta(minutes=1))
    on_failure = models.CharField(max_length=10, choices=OnFailure.choices, default=OnFailure.STOP)
    retries = models.PositiveSmallIntegerField(default=0)
    retry_delay = models.DurationField(default=timedelta(0))
    side_effects = models.BooleanField(default=False)
    verification = models.BooleanField(
        default=False, help_text="passing this step proves the service is back (ends the RTO)"
    )

    class Meta:
        ordering = ["order", "pk"]

    def __str__(self):
        return f"{self.order}. {self.name} ({self.kind})"

    @property
    def is_rollback(self):
        return self.rollback_of_id is not None

    def definition(self, *, with_ids=False) -> dict:
        defn = {
            "name": self.name,
            "kind": self.kind,
            "params": self.params or {},
            "timeout": self.timeout.total_seconds(),
            "on_failure": self.on_failure,
            "retries": self.retries,
            "retry_delay": self.retry_delay.total_seconds(),
            "side_effects": self.side_effects,
            "verification": self.verification,
        }
        if self.test_params:
            defn["test_params"] = self.test_params
        if self.secret:
            defn["has_secret"] = True
        if with_ids:
            defn["step_id"] = self.pk
        return defn

    def describe(self) -> str:
        kind = KINDS.get(self.kind)
        return kind.describe(self.params or {}) if kind else self.kind

    @classmethod
    def from_definition(cls, runbook, defn, order, secret=None, rollback_of=None):
        """Create a step from a definition that parse_step accepted."""
        spec, errors = parse_step(
            {k: v for k, v in defn.items() if k != "rollback"},
            f"step {order}",
            allow_command=True,
            nested=True,
        )
        if errors:
            raise ValueError("; ".join(errors))
        step = cls(
            runbook=runbook,
            order=order,
            rollback_of=rollback_of,
            name=spec.name,
            kind=spec.kind,
            params=spec.params,
            test_params=spec.test_params,
            timeout=timedelta(seconds=spec.timeout),
            on_failure=spec.on_failure,
            retries=spec.retries,
            retry_delay=timedelta(seconds=spec.retry_delay),
            side_effects=spec.side_effects,
            verification=spec.verification,
        )
        if secret:
            step.secret = secret
        step.save()
        return step


class RunMode(models.TextChoices):
    TEST = "test", "Test (side effects shown, not performed)"
    LIVE = "live", "Live"


# A run whose every step was exercised: nothing skipped in test mode, no check left unproven.
EXERCISED = Q(skipped_effects=0, unproven_checks=0)


class FailoverRun(RunBase):
    """One execution of a runbook, test or live, timed from the declared failure."""

    EVIDENCE_FIELDS = (
        *RunBase.EVIDENCE_FIELDS,
        *("runbook", "system", "mode", "declared_at", "config_hash", "rto", "rto_target"),
        *("verdict", "automated_time", "people_time", "retry_time"),
    )

    runbook = models.ForeignKey(Runbook, on_delete=models.PROTECT, related_name="runs")
    # Copied from the runbook so the database can hold "one live run per system".
    system = models.ForeignKey("backups.System", on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=4, choices=RunMode.choices, default=RunMode.TEST)
    declared_at = models.DateTimeField(
        default=timezone.now, help_text="when the failure was declared"
    )
    config_hash = models.CharField(max_length=64, blank=True)
    rto = models.DurationField(null=True, blank=True)
    rto_target = models.DurationField(null=True, blank=True)
    verdict = models.CharField(max_length=8, choices=Verdict.choices, blank=True, default="")
    automated_time = models.DurationField(null=True, blank=True)
    people_time = models.DurationField(null=True, blank=True)
    retry_time = models.DurationField(null=True, blank=True)
    # Data lost at promotion, measured: the newest heartbeat the promoted standby held.
    newest_heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="newest heartbeat on the new primary after promotion"
    )
    rpo = models.DurationField(
        null=True, blank=True, help_text="data lost: declared failure − newest heartbeat"
    )
    promotion_lag_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="WAL received but not replayed when promoted"
    )
    promotion_lag = models.DurationField(
        null=True, blank=True, help_text="age of the newest replayed transaction when promoted"
    )
    # Test mode's honesty: what the run did not exercise (see docs/failover.md).
    skipped_effects = models.PositiveSmallIntegerField(
        default=0, help_text="side-effect steps shown in test mode, not performed"
    )
    unproven_checks = models.PositiveSmallIntegerField(
        default=0, help_text="checks that could pass only after a skipped step, and did not"
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-queued"]
        constraints = [
            # Two live failovers of one system at once would fight over DNS and promotion.
            models.UniqueConstraint(
                fields=["system"],
                condition=Q(mode="live", status__in=["queued", "running"]),
                name="one_live_failover_per_system",
            )
        ]
        indexes = [
            # runbook page: last runs of a runbook, newest first
            models.Index(fields=["runbook", "-queued"], name="failover_run_by_runbook"),
            # the reaper: running runs whose heartbeat is old
            models.Index(fields=["status", "heartbeat_at"], name="failoverrun_reap_idx"),
        ]

    def __str__(self):
        return f"{self.get_mode_display().split(' ')[0]} failover #{self.pk} of {self.runbook.name}"

    def get_absolute_url(self):
        return reverse("recovery:failover:run", args=[self.pk])

    @classmethod
    def start(
        cls, runbook: Runbook, mode: str, user=None, declared_at=None, *, queue=True
    ) -> "FailoverRun":
        """Create the run and its pending step rows, then queue the worker task.

        queue=False: the caller runs recovery.failover.tasks.run_failover itself (the
        `failover` command runs it in the foreground through the same code).
        """
        runbook.refresh_config()
        try:
            with transaction.atomic():
                run = cls.objects.create(
                    runbook=runbook,
                    system_id=runbook.system_id,
                    mode=mode,
                    requested_by=user,
                    declared_at=declared_at or timezone.now(),
                    config_hash=runbook.config_hash,
                    rto_target=runbook.rto_target,
                )
                for position, defn in enumerate(runbook.definitions(with_ids=True), 1):
                    StepRun.objects.create(
                        run=run,
                        step_id=defn["step_id"],
                        position=position,
                        name=defn["name"],
                        kind=defn["kind"],
                        definition=defn,
                        side_effects=defn["side_effects"],
                        description=KINDS[defn["kind"]].describe(defn["params"])
                        if defn["kind"] in KINDS
                        else "",
                    )
        except IntegrityError as exc:
            if (
                mode == RunMode.LIVE
                and cls.objects.filter(
                    system_id=runbook.system_id, mode=RunMode.LIVE, status__in=ACTIVE
                ).exists()
            ):
                raise LiveRunExists(
                    f"A live failover of {runbook.system} is already queued or running; "
                    "wait for it to finish or cancel it."
                ) from exc
            raise
        if queue:
            enqueue("recovery.failover.tasks.run_failover", run.pk, group="failover")
        return run

    def request_cancel(self, user=None) -> str:
        """Queued: cancel now. Running: ask the worker, which rolls back and finishes."""
        if self.status == RunStatus.QUEUED:
            try:
                self.cancel(f"cancelled by {user or 'system'} before it started")
                return "cancelled"
            except Exception:
                self.refresh_from_db()
        if self.status == RunStatus.RUNNING:
            type(self).objects.filter(pk=self.pk, cancel_requested_at__isnull=True).update(
                cancel_requested_at=timezone.now(), cancel_requested_by=user
            )
            self.refresh_from_db()
            return "requested"
        return "done"

    @property
    def rehearsed(self) -> bool:
        """Succeeded in test mode without exercising every step: evidence, but partial."""
        return self.status == RunStatus.SUCCEEDED and bool(
            self.skipped_effects or self.unproven_checks
        )

    @property
    def not_exercised(self) -> str:
        """'2 side-effect steps not exercised, 1 check not proven', or ''."""
        parts = []
        if self.skipped_effects:
            n = self.skipped_effects
            parts.append(f"{n} side-effect step{'s' if n != 1 else ''} not exercised")
        if self.unproven_checks:
            n = self.unproven_checks
            parts.append(f"{n} check{'s' if n != 1 else ''} not proven")
        return ", ".join(parts)

    def on_finished(self):
        StepRun.objects.filter(run=self, status__in=[StepRun.Status.PENDING]).update(
            status=StepRun.Status.NOT_RUN
        )
        StepRun.objects.filter(
            run=self, status__in=[StepRun.Status.RUNNING, StepRun.Status.WAITING]
        ).update(
            status=StepRun.Status.FAILED,
            finished=self.finished,
            output=Concat("output", Value(f"\n(run ended: {self.error})")),
        )
        # The "failover finished" alert follows the run's RunEvent (incidents.events).

    @property
    def split(self):
        """(label, duration, percent) of automated, people and retry time."""
        parts = [
            ("Automated steps", self.automated_time),
            ("Waiting for people", self.people_time),
            ("Retries", self.retry_time),
        ]
        total = sum((p[1] or timedelta(0) for p in parts), timedelta(0)).total_seconds()
        return [
            (label, value, round(100 * value.total_seconds() / total) if value and total else 0)
            for label, value in parts
        ]


class StepRun(models.Model):
    """One step as executed in a run: times, attempts, output (secrets redacted), who confirmed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for confirmation"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        TIMED_OUT = "timed_out", "Timed out"
        SKIPPED = "skipped", "Skipped (test mode)"
        UNPROVEN = "unproven", "Not proven (needs a skipped step)"
        CANCELLED = "cancelled", "Cancelled"
        NOT_RUN = "not_run", "Not run"

    run = models.ForeignKey(FailoverRun, on_delete=models.CASCADE, related_name="step_runs")
    step = models.ForeignKey(
        RunbookStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20)
    definition = models.JSONField(default=dict)  # snapshot at run start; no secrets
    description = models.TextField(blank=True)
    side_effects = models.BooleanField(default=False)
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="rollback_runs"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    output = models.TextField(blank=True)
    automated_time = models.DurationField(null=True, blank=True)
    waited_for_person = models.DurationField(null=True, blank=True)
    retry_time = models.DurationField(null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)

    audit = False  # part of the run; confirmations are audited by the view

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self):
        return f"{self.position}. {self.name}"

    @property
    def is_rollback(self):
        return self.rollback_of_id is not None

    @property
    def duration(self):
        if self.started and self.finished:
            return self.finished - self.started
        if self.started:
            return timezone.now() - self.started
        return None


class ReplicationLagSample(models.Model):
    """The lag of a runbook's standby (a pg_promote step's server), sampled every minute."""

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="lag_samples")
    step = models.ForeignKey(
        RunbookStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    standby = models.CharField(max_length=300, help_text="host:port/dbname")
    sampled_at = models.DateTimeField(default=timezone.now)
    lag_bytes = models.BigIntegerField(null=True, blank=True)
    lag = models.DurationField(null=True, blank=True)
    from_primary = models.BooleanField(
        default=False, help_text="bytes against the primary's current WAL position"
    )
    error = models.CharField(max_length=500, blank=True)

    audit = False  # measurements, written by a task every minute

    class Meta:
        ordering = ["-sampled_at"]
        indexes = [
            # runbook page chart, the newest sample per runbook, the run page's last sample
            models.Index(fields=["runbook", "-sampled_at"], name="lag_sample_by_runbook"),
            # pruning old samples
            models.Index(fields=["sampled_at"], name="lag_sample_prune_idx"),
        ]

    def __str__(self):
        return f"{self.standby} at {self.sampled_at:%Y-%m-%d %H:%M}"

    @property
    def lag_seconds(self) -> float | None:
        return None if self.lag is None else self.lag.total_seconds()
