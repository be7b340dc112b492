"""Verification checks: an SQL query and an expectation about its first value.

Expectations: `> N`, `>= N`, `< N`, `<= N`, `= N`, `!= N`, and the data-loss canary
`not below X% of previous` (the value must be at least X % of what the previous
restore test of the same source observed for the same check).

Every check ends passed, failed or could_not_verify. could_not_verify (the SQL was
refused, the query errored or returned nothing) is never a pass.

A check's value must be a number or a boolean. Anything else fails the check with
"returned a non-number", and the value itself is never stored, shown or logged: a check
is SQL run on a copy of production data, and its result is the one thing that leaves
the restored copy. Error messages are redacted for the same reason (safe_error).
"""

import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path

from dr_portal.lib import check_sql


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
    """The value as a number, for values of a numeric type only (booleans count as 1 and 0).

    Text is refused even when it looks like a number: a check that returns a column's
    text is reading data, and what it read must not travel into the catalog.
    """
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    else:
        return None
    return number if number.is_finite() else None  # NaN cannot be compared


def _stored_number(value) -> Decimal | None:
    """A number read back from the catalog (the previous observation, stored as text)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


NON_NUMBER = "the query returned a non-number (a check must return a number or a boolean)"


def evaluate(expect: str, observed, previous=None) -> tuple[Outcome, str]:
    """Judge one observed value; return the outcome and a sentence saying why."""
    try:
        expectation = parse_expectation(expect)
    except ExpectationError as exc:
        return Outcome.COULD_NOT_VERIFY, str(exc)
    if observed is None:
        return Outcome.COULD_NOT_VERIFY, "the query returned no value"
    number = as_number(observed)
    if number is None:
        return Outcome.FAILED, NON_NUMBER  # never the value: it may be anything the data holds
    if expectation.is_canary:
        before = _stored_number(previous)
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


def _plain(value) -> str | None:
    """What is stored as `observed`: a number's text, and nothing for anything else."""
    number = as_number(value)
    return None if number is None else str(number)


_QUOTED = re.compile(r'"[^"]*"|\'[^\']*\'')


def _redact(line: str, sql: str) -> str:
    """Replace every quoted part of a message that is not taken from the check's own SQL
    with "…" (PostgreSQL quotes the offending value: invalid input syntax for type integer:
    "s3cret"), and an unquoted tail after a colon likewise (SQLite: "no such table: t")."""
    lowered = sql.lower()

    def keep_if_in_sql(match):
        quote, inner = match.group(0)[0], match.group(0)[1:-1]
        return match.group(0) if inner and inner.lower() in lowered else f"{quote}…{quote}"

    line = _QUOTED.sub(keep_if_in_sql, line)
    if ": " in line:
        head, _, tail = line.partition(": ")
        if tail.strip().lower() not in lowered:
            line = f"{head}: …"
    return line


def safe_error(exc: BaseException, sql: str) -> str:
    """A failed query's message without data: its first line, redacted, and the SQLSTATE
    (PostgreSQL) or error name (SQLite)."""
    diag = getattr(exc, "diag", None)
    text = (getattr(diag, "message_primary", None) or str(exc) or "").strip()
    line = _redact(text.splitlines()[0] if text else type(exc).__name__, sql)[:200]
    code = getattr(diag, "sqlstate", None) or getattr(exc, "sqlite_errorname", None)
    return f"{line} ({code})" if code else line


# --- results stored before checks were confined ---------------------------------
_OLD_NON_NUMBER = re.compile(r"^the query returned .*, not a number$", re.S)
_FAILED = "the query failed: "
_LOG_LINE = re.compile(
    r"^(\d\d:\d\d:\d\d check .*?: (?:passed|failed|could_not_verify) \()(.*)\)$", re.M
)


def scrub_detail(detail: str, sql: str = "") -> str:
    """A stored detail without the value an old non-number result or error message showed."""
    if _OLD_NON_NUMBER.match(detail):
        return NON_NUMBER
    if detail.startswith(_FAILED):
        return _FAILED + _redact(detail[len(_FAILED) :], sql)
    return detail


