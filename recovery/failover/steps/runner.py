"""Run validated steps in order: retries, deadlines, test mode, rollbacks, timing split.

The caller (recovery.failover.tasks) supplies Hooks that record each step and answer
"cancelled?" and "who confirmed?"; this module knows nothing of Django.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dr_portal.lib.redact import redact

from .base import Context, StepCancelled, StepResult, StepSpec, StepTimedOut
from .registry import KINDS

SUCCEEDED, FAILED, TIMED_OUT, SKIPPED, CANCELLED = (
    "succeeded",
    "failed",
    "timed_out",
    "skipped",
    "cancelled",
)
# Test mode: a check that could pass only after a skipped side-effect step, and did not.
# It proves nothing either way, so it neither fails the run nor counts as evidence.
NOT_PROVEN = "unproven"
OUTPUT_LIMIT = 20_000


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Outcome:
    spec: StepSpec
    status: str
    output: str = ""
    attempts: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    people_s: float = 0.0
    retry_s: float = 0.0
    automated_s: float = 0.0
    confirmed_by: str = ""
    rollback_of: StepSpec | None = None
    facts: dict = field(default_factory=dict)  # from the attempt that succeeded

    @property
    def ok(self):
        return self.status in (SUCCEEDED, SKIPPED, NOT_PROVEN)


@dataclass
class RunResult:
    status: str  # succeeded, partial, failed, cancelled
    error: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    verified_at: datetime | None = None  # the last verification step that passed
    automated_s: float = 0.0
    people_s: float = 0.0
    retry_s: float = 0.0

    def facts(self, kind: str) -> dict:
        """The facts of the last step of `kind` that succeeded (not a rollback), or {}."""
        for o in reversed(self.outcomes):
            if o.spec.kind == kind and o.rollback_of is None and o.status == SUCCEEDED:
                return o.facts
        return {}

    @property
    def skipped_effects(self) -> int:
        """Test mode: side-effect steps shown ("would …"), not performed."""
        return sum(1 for o in self.outcomes if o.rollback_of is None and o.status == SKIPPED)

    @property
    def unproven_checks(self) -> int:
        """Test mode: checks that could not pass without a skipped step."""
        return sum(1 for o in self.outcomes if o.status == NOT_PROVEN)


@dataclass
class _StepClock:
    """Where a step's wall time went: waiting for people, between retries, automated."""

    start: float
    people: float = 0.0
    first_attempt_end: float | None = None

    def settle(self, outcome: Outcome) -> None:
        end = time.monotonic()
        outcome.people_s = self.people
        outcome.retry_s = end - self.first_attempt_end if outcome.attempts > 1 else 0.0
        outcome.automated_s = max(0.0, end - self.start - self.people - outcome.retry_s)


class Hooks:
    """Override what the caller needs; the defaults run steps without any recording."""

    def started(self, spec: StepSpec, attempt: int, rollback_of: StepSpec | None):
        pass

    def finished(self, outcome: Outcome):
        pass

    def cancelled(self) -> bool:
        return False

    def lost(self, fresh: bool = False) -> str:
        """Non-empty (why) when this worker no longer holds the run: it must stop at once.

        fresh: ask the authority now (before a step); otherwise a recent answer may do.
        """
        return ""

    def wait_for_person(self, spec: StepSpec, deadline: float, cancelled=lambda: False) -> str:
        """Block until a person confirms (return who), or raise StepCancelled / StepTimedOut."""
        raise StepTimedOut("nobody can confirm manual steps here")

    def log(self, line: str):
        pass


