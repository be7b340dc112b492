"""What earlier restore tests observed: the canary checks compare against it."""

from backups.models import Source
from dr_portal.runs import RunStatus
from recovery.engine.checks import Outcome
from recovery.models import RestoreTest


def previous_observations(source: Source, before_pk: int | None = None) -> dict[str, str]:
    """For the canary: each check's newest observed value from a test where it passed."""
    found: dict[str, str] = {}
    tests = RestoreTest.objects.filter(
        source=source, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]
    )
    if before_pk:
        tests = tests.exclude(pk=before_pk)
    for checks in tests.order_by("-finished", "-pk").values_list("checks", flat=True)[:50]:
        for check in checks or []:
            name = check.get("name")
            if name and name not in found and check.get("outcome") == Outcome.PASSED:
                found[name] = check.get("observed")
    return found