def scrub_stored(check: dict) -> dict:
    """A stored check result as it would be stored now: numbers only, messages redacted."""
    check = dict(check)
    for key in ("observed", "previous"):
        check[key] = _plain(_stored_number(check.get(key)))
    check["detail"] = scrub_detail(str(check.get("detail") or ""), str(check.get("sql") or ""))
    return check


def scrub_log(log_text: str) -> str:
    """Run logs: the "check NAME: OUTCOME (DETAIL)" lines with their detail scrubbed."""
    return _LOG_LINE.sub(lambda m: f"{m.group(1)}{scrub_detail(m.group(2))})", log_text)


def run_checks(
    query: Callable[[str], object],
    checks: Iterable[dict],
    previous: dict[str, object] | None = None,
) -> list[CheckResult]:
    """Run each {name, sql, expect} with `query(sql) -> first value`; never raises for a check.

    SQL is re-validated here: a check that reached the catalog some other way than the
    forms and dr_apply (the database itself) is refused rather than run.
    """
    previous = previous or {}
    results = []
    for position, check in enumerate(checks, 1):
        name = (check.get("name") or "").strip() or f"check {position}"
        text = (check.get("sql") or "").strip()
        expect = (check.get("expect") or "").strip()
        prev = _plain(_stored_number(previous.get(name)))
        refused = check_sql.problem(text)
        if refused:
            results.append(
                CheckResult(name, text, expect, None, Outcome.COULD_NOT_VERIFY, refused, prev)
            )
            continue
        try:
            observed = query(text.rstrip(";").strip())
        except Exception as exc:  # a check that errors is evidence of nothing, not a crash
            results.append(
                CheckResult(
                    name,
                    text,
                    expect,
                    None,
                    Outcome.COULD_NOT_VERIFY,
                    f"the query failed: {safe_error(exc, text)}",
                    prev,
                )
            )
            continue
        outcome, detail = evaluate(expect, observed, prev)
        results.append(CheckResult(name, text, expect, _plain(observed), outcome, detail, prev))
    return results


# --- query functions for the two kinds of SQL databases -------------------------


def pg_query(conn, statement_timeout_ms: int = 300_000):
    """A query function on a psycopg connection: read-only, time-limited, first value.

    The connection should be the confined check role's (see check_role). The statement
    goes through the extended protocol (prepare=True), which carries exactly one
    statement: "SELECT 1; COMMIT; COPY ..." is refused by the server itself.
    """

    def query(text: str):
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
            row = conn.execute(text, prepare=True).fetchone()
            return row[0] if row else None

    return query


# What a SQLite check may do: read tables and call ordinary functions. Everything else
# (ATTACH, PRAGMA writes, schema changes, load_extension and other file-touching
# functions) is denied by the authorizer, whatever the validator let through.
_SQLITE_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}
_SQLITE_ALLOWED_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}


def _sqlite_authorizer(action, arg1, arg2, db_name, trigger):
    if action == sqlite3.SQLITE_FUNCTION:
        denied = (arg2 or "").lower() in _SQLITE_DENIED_FUNCTIONS
        return sqlite3.SQLITE_DENY if denied else sqlite3.SQLITE_OK
    return sqlite3.SQLITE_OK if action in _SQLITE_ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def open_sqlite_confined(path: str) -> sqlite3.Connection:
    """Open a restored SQLite file for checks: read-only, query_only, no extensions, no ATTACH."""
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    if hasattr(conn, "enable_load_extension"):  # absent when Python was built without it
        conn.enable_load_extension(False)
    conn.execute("PRAGMA query_only = ON")
    conn.set_authorizer(_sqlite_authorizer)
    return conn


def sqlite_query(conn, timeout_s: float = 300):
    """A query function on a SQLite connection; pass one from open_sqlite_confined.

    execute() refuses more than one statement ("You can only execute one statement"), and
    a query still running after `timeout_s` is interrupted (SQLite has no statement
    timeout: an endless recursive CTE would hold the worker).
    """

    def query(text: str):
        deadline = time.monotonic() + timeout_s
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            row = conn.execute(text).fetchone()
        finally:
            conn.set_progress_handler(None, 0)
        return row[0] if row else None

    return query
