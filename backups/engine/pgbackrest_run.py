"""The one way the portal runs pgBackRest (and the server tools next to it).

An argument list (no shell), `--config` and `--stanza` first, run as the cluster's OS user
when we are root, in its own session (a timeout or a cancel kills the whole group, and a
killed worker takes it along through setpriv's parent-death signal). Failures become
PgBackRestError with a first line in plain words and pgBackRest's own lines after it,
with every secret the stanza holds masked.
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from dr_portal.lib.redact import redact

from .errors import Cancelled, PgBackRestError
from .pgbackrest_conf import archive_command_for, conf_quote, secret_env
from .pgbackrest_types import Stanza

PGBACKREST = "pgbackrest"
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
POLL_S = 0.2
_ERROR_LINE = re.compile(r"^(?:[\d-]+ [\d:.]+ P\d+\s+)?ERROR: \[(\d+)\]: (.*)$")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\t]")


def secrets_of(stanza: Stanza) -> list[str]:
    values = [stanza.cipher_pass]
    for repo in stanza.repos:
        values += [repo.secret_access_key, repo.access_key_id]
    return [v for v in values if v]


def clean(text: str, secrets: Sequence[str]) -> str:
    """Mask secrets; drop the binary junk pgBackRest quotes from an undecryptable file."""
    lines = []
    for line in redact(text, secrets=list(secrets)).splitlines():
        if "found outside of section" in line:
            line = line.split(" at line ")[0] + " (file not readable as text)"
        lines.append(_UNPRINTABLE.sub("?", line))
    return "\n".join(lines)


def user_kwargs(os_user: str) -> dict:
    """Popen arguments that run the child as `os_user` (only possible, and needed, as root)."""
    if not os_user:
        return {}
    try:
        entry = pwd.getpwnam(os_user)
    except KeyError:
        raise PgBackRestError(f"OS user {os_user!r} does not exist on this host") from None
    if os.geteuid() == 0:
        groups = os.getgrouplist(os_user, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}
    if os.geteuid() != entry.pw_uid:
        raise PgBackRestError(
            f"pgBackRest must run as {os_user!r} (the data directory's owner), but the portal "
            f"runs as {pwd.getpwuid(os.geteuid()).pw_name!r}: run the worker as root or as "
            f"{os_user!r}"
        )
    return {}


def child_env() -> dict:
    """A small environment: no PGBACKREST_* option can slip in, no portal secret goes out."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}


def execute(
    argv: Sequence[str],
    *,
    os_user: str = "",
    timeout: float | None = None,
    cancel: threading.Event | None = None,
    on_line: Callable[[str], None] | None = None,
    env: dict | None = None,
    kill_group: bool = True,
    keep_lines: int | None = None,
) -> tuple[int, str, str]:
    """Run argv; return (exit code, stdout, stderr). Raises Cancelled or PgBackRestError on
    a cancel or a timeout, after killing the child's process group. `kill_group=False`
    leaves the group alone after a normal exit (pg_ctl's server must outlive it);
    `keep_lines` keeps only that many last lines of stdout (a backup's per-file lines)."""
    name = os.path.basename(argv[0])
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
            DIE_WITH_PARENT + list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env or child_env(),
            cwd="/",
            start_new_session=True,
            **user_kwargs(os_user),
        )
        out = deque(maxlen=keep_lines) if keep_lines else []
        reader = threading.Thread(target=_read_lines, args=(proc.stdout, out, on_line))
        reader.start()
        code = None
        try:
            code = _wait(proc, name, timeout, cancel)
        finally:
            if kill_group or code is None:
                stop_group(proc)
            reader.join(timeout=10)
        err.seek(0)
        return code, "".join(out), err.read()[-20000:].decode("utf-8", "replace")


def _read_lines(stream, out, on_line) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        out.append(line)
        if on_line is not None:
            try:
                on_line(line.rstrip("\n"))
            except Exception:  # noqa: BLE001, S110 - a progress callback never breaks the run
                pass
    stream.close()


def _wait(proc, name: str, timeout: float | None, cancel: threading.Event | None) -> int:
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        try:
            return proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"{name} cancelled") from None
            if deadline and time.monotonic() > deadline:
                raise PgBackRestError(f"{name} did not finish within {timeout:.0f} s") from None


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's group (pgBackRest then releases its locks), SIGKILL what stays."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
            if sig == signal.SIGTERM:
                continue  # the leader is gone; SIGKILL sweeps any straggler in its group
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.wait()


