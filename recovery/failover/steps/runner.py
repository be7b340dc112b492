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

    @property
    def ok(self):
        return self.status in (SUCCEEDED, SKIPPED)


@dataclass
class RunResult:
    status: str  # succeeded, partial, failed, cancelled
    error: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    verified_at: datetime | None = None  # the last verification step that passed
    automated_s: float = 0.0
    people_s: float = 0.0
    retry_s: float = 0.0


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
    def execute(self, spec: StepSpec, rollback_of: StepSpec | None = None) -> Outcome:
        kind = KINDS[spec.kind]
        outcome = Outcome(spec, SUCCEEDED, started=now(), rollback_of=rollback_of)
        params = spec.params
        prefix = ""
        # The kind has the last word: a stored flag can add side effects, never remove them.
        side_effects = spec.side_effects or kind.has_side_effects(params)
        if self.test_mode and side_effects:
            if not spec.test_params or kind.skipped_in_test:
                outcome.status = SKIPPED
                outcome.output = self.clean(f"test mode: would {kind.describe(params)}")
                self.hooks.started(spec, 0, rollback_of)
                outcome.started = outcome.finished = now()
                self.hooks.finished(outcome)
                return outcome
            params = {**params, **spec.test_params}
            prefix = "test mode, test environment parameters: "

        t0 = time.monotonic()
        deadline = t0 + spec.timeout
        people = 0.0
        first_attempt_end = None

        def wait_for_person(dl):
            nonlocal people
            w0 = time.monotonic()
            try:
                # the runner's predicate: during rollback a cancel no longer interrupts
                who = self.hooks.wait_for_person(spec, dl, self.cancelled)
                outcome.confirmed_by = who
                return who
            finally:
                people += time.monotonic() - w0

        ctx = Context(
            deadline=deadline,
            secret=spec.secret,
            cancelled=self.cancelled,
            wait_for_person=wait_for_person,
            log=lambda line: self.hooks.log(self.clean(line)),
        )
        lines = []
        attempts = 1 + max(0, spec.retries)
        for attempt in range(1, attempts + 1):
            outcome.attempts = attempt
            self.hooks.started(spec, attempt, rollback_of)
            try:
                ctx.check()
                result: StepResult = kind.run(params, ctx)
            except StepCancelled as exc:
                result = StepResult(False, str(exc))
                outcome.status = CANCELLED
            except StepTimedOut as exc:
                result = StepResult(False, str(exc), timed_out=True)
            except Exception as exc:  # a step's failure is recorded, not raised
                result = StepResult(False, f"{type(exc).__name__}: {exc}")
            if first_attempt_end is None:
                first_attempt_end = time.monotonic()
            label = f"attempt {attempt}/{attempts}: " if attempts > 1 else ""
            lines.append(prefix + label + (result.output or ("ok" if result.ok else "failed")))
            if result.ok or outcome.status == CANCELLED:
                break
            if result.timed_out or time.monotonic() >= deadline:
                outcome.status = TIMED_OUT
                lines.append(f"step timeout of {spec.timeout:g} s reached")
                break
            if attempt < attempts:
                try:
                    ctx.sleep(spec.retry_delay)
                except StepCancelled:
                    outcome.status = CANCELLED
                    break
                except StepTimedOut:
                    outcome.status = TIMED_OUT
                    lines.append(f"step timeout of {spec.timeout:g} s reached")
                    break
        if outcome.status == SUCCEEDED and not result.ok:
            outcome.status = FAILED
        end = time.monotonic()
        total = end - t0
        outcome.people_s = people
        outcome.retry_s = end - first_attempt_end if outcome.attempts > 1 else 0.0
        outcome.automated_s = max(0.0, total - people - outcome.retry_s)
        outcome.finished = now()
        outcome.output = self.clean("\n".join(lines))
        self.hooks.finished(outcome)
        return outcome

    # --- the whole list ----------------------------------------------------------
    def run(self, specs: list[StepSpec]) -> RunResult:
        result = RunResult(SUCCEEDED)
        done: list[StepSpec] = []  # steps that took effect, for rollback
        stop_reason = ""
        for spec in specs:
            if self.lost(fresh=True):  # fencing: before each step, is the run still ours?
                stop_reason = f"stopped before {spec.name!r}: {self.lost_reason}"
                result.status = FAILED
                break
            if self.cancelled():
                stop_reason = "cancelled"
                result.status = CANCELLED
                break
            outcome = self.execute(spec)
            result.outcomes.append(outcome)
            if outcome.status == CANCELLED and self.lost_reason:
                result.status = FAILED
                stop_reason = f"{spec.name!r} interrupted: {self.lost_reason}"
                break
            if outcome.status in (SUCCEEDED, SKIPPED):
                done.append(spec)  # a skipped step's rollback shows as "would …" in test mode
                if spec.verification and outcome.status == SUCCEEDED:
                    result.verified_at = outcome.finished
            elif outcome.status == CANCELLED:
                result.status = CANCELLED
                stop_reason = "cancelled"
                break
            elif outcome.status in (FAILED, TIMED_OUT):
                what = "timed out" if outcome.status == TIMED_OUT else "failed"
                if spec.on_failure == "continue":
                    result.status = "partial"
                    self.hooks.log(f"step {spec.name!r} {what}; continuing as configured")
                    continue
                result.status = FAILED
                stop_reason = f"step {spec.name!r} {what}"
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
