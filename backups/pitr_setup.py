"""`manage.py pitr_setup` and the source page's "Check archiving" button: one code path.

Print the postgresql.conf lines, write the pgBackRest configuration, compare the lines with
what the running server has in effect, and only when they match run stanza-create and
check, which archives a WAL segment and reads it back. The stanza holds the repository
passphrase: nothing here logs it or puts it in a message.
"""

from dataclasses import asdict, dataclass, field

import psycopg
from django.utils import timezone

from backups.engine import pgbackrest
from backups.engine.errors import PgBackRestError
from backups.models import Source
from dr_portal.lib import keyring
from dr_portal.lib.redact import redact

CONNECT_TIMEOUT = 10
SETTINGS = ("archive_mode", "archive_command", "archive_timeout", "wal_level")


@dataclass
class SetupResult:
    """What pitr_setup found; `ok` only when a WAL segment was archived and read back."""

    source: str
    ok: bool = False
    lines: list[str] = field(default_factory=list)
    config: str = ""
    problems: list[str] = field(default_factory=list)
    message: str = ""
    adopted: bool = False
    in_effect: list[str] = field(default_factory=list)  # an adopted stanza: the server's lines

    def as_dict(self) -> dict:
        return asdict(self)


def server_settings(source: Source) -> dict[str, tuple[str, bool]]:
    """{name: (value in effect, pending restart)} from pg_settings over the source's connection."""
    spec = source.to_spec()
    with psycopg.connect(
        host=spec.config["host"] or None,
        port=spec.config["port"],
        user=spec.config["user"] or None,
        password=spec.password or None,
        dbname=spec.config["database"] or "postgres",
        connect_timeout=CONNECT_TIMEOUT,
        autocommit=True,
        application_name="dr-portal pitr_setup",
    ) as conn:
        rows = conn.execute(
            "SELECT name, setting, pending_restart FROM pg_settings WHERE name = ANY(%s)",
            (list(SETTINGS),),
        ).fetchall()
    return {name: (value, pending) for name, value, pending in rows}


def differences(stanza: pgbackrest.Stanza, current: dict[str, tuple[str, bool]]) -> list[str]:
    """Each postgresql.conf line that is missing or differs on the running server, by name."""
    wanted_command = pgbackrest.archive_command(stanza)
    problems = []
    mode, mode_pending = current.get("archive_mode", ("", False))
    if mode not in ("on", "always"):
        problems.append(
            f"archive_mode is {mode or 'unknown'}, not on"
            + (" (changed in the file: restart PostgreSQL)" if mode_pending else "")
        )
    command = current.get("archive_command", ("", False))[0]
    if command != wanted_command:
        problems.append(
            "archive_command is not the line pitr_setup prints"
            + (f" (it is {command!r})" if command and "pgbackrest" not in command else "")
            + (
                " (the server has an older or other pgbackrest command)"
                if "pgbackrest" in command
                else ""
            )
        )
    timeout = current.get("archive_timeout", ("0", False))[0]
    if timeout != str(int(stanza.archive_timeout_s)):
        problems.append(f"archive_timeout is {timeout} s, not {int(stanza.archive_timeout_s)}")
    level = current.get("wal_level", ("", False))[0]
    if level not in ("replica", "logical"):
        problems.append(f"wal_level is {level or 'unknown'}, not replica")
    return problems


def run_setup(source: Source) -> SetupResult:
    """Everything pitr_setup does; never raises for what a DBA must fix (it is in `problems`)."""
    result = SetupResult(source=source.name)
    try:
        stanza = source.to_stanza()
    except (keyring.KeyRingError, ValueError) as exc:
        result.problems.append(str(exc))
        return result
    secrets = [
        stanza.cipher_pass,
        *(k for r in stanza.repos for k in (r.access_key_id, r.secret_access_key) if k),
    ]
    if not stanza.repos:
        result.problems.append(
            f"{source.name} names no repository: add its destinations to pitr_destinations "
            "(repo1 first)"
            if source.pitr_adopted
            else f"{source.name} has no enabled physical job: its destinations are the "
            "stanza's repositories, so add one first"
        )
        return result
    if source.pitr_adopted:
        return _check_adopted(source, stanza, result, secrets)
    try:
        result.lines = pgbackrest.postgresql_conf_lines(stanza)
        result.config = pgbackrest.ensure_config(stanza)
    except PgBackRestError as exc:
        result.problems.append(redact(str(exc), secrets))
        return result
    try:
        current = server_settings(source)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result.problems.append(f"cannot read the server's settings: {redact(first, secrets)}")
        return result
    result.problems = differences(stanza, current)
    if result.problems:
        return result
    try:
        pgbackrest.stanza_create(stanza)
        result.message = pgbackrest.check(stanza)
    except PgBackRestError as exc:
        result.problems.append(redact(str(exc), secrets))
        return result
    result.ok = result.message.startswith("WAL segment")
    if not result.ok:
        result.problems.append(
            f"no WAL segment was reported archived and read back ({result.message})"
        )
    return result


def adopted_differences(current: dict[str, tuple[str, bool]]) -> list[str]:
    """What an adopted stanza's server lacks for archiving; its archive_command is its own."""
    problems = []
    mode = current.get("archive_mode", ("", False))[0]
    if mode not in ("on", "always"):
        problems.append(f"archive_mode is {mode or 'unknown'}, not on")
    command = current.get("archive_command", ("", False))[0]
    if "pgbackrest" not in command or "archive-push" not in command:
        problems.append("archive_command does not push WAL with pgbackrest archive-push")
    level = current.get("wal_level", ("", False))[0]
    if level not in ("replica", "logical"):
        problems.append(f"wal_level is {level or 'unknown'}, not replica")
    return problems


def _check_adopted(source: Source, stanza, result: SetupResult, secrets) -> SetupResult:
    """Adopt mode: the portal's own configuration file, the lines in effect shown, and
    `check` only (it archives a WAL segment through the DBA's archive_command and reads it
    back); never stanza-create."""
    result.adopted = True
    try:
        result.config = pgbackrest.ensure_config(stanza)
        current = server_settings(source)
    except PgBackRestError as exc:
        result.problems.append(redact(str(exc), secrets))
        return result
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result.problems.append(f"cannot read the server's settings: {redact(first, secrets)}")
        return result
    result.in_effect = [f"{name} = {current[name][0]}" for name in SETTINGS if name in current]
    result.problems = adopted_differences(current)
    if result.problems:
        return result
    try:
        result.message = pgbackrest.check(stanza)
    except PgBackRestError as exc:
        result.problems.append(redact(str(exc), secrets))
        return result
    result.ok = result.message.startswith("WAL segment")
    if not result.ok:
        result.problems.append(
            f"no WAL segment was reported archived and read back ({result.message})"
        )
    return result


def summary(result: SetupResult) -> str:
    if result.ok:
        return result.message
    return "; ".join(result.problems) or "not checked"


def check_and_store(source_id: int) -> SetupResult | None:
    """The button's task: run the check and keep its outcome on the source."""
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return None
    result = run_setup(source)
    Source.objects.filter(pk=source_id).update(
        pitr_checked_at=timezone.now(),
        pitr_check_ok=result.ok,
        pitr_check_message=summary(result)[:2000],
    )
    return result
