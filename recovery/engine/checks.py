"""Verification checks: an SQL query and an expectation about its first value.

Expectations: `> N`, `>= N`, `< N`, `<= N`, `= N`, `!= N`, and the data-loss canary
`not below X% of previous` (the value must be at least X % of what the previous
restore test of the same source observed for the same check).

Every check ends passed, failed or could_not_verify. could_not_verify (the query
errored, returned nothing or no number) is never a pass.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    COULD_NOT_VERIFY = "could_not_verify"


class ExpectationError(ValueError):
    """An expectation that cannot be parsed; the message says how to write one."""


_COMPARE = re.compile(r"^\s*(>=|<=|!=|=|==|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_CANARY = re.compile(
    r"^\s*not\s+below\s+(\d+(?:\.\d+)?)\s*%\s*(?:of\s+(?:the\s+)?previous(?:\s+test)?)?\s*$",
    re.IGNORECASE,
)
_OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
HELP = 'write it like "> 0", ">= 100", "= 3" or "not below 90% of previous"'


@dataclass(frozen=True)
class Expectation:
    op: str  # one of _OPS, or "canary"
    value: Decimal  # the bound, or the percentage for the canary

    @property
    def is_canary(self) -> bool:
        return self.op == "canary"

    def __str__(self):
        if self.is_canary:
            return f"not below {self.value}% of previous"
        return f"{self.op} {self.value}"


def parse_expectation(text: str) -> Expectation:
    text = (text or "").strip()
    match = _COMPARE.match(text)
    if match:
        return Expectation(match.group(1), Decimal(match.group(2)))
    match = _CANARY.match(text)
    if match:
        pct = Decimal(match.group(1))
        if pct <= 0 or pct > 100:
            raise ExpectationError(f"{text!r}: the percentage must be between 0 and 100")
        return Expectation("canary", pct)
    raise ExpectationError(f"{text!r} is not an expectation; {HELP}")


def as_number(value) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def evaluate(expect: str, observed, previous=None) -> tuple[Outcome, str]:
    """Judge one observed value; return the outcome and a sentence saying why."""
    try:
        expectation = parse_expectation(expect)
    except ExpectationError as exc:
        return Outcome.COULD_NOT_VERIFY, str(exc)
    number = as_number(observed)
    if number is None:
        return Outcome.COULD_NOT_VERIFY, f"the query returned {observed!r}, not a number"
    if expectation.is_canary:
        before = as_number(previous)
        if before is None:
            return Outcome.PASSED, "first observation: it becomes the baseline for the next test"
        floor = before * expectation.value / 100
        if number >= floor:
            return Outcome.PASSED, f"{number} is not below {expectation.value}% of {before}"
        lost = (1 - number / before) * 100 if before else 0
        return (
            Outcome.FAILED,
            f"possible data loss: {number} is below {expectation.value}% of the previous "
            f"{before} ({lost:.0f}% fewer)",
        )
    if _OPS[expectation.op](number, expectation.value):
        return Outcome.PASSED, f"{number} {expectation.op} {expectation.value}"
    return Outcome.FAILED, f"expected {expectation}, observed {number}"


@dataclass
class CheckResult:
    name: str
    sql: str
    expect: str
    observed: str | None
    outcome: str
    detail: str
    previous: str | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED

    def as_dict(self) -> dict:
        return asdict(self)


def _plain(value):
    if value is None:
        return None
    if isinstance(value, Decimal | int | float):
        return str(value)
    return str(value)[:200]


def run_checks(
    query: Callable[[str], object],
    checks: Iterable[dict],
    previous: dict[str, object] | None = None,
) -> list[CheckResult]:
    """Run each {name, sql, expect} with `query(sql) -> first value`; never raises for a check."""
    previous = previous or {}
    results = []
    for position, check in enumerate(checks, 1):
        name = (check.get("name") or "").strip() or f"check {position}"
        text = (check.get("sql") or "").strip()
        expect = (check.get("expect") or "").strip()
        prev = previous.get(name)
        if not text:
            results.append(
                CheckResult(name, text, expect, None, Outcome.COULD_NOT_VERIFY, "no SQL given")
            )
            continue
        try:
            observed = query(text)
        except Exception as exc:  # a check that errors is evidence of nothing, not a crash
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            results.append(
                CheckResult(
                    name,
                    text,
                    expect,
                    None,
                    Outcome.COULD_NOT_VERIFY,
                    f"the query failed: {message[:300]}",
                    _plain(prev),
                )
            )
            continue
        outcome, detail = evaluate(expect, observed, prev)
        results.append(
            CheckResult(name, text, expect, _plain(observed), outcome, detail, _plain(prev))
        )
    return results


# --- query functions for the two kinds of SQL databases -------------------------


def pg_query(conn, statement_timeout_ms: int = 300_000):
    """A query function on a psycopg connection: read-only, time-limited, first value."""

    def query(text: str):
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
            row = conn.execute(text).fetchone()
            return row[0] if row else None

    return query


def sqlite_query(conn):
    def query(text: str):
        row = conn.execute(text).fetchone()
        return row[0] if row else None

    return query
