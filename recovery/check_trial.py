"""'Try on the latest restore' on the source form: what the typed checks would do.

A check is SQL run on a restored copy, never on the source. Restore tests drop their
scratch copy when they end (their RTO stops when the checks pass; clean-up follows), so
no restored copy is left to run a new check against: trying one means a fresh restore
test. This reports what can be known without one — whether each typed check is valid,
and what the newest passed restore test observed for a check with the same name and SQL
— and offers Test now, which restores the newest backup into scratch and runs the saved
checks through the confined check role, as every restore test does.
"""

from dataclasses import dataclass

from backups import check_editor, validators
from backups.models import Source
from dr_portal.runs import RunStatus
from recovery.engine.checks import scrub_stored
from recovery.models import RestoreTest


@dataclass
class TrialRow:
    name: str
    sql: str
    expect: str
    last: dict | None  # the newest passed test's result for this very check, if it ran one
    changed: bool  # the same name ran with other SQL or another expectation

    @property
    def outcome(self) -> str:
        return str((self.last or {}).get("outcome") or "").replace("_", " ")

    @property
    def observed(self):
        return (self.last or {}).get("observed")


@dataclass
class Trial:
    rows: list[TrialRow]
    problems: list[str]
    latest: RestoreTest | None
    unsaved: bool  # the typed checks differ from the saved ones: Test now runs the saved ones

    @property
    def summary(self) -> str:
        if self.problems:
            return f"{len(self.problems)} problem(s) in the typed checks"
        ran = sum(1 for r in self.rows if r.last)
        return f"{len(self.rows)} valid check(s), {ran} already run by test #{self.latest_pk}"

    @property
    def latest_pk(self):
        return self.latest.pk if self.latest else None


def latest_passed_test(source: Source) -> RestoreTest | None:
    return (
        RestoreTest.objects.filter(source=source, status=RunStatus.SUCCEEDED)
        .order_by("-finished", "-pk")
        .only("pk", "finished", "checks", "source_id")
        .first()
    )


def try_checks(source: Source, data) -> Trial:
    """What the checks typed into the source form (`data`, the posted form) would do."""
    checks, problems = check_editor.typed_checks(data)
    if source.is_portal_db and checks:
        problems = [validators.PORTAL_DB_CHECKS_FIXED]
    latest = latest_passed_test(source)
    stored = latest.checks if latest else []
    ran = {c.get("name"): scrub_stored(c) for c in stored if isinstance(c, dict)}
    rows = []
    for check in checks:
        seen = ran.get(check["name"])
        same = bool(seen) and (seen.get("sql"), seen.get("expect")) == (
            check["sql"],
            check["expect"],
        )
        rows.append(
            TrialRow(
                check["name"], check["sql"], check["expect"], seen if same else None, bool(seen)
            )
        )
    saved = validators.normalise_checks(source.checks or [])
    return Trial(rows, problems, latest, unsaved=not problems and checks != saved)
