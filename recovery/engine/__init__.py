"""The restore engine: plain Python, no Django.

It restores standard artifacts (a `pg_dump` custom archive, a SQLite file, a tar)
into scratch places or real targets, evaluates verification checks and reads or
writes heartbeats. Fetching and decrypting the stored artifact is the backups
engine's job (`backups.engine.unpack_artifact`); this package starts from the
verified plain file.
"""

from recovery.engine.checks import (
    CheckResult,
    Expectation,
    ExpectationError,
    Outcome,
    evaluate,
    parse_expectation,
    run_checks,
)
from recovery.engine.pg import PgServer, RestoreError

__all__ = [
    "CheckResult",
    "Expectation",
    "ExpectationError",
    "Outcome",
    "PgServer",
    "RestoreError",
    "evaluate",
    "parse_expectation",
    "run_checks",
]
