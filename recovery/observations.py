"""What earlier restore tests observed: the canary checks compare against it."""

from backups.models import Source
from dr_portal.runs import RunStatus
from recovery.engine.checks import Outcome
from recovery.models import CanaryBaseline, RestoreTest


def previous_observations(source: Source, before_pk: int | None = None) -> dict[str, str]:
    """For the canary: each check's newest observed value from a test where it passed, or
    where a manager accepted it as the new baseline (CanaryBaseline)."""
    found: dict[str, str] = {}
    tests = RestoreTest.objects.filter(
        source=source, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]
    )
    if before_pk:
        tests = tests.exclude(pk=before_pk)
    accepted = set(
        CanaryBaseline.objects.filter(source=source).values_list("restore_test_id", "check_name")
    )
    for pk, checks in tests.order_by("-finished", "-pk").values_list("pk", "checks")[:50]:
        for check in checks or []:
            name = check.get("name")
            good = check.get("outcome") == Outcome.PASSED or (pk, name) in accepted
            if name and name not in found and good:
                found[name] = check.get("observed")
    return found
