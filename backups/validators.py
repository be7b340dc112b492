"""Validation shared by models, forms and dr_apply: cron, time zones, verification checks."""

import re
import zoneinfo
from datetime import UTC, datetime

from croniter import croniter
from django.core.exceptions import ValidationError

from dr_portal.lib import check_sql, outbound
from dr_portal.lib.text import has_control_chars


def validate_cron(value: str):
    """Five-field cron ("m h dom mon dow"); croniter's six-field seconds form is refused."""
    value = (value or "").strip()
    if len(value.split()) != 5:
        raise ValidationError(
            f'"{value}" is not a cron expression: give five fields, minute hour day month weekday '
            '(for example "0 2 * * *").'
        )
    if not croniter.is_valid(value):
        raise ValidationError(f'"{value}" is not a valid cron expression.')


def validate_timezone(value: str):
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(
            f'"{value}" is not a known time zone (use an IANA name such as UTC or Europe/Berlin).'
        ) from None


def next_fire(cron: str, tz: str, after: datetime) -> datetime:
    """The next time `cron` fires, read as wall-clock time in `tz`; returned as an aware datetime.

    Computed on naive wall-clock times, then placed in the zone: a wall time that happens
    twice (the fall-back hour) fires once, at its first occurrence; one that does not exist
    (spring forward) fires at the same distance past the gap. croniter on aware times
    fires `30 2 * * *` twice on a fall-back day.
    """
    zone = zoneinfo.ZoneInfo(tz or "UTC")
    wall = after.astimezone(zone).replace(tzinfo=None)
    slots = croniter(cron, wall)
    for _ in range(100):  # a repeated wall time may already be past: take the next slot
        candidate = slots.get_next(datetime).replace(tzinfo=zone)  # fold=0: first occurrence
        candidate = candidate.astimezone(UTC).astimezone(zone)  # normalise a skipped time
        if candidate > after:
            return candidate
    raise ValueError(f"cron {cron!r} has no next fire time")


# --- verification checks --------------------------------------------------
# Kept in step with recovery.engine.checks, which evaluates them on restored data.
_COMPARE = re.compile(r"^\s*(>=|<=|!=|==|=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_RELATIVE = re.compile(
    r"^\s*not\s+below\s+(\d+(?:\.\d+)?)\s*%\s*(?:of\s+(?:the\s+)?previous(?:\s+test)?)?\s*$",
    re.I,
)
EXPECT_HELP = '"> 0", ">= N", "= N", "!= N", "<= N", "< N" or "not below X% of previous"'


def parse_expect(text: str) -> tuple[str, float]:
    """("op", number) for a comparison, ("pct_of_previous", X) for the relative form.

    The recovery app evaluates checks; this is the one grammar both sides use.
    """
    text = str(text or "")
    match = _COMPARE.match(text)
    if match:
        op = "=" if match.group(1) == "==" else match.group(1)
        return op, float(match.group(2))
    match = _RELATIVE.match(text)
    if match:
        pct = float(match.group(1))
        if pct > 100:
            raise ValueError("a percentage above 100 can never hold for a shrinking check")
        return "pct_of_previous", pct
    raise ValueError(f'"{text}" is not an expectation; use {EXPECT_HELP}')


def expectation_holds(expect: str, value, previous=None) -> bool:
    """Evaluate one expectation against a query result (and the previous result, if relative)."""
    op, number = parse_expect(expect)
    value = float(value)
    if op == "pct_of_previous":
        if previous is None:
            return True  # nothing to compare against yet
        return value >= float(previous) * number / 100
    return {
        ">": value > number,
        ">=": value >= number,
        "<": value < number,
        "<=": value <= number,
        "=": value == number,
        "!=": value != number,
    }[op]


# The portal's own database is checked by the portal: counts of its own tables, the same
# on SQLite and PostgreSQL. They are not editable (a check is SQL run on a copy of the
# portal's sessions and password hashes), so form, admin and dr_apply refuse any other.
PORTAL_DB_CHECKS = [
    {"name": "migrations", "sql": "SELECT count(*) FROM django_migrations", "expect": "> 0"},
    {"name": "sources", "sql": "SELECT count(*) FROM backups_source", "expect": ">= 1"},
    {
        "name": "backup runs",
        "sql": "SELECT count(*) FROM backups_backuprun",
        "expect": "not below 50% of previous",
    },
    {
        "name": "users",
        "sql": "SELECT count(*) FROM auth_user",
        "expect": "not below 50% of previous",
    },
]
PORTAL_DB_CHECKS_FIXED = (
    "The portal's own database has fixed verification checks (counts of its own tables); "
    "they cannot be changed. Leave the checks empty."
)


def _sql_and_expect_problems(check: dict, where: str) -> list[str]:
    """The check's sql (present, short enough, read-only) and its expectation."""
    sql = str(check.get("sql") or "").strip()
    if len(sql) > MAX_CHECK_SQL or len(str(check.get("expect") or "")) > MAX_EXPECT:
        return [f"{where}: sql is limited to {MAX_CHECK_SQL:,} characters, expect to {MAX_EXPECT}"]
    problems = []
    if not sql:
        problems.append(f"{where}: sql is missing")
    else:
        refused = check_sql.problem(sql)
        if refused:
            problems.append(f"{where}: {refused}")
    try:
        parse_expect(check.get("expect"))
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
    return problems


