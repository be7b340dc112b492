"""Accepting a failed data-loss canary's value as the new baseline ("accept new baseline").

A canary check (`not below X% of previous`) compares with the value the last passing test
saw. After an intentional bulk delete it fails on every test from then on; a manager who
knows why accepts the value the newest test observed, with a reason that is audited, and
the next test compares with that value (restore_tests.previous_observations).
"""

from django.db import IntegrityError, transaction

from dr_portal import audit
from dr_portal.runs import RunStatus
from recovery.engine.checks import ExpectationError, Outcome, parse_expectation
from recovery.models import CanaryBaseline, RestoreTest


class BaselineRefused(ValueError):
    """This check of this test cannot become the baseline; the message says why."""


def _is_canary(expect: str) -> bool:
    try:
        return parse_expectation(expect or "").is_canary
    except ExpectationError:
        return False


def acceptable_checks(test: RestoreTest) -> set[str]:
    """Names of this test's failed canary checks that may become the baseline: only on the
    source's newest finished test, and not already accepted."""
    if test.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        return set()
    failed = {
        c.get("name")
        for c in test.checks or []
        if c.get("outcome") == Outcome.FAILED
        and _is_canary(c.get("expect"))
        and c.get("observed") not in (None, "")
    }
    if not failed:
        return set()
    newest = (
        RestoreTest.objects.filter(
            source_id=test.source_id, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]
        )
        .order_by("-finished", "-pk")
        .values_list("pk", flat=True)
        .first()
    )
    if newest != test.pk:
        return set()
    done = set(test.accepted_baselines.values_list("check_name", flat=True))
    return failed - done


def accept(test: RestoreTest, check_name: str, user, reason: str) -> CanaryBaseline:
    """Record the accepted baseline and audit it; BaselineRefused when not allowed."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise BaselineRefused("Say why the smaller value is expected (it goes to the audit log).")
    if check_name not in acceptable_checks(test):
        raise BaselineRefused(
            f"“{check_name}” is not a failed data-loss check of the newest restore test of "
            f"{test.source}; only that value can become the baseline."
        )
    observed = next(c["observed"] for c in test.checks if c.get("name") == check_name)
    try:
        with transaction.atomic():
            baseline = CanaryBaseline.objects.create(
                source_id=test.source_id,
                restore_test=test,
                check_name=check_name,
                value=str(observed)[:100],
                reason=reason[:300],
                accepted_by=user,
            )
            audit.record(
                "accept new baseline",
                test,
                user=user,
                detail=f"check {check_name!r}: {observed} is the new baseline: {reason}",
            )
    except IntegrityError as exc:
        raise BaselineRefused("That value was accepted already.") from exc
    return baseline