def run(
    stanza: Stanza,
    command: str,
    *args: str,
    options: Sequence[str] = (),
    timeout: float | None = 600,
    cancel: threading.Event | None = None,
    on_line: Callable[[str], None] | None = None,
    config: str = "",
    keep_lines: int | None = None,
) -> str:
    """Run `pgbackrest --config=… --stanza=… [options] command [args]`; return stdout."""
    from_conf = config or os.path.join(stanza.config_dir, f"{stanza.name}.conf")
    argv = [PGBACKREST, f"--config={from_conf}", f"--stanza={stanza.name}", *options, command]
    code, out, err = execute(
        [*argv, *args],
        os_user=stanza.os_user,
        timeout=timeout,
        cancel=cancel,
        on_line=on_line,
        env={**child_env(), **secret_env(stanza)},
        keep_lines=keep_lines,
    )
    if code != 0:
        raise PgBackRestError(explain(stanza, command, code, err or out))
    return out


def explain(stanza: Stanza, command: str, code: int, text: str) -> str:
    """The first line in plain words, then pgBackRest's own error lines (cleaned)."""
    detail = clean(text, secrets_of(stanza)).strip()
    lines = detail.splitlines()
    first = next((i for i, line in enumerate(lines) if _ERROR_LINE.match(line)), None)
    if first is not None:
        error_code = _ERROR_LINE.match(lines[first]).group(1)
        detail = "\n".join([_ERROR_LINE.match(lines[first]).group(2), *lines[first + 1 :]])
    else:
        error_code = ""
        detail = "\n".join(lines[-8:])
    plain = plain_words(stanza, error_code, detail) or f"pgBackRest {command} failed ({code})"
    tail = "\n".join(line.strip() for line in detail.splitlines()[:12])
    return f"{plain}\npgBackRest said: {tail}" if tail else plain


CIPHER_MISMATCH = (
    "the repository's encryption passphrase does not match — was the key ring changed?"
)


def plain_words(stanza: Stanza, code: str, detail: str) -> str:  # noqa: C901 - one table
    """The common failures, said so an operator knows what to change; "" when unknown."""
    text = detail.lower()
    conf_line = f"archive_command = {conf_quote(archive_command_for(stanza))}"
    if "archive_mode must be enabled" in text:
        return (
            "archive_mode is off on the PostgreSQL server: add `archive_mode = on` to "
            "postgresql.conf and restart PostgreSQL"
        )
    if "archive_command" in text and "must contain" in text:
        return (
            "archive_command is not set to pgBackRest: add "
            f"`{conf_line}` to postgresql.conf and reload PostgreSQL"
        )
    if code == "082" or "was not archived before" in text:
        return (
            "WAL was not archived in time: PostgreSQL's archive_command fails or is slow — "
            f"check `{conf_line}` in postgresql.conf and the PostgreSQL server log"
        )
    if (
        "cryptoerror" in text
        or "is or was the repo encrypted" in text
        or ("found outside of section" in text)
    ):
        if not stanza.cipher_pass:
            return "the repository is encrypted but no passphrase is configured for it"
        return CIPHER_MISMATCH
    if code == "050" or "unable to acquire lock" in text:
        return f"another pgBackRest backup or expire of stanza {stanza.name} is already running"
    if code == "028" or "do not match the database" in text or "system-id" in text:
        return (
            f"the repository's stanza {stanza.name} belongs to a different PostgreSQL cluster "
            "(its system identifier or version differs)"
        )
    if "missing stanza path" in text or (
        "has a stanza-create been performed" in text and "filemissingerror" in text
    ):
        return (
            f"stanza {stanza.name} does not exist in the repository yet: run stanza-create "
            "(manage.py pitr_setup)"
        )
    if code in ("039", "049") or any(
        s in text for s in ("hostconnecterror", "unable to get address", "http request failed")
    ):
        return "the repository could not be reached (network, endpoint or credentials)"
    if "permission denied" in text or "unable to list file info for missing path" in text:
        return (
            "the repository or configuration directory is missing or not writable by OS user "
            f"{stanza.os_user or 'running the portal'}"
        )
    if code == "056" or "unable to connect to" in text or "unable to find primary" in text:
        return f"PostgreSQL could not be reached on port {stanza.pg_port}" + (
            f" through socket directory {stanza.pg_socket_dir}" if stanza.pg_socket_dir else ""
        )
    if "no backup set found" in text or "unable to find backup set" in text:
        return f"the repository holds no backup of stanza {stanza.name} to restore from that point"
    if code == "055" and "archive.info" in text:
        return "the repository holds no archive for this stanza: run stanza-create"
    return ""