def _check_problems(i: int, check, names: set) -> list[str]:
    """The problems of the i-th check (0-based); its name joins `names`."""
    where = f"check {i + 1}"
    if not isinstance(check, dict):
        return [f"{where}: must be a mapping with sql and expect"]
    problems = []
    unknown = set(check) - {"name", "sql", "expect"}
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    name = str(check.get("name") or "").strip()
    if len(name) > MAX_CHECK_NAME or has_control_chars(name):
        problems.append(f"{where}: name must be one line of at most {MAX_CHECK_NAME} characters")
        return problems
    if name:
        where = f'check {i + 1} "{name}"'
        if name in names:
            problems.append(f"{where}: duplicate name")
        names.add(name)
    return problems + _sql_and_expect_problems(check, where)


def check_problems(checks) -> list[str]:
    """Every problem in a list of {name, sql, expect}; each message names its place."""
    if checks in (None, ""):
        return []
    if not isinstance(checks, list):
        return ["verification checks must be a list of {name, sql, expect}"]
    if len(checks) > MAX_CHECKS:
        return [f"at most {MAX_CHECKS} verification checks per source"]
    names: set[str] = set()
    return [p for i, check in enumerate(checks) for p in _check_problems(i, check, names)]


def normalise_checks(checks) -> list[dict]:
    """Give every check a name (check-1, ...) and strip whitespace; assumes it is valid."""
    out = []
    for i, check in enumerate(checks or []):
        out.append(
            {
                "name": str(check.get("name") or f"check-{i + 1}").strip(),
                "sql": str(check["sql"]).strip().rstrip(";").strip(),
                "expect": str(check["expect"]).strip(),
            }
        )
    return out


def validate_checks(checks):
    problems = check_problems(checks)
    if problems:
        raise ValidationError(problems)


def validate_excludes(patterns):
    if patterns in (None, ""):
        return
    if not isinstance(patterns, list) or not all(
        isinstance(p, str) and p.strip() for p in patterns
    ):
        raise ValidationError("Exclude patterns must be a list of non-empty glob strings.")
    if len(patterns) > MAX_EXCLUDES:
        raise ValidationError(f"At most {MAX_EXCLUDES} exclude patterns.")
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN or has_control_chars(pattern):
            raise ValidationError(
                f"An exclude pattern is one line of at most {MAX_PATTERN} characters."
            )


# --- lengths, ranges and single-line text -------------------------------------
def validate_port(value):
    if value is not None and not 1 <= value <= 65535:
        raise ValidationError(f"{value} is not a TCP port (1 to 65535).")


MAX_EXCLUDES = 200
MAX_PATTERN = 500
MAX_CHECKS = 50
MAX_CHECK_SQL = check_sql.MAX_LENGTH
MAX_CHECK_NAME = 100
MAX_EXPECT = 100


# --- URLs the server will call (pings, hooks) ---------------------------------
MAX_URL = 500


def validate_outbound_url(value: str):
    """An http(s) URL the outbound guard will accept (checked again when it is called)."""
    if not value:
        return
    if len(value) > MAX_URL or has_control_chars(value) or " " in value:
        raise ValidationError(f"A URL is one line of at most {MAX_URL} characters, no spaces.")
    why = outbound.obvious_refusal(value)
    if why:
        raise ValidationError(why[0].upper() + why[1:] + ".")


MAX_ARGV = 50
MAX_ARG = 1000


def validate_hook_command(argv):
    """A command hook's argv: a list of strings, the program an absolute path (no shell runs
    it, and no PATH lookup decides which program that is)."""
    if argv in (None, []):
        return
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValidationError(
            'Give the command as a JSON list of strings, e.g. ["/usr/local/bin/quiesce", "--app", "toolhub"].'
        )
    if len(argv) > MAX_ARGV or any(len(a) > MAX_ARG or "\x00" in a for a in argv):
        raise ValidationError(f"At most {MAX_ARGV} arguments of at most {MAX_ARG} characters each.")
    if not argv[0].startswith("/"):
        raise ValidationError(
            f"The program must be an absolute path (not {argv[0][:100]!r}): no shell and no PATH lookup run it."
        )


# Columns whose values a table preview never shows (recovery.preview): a column name, or
# table.column, or schema.table.column, with * and ? wildcards, matched ignoring case.
DEFAULT_MASKED_COLUMNS = ["*password*", "*passwd*", "*token*", "*secret*", "*ssn*", "*email*"]
MASK_PATTERN = re.compile(r"^[A-Za-z0-9_$*?]+(\.[A-Za-z0-9_$*?]+){0,2}$")
MAX_MASKS = 200


def default_masked_columns() -> list[str]:
    return list(DEFAULT_MASKED_COLUMNS)


def validate_masked_columns(patterns):
    if patterns in (None, ""):
        return
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ValidationError("Masked columns must be a list of column patterns.")
    if len(patterns) > MAX_MASKS:
        raise ValidationError(f"At most {MAX_MASKS} masked column patterns.")
    for pattern in patterns:
        if len(pattern) > 200 or not MASK_PATTERN.match(pattern):
            raise ValidationError(
                f"{pattern[:60]!r} is not a column pattern: column, table.column or "
                "schema.table.column (letters, digits, _, $ and the wildcards * ?)."
            )