class Runner:
    def __init__(self, hooks: Hooks, *, test_mode: bool, secrets=()):
        self.hooks = hooks
        self.test_mode = test_mode
        self.secrets = [s for s in secrets if s]
        self.ignore_cancel = False
        self.lost_reason = ""
        self.skipped: list[StepSpec] = []  # side-effect steps test mode skipped

    def clean(self, text: str) -> str:
        text = redact(text or "", self.secrets)
        if len(text) > OUTPUT_LIMIT:
            text = "…(cut)\n" + text[-OUTPUT_LIMIT:]
        return text

    def lost(self, fresh: bool = False) -> bool:
        ask = getattr(self.hooks, "lost", None)  # hooks written before fencing lack it
        if not self.lost_reason and ask is not None:
            self.lost_reason = ask(fresh)
        return bool(self.lost_reason)

    def cancelled(self) -> bool:
        # A lost lease interrupts a running step like a cancel. During rollback neither
        # interrupts: the rollback undoes what this worker did, so it runs to its end.
        if self.ignore_cancel:
            return False
        return self.hooks.cancelled() or self.lost()

    # --- one step --------------------------------------------------------------
    def _params(self, spec: StepSpec, kind) -> tuple[dict | None, str]:
        """(parameters to run with, output prefix); None when test mode skips the step."""
        # The kind has the last word: a stored flag can add side effects, never remove them.
        side_effects = spec.side_effects or kind.has_side_effects(spec.params)
        if not self.test_mode:
            return spec.params, ""
        if side_effects and kind.runs_in_test:
            return spec.params, "test mode, into scratch: "
        if spec.test_params and not kind.skipped_in_test:
            # also a check's: post-promotion checks can run against the test standby
            return {**spec.params, **spec.test_params}, "test mode, test environment parameters: "
        if side_effects:
            return None, ""
        return spec.params, ""

    def _depends_on_skipped(self, spec: StepSpec, kind, rollback_of) -> list[str]:
        """Test mode: the skipped steps this check could pass only after (inferred from kinds).

        A check with test_params runs against its test target and is judged as usual; a
        precondition (expect: down) never depends on a later effect."""
        if not self.test_mode or rollback_of is not None or spec.test_params:
            return []
        if not kind.is_check or spec.side_effects or kind.has_side_effects(spec.params):
            return []
        if spec.params.get("expect") == "down":
            return []
        return [s.name for s in self.skipped if KINDS[s.kind].affects(s.params, spec)]

    def _skipped(self, spec: StepSpec, kind, outcome: Outcome, rollback_of) -> Outcome:
        outcome.status = SKIPPED
        outcome.output = self.clean(f"test mode: would {kind.describe(spec.params)}")
        self.hooks.started(spec, 0, rollback_of)
        outcome.started = outcome.finished = now()
        self.hooks.finished(outcome)
        return outcome

    def _attempt(self, kind, params: dict, ctx: Context, outcome: Outcome) -> StepResult:
        """One attempt; a step's failure is recorded in its result, not raised."""
        try:
            ctx.check()
            return kind.run(params, ctx)
        except StepCancelled as exc:
            outcome.status = CANCELLED
            return StepResult(False, str(exc))
        except StepTimedOut as exc:
            return StepResult(False, str(exc), timed_out=True)
        except Exception as exc:  # noqa: BLE001 - a step's failure is recorded, not raised
            return StepResult(False, f"{type(exc).__name__}: {exc}")

    def _pause(self, spec: StepSpec, ctx: Context, outcome: Outcome, lines: list) -> bool:
        """Wait the retry delay; False when a cancel or the step's deadline ends the step."""
        try:
            ctx.sleep(spec.retry_delay)
        except StepCancelled:
            outcome.status = CANCELLED
            return False
        except StepTimedOut:
            outcome.status = TIMED_OUT
            lines.append(f"step timeout of {spec.timeout:g} s reached")
            return False
        return True

    def _attempts(self, spec, kind, params, ctx, outcome, prefix, clock, attempts):
        """Run up to `attempts` attempts; (output lines, whether the last one succeeded)."""
        lines = []
        for attempt in range(1, attempts + 1):
            outcome.attempts = attempt
            self.hooks.started(spec, attempt, outcome.rollback_of)
            result = self._attempt(kind, params, ctx, outcome)
            if clock.first_attempt_end is None:
                clock.first_attempt_end = time.monotonic()
            label = f"attempt {attempt}/{attempts}: " if attempts > 1 else ""
            lines.append(prefix + label + (result.output or ("ok" if result.ok else "failed")))
            if result.ok:
                outcome.facts = dict(result.facts or {})
                break
            if outcome.status == CANCELLED:
                break
            if result.timed_out or time.monotonic() >= ctx.deadline:
                outcome.status = TIMED_OUT
                lines.append(f"step timeout of {spec.timeout:g} s reached")
                break
            if attempt < attempts and not self._pause(spec, ctx, outcome, lines):
                break
        return lines, result.ok

    def execute(self, spec: StepSpec, rollback_of: StepSpec | None = None) -> Outcome:
        kind = KINDS[spec.kind]
        outcome = Outcome(spec, SUCCEEDED, started=now(), rollback_of=rollback_of)
        params, prefix = self._params(spec, kind)
        if params is None:
            if rollback_of is None:
                self.skipped.append(spec)
            return self._skipped(spec, kind, outcome, rollback_of)
        depends_on = self._depends_on_skipped(spec, kind, rollback_of)
        # Retrying a check that cannot pass yet only costs time: one attempt.
        attempts = 1 if depends_on else 1 + max(0, spec.retries)

        clock = _StepClock(time.monotonic())

        def wait_for_person(dl):
            w0 = time.monotonic()
            try:
                # the runner's predicate: during rollback a cancel no longer interrupts
                who = self.hooks.wait_for_person(spec, dl, self.cancelled)
                outcome.confirmed_by = who
                return who
            finally:
                clock.people += time.monotonic() - w0

        ctx = Context(
            deadline=clock.start + spec.timeout,
            secret=spec.secret,
            cancelled=self.cancelled,
            wait_for_person=wait_for_person,
            log=lambda line: self.hooks.log(self.clean(line)),
            test_mode=self.test_mode,
            pitr_restore=getattr(self.hooks, "pitr_restore", None),
            restore=getattr(self.hooks, "restore", None),
        )
        lines, ok = self._attempts(spec, kind, params, ctx, outcome, prefix, clock, attempts)
        if outcome.status == SUCCEEDED and not ok:
            outcome.status = FAILED
        if depends_on and outcome.status in (FAILED, TIMED_OUT):
            outcome.status = NOT_PROVEN
            names = ", ".join(repr(n) for n in depends_on)
            lines.append(
                f"test mode: not proven — it can pass only after {names}, which test mode "
                "skipped; not counted as a failure, nor as evidence"
            )
        clock.settle(outcome)
        outcome.finished = now()
        outcome.output = self.clean("\n".join(lines))
        self.hooks.finished(outcome)
        return outcome

    # --- the whole list ----------------------------------------------------------
    def _before(self, spec: StepSpec, result: RunResult) -> str:
        """Why the run stops before `spec` (setting its status), or ""."""
        if self.lost(fresh=True):  # fencing: before each step, is the run still ours?
            result.status = FAILED
            return f"stopped before {spec.name!r}: {self.lost_reason}"
        if self.cancelled():
            result.status = CANCELLED
            return "cancelled"
        return ""

    def _after(self, spec: StepSpec, outcome: Outcome, result: RunResult, done: list) -> str:
        """Record a step's outcome on the run; why the run stops after it, or ""."""
        if outcome.status == CANCELLED and self.lost_reason:
            result.status = FAILED
            return f"{spec.name!r} interrupted: {self.lost_reason}"
        if outcome.status in (SUCCEEDED, SKIPPED):
            done.append(spec)  # a skipped step's rollback shows as "would …" in test mode
            if spec.verification and outcome.status == SUCCEEDED:
                result.verified_at = outcome.finished
        elif outcome.status == NOT_PROVEN:
            self.hooks.log(f"step {spec.name!r} not proven in test mode; continuing")
        elif outcome.status == CANCELLED:
            result.status = CANCELLED
            return "cancelled"
        elif outcome.status in (FAILED, TIMED_OUT):
            what = "timed out" if outcome.status == TIMED_OUT else "failed"
            if spec.on_failure == "continue":
                result.status = "partial"
                self.hooks.log(f"step {spec.name!r} {what}; continuing as configured")
                return ""
            result.status = FAILED
            return f"step {spec.name!r} {what}"
        return ""

    def run(self, specs: list[StepSpec]) -> RunResult:
        result = RunResult(SUCCEEDED)
        done: list[StepSpec] = []  # steps that took effect, for rollback
        stop_reason = ""
        for spec in specs:
            stop_reason = self._before(spec, result)
            if stop_reason:
                break
            outcome = self.execute(spec)
            result.outcomes.append(outcome)
            stop_reason = self._after(spec, outcome, result, done)
            if stop_reason:
                break
        if result.status in (FAILED, CANCELLED):
            result.error = stop_reason
            rollback_errors = self.rollback(done, result)
            if rollback_errors:
                result.error += "; rollback problems: " + "; ".join(rollback_errors)
            result.verified_at = None  # a stopped run did not bring the service back
        for o in result.outcomes:
            result.automated_s += o.automated_s
            result.people_s += o.people_s
            result.retry_s += o.retry_s
        return result

    def rollback(self, done: list[StepSpec], result: RunResult) -> list[str]:
        """Undo what took effect, newest first; a failing rollback step does not stop the others."""
        errors = []
        self.ignore_cancel = True  # a cancel asks for rollback; it must not cancel the rollback
        for spec in reversed(done):
            if spec.rollback:
                self.hooks.log(f"rolling back {spec.name!r}")
            for rb in spec.rollback:
                outcome = self.execute(rb, rollback_of=spec)
                result.outcomes.append(outcome)
                if not outcome.ok:
                    errors.append(f"{rb.name!r} {outcome.status.replace('_', ' ')}")
        return errors


def run_steps(specs: list[StepSpec], hooks: Hooks | None = None, *, test_mode=False, secrets=()):
    return Runner(hooks or Hooks(), test_mode=test_mode, secrets=secrets).run(specs)
