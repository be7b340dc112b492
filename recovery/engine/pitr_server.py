"""A restored PostgreSQL data directory as a server: the overrides that keep it private and
quiet, starting it with its own major version's binaries, waiting for the end of
recovery, and stopping it whatever state it is in.

Everything that touches the data directory runs as the directory's owner (PostgreSQL
refuses to run as root), through the pgBackRest runner's `execute`.
"""

import os
import pwd
import re
import shutil
import signal
import time

import psycopg

from backups.engine.errors import PgBackRestError
from backups.engine.pgbackrest_run import clean, execute

SOCKET_PATH_MAX = 107  # sun_path, less the terminating NUL
NOT_REACHED = "recovery ended before configured recovery target was reached"
OVERRIDES_BEGIN = "# --- DR Portal restore overrides (remove this block to put the copy in service)"
OVERRIDES_END = "# --- end of DR Portal restore overrides"
HBA_NAME = "dr_portal_restore_hba.conf"


class RestoreServerError(PgBackRestError):
    """The restored server could not be prepared, started or stopped."""


def owner_of(path: str) -> str:
    """The OS user owning `path`; "" when it is ourselves (nothing to switch to)."""
    uid = os.stat(path).st_uid
    if uid == os.geteuid():
        return ""
    return pwd.getpwuid(uid).pw_name


def version_of(data_dir: str) -> str:
    try:
        with open(os.path.join(data_dir, "PG_VERSION")) as fh:
            return fh.read().strip()
    except OSError:
        raise RestoreServerError(f"{data_dir} holds no PG_VERSION: not a data directory") from None


def bin_dir(version: str, preferred: str = "") -> str:
    """The server binaries of `version`: Debian's versioned directory, else `preferred`."""
    for candidate in (f"/usr/lib/postgresql/{version}/bin", preferred):
        if candidate and os.path.isfile(os.path.join(candidate, "pg_ctl")):
            return candidate
    raise RestoreServerError(
        f"the restored data directory is PostgreSQL {version}, whose server binaries were "
        f"not found: install postgresql-{version} (or set the source's binaries directory)"
    )


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def write_overrides(data_dir: str, *, port: int, socket_dir: str, settings: dict) -> None:
    """Append the block that keeps a restored copy from archiving into the source's
    repository (archive_mode off, no archive_command or library) and from being reached
    by anyone but its OS user and root: no TCP, a socket in a 0700 directory, and an hba
    file of our own trusting that socket. postgresql.auto.conf is read last, so it wins."""
    version = int(version_of(data_dir).split(".")[0])
    lines = {
        "archive_mode": "off",
        "archive_command": "",
        "port": str(port),
        "listen_addresses": "",
        "unix_socket_directories": socket_dir,
        "unix_socket_permissions": "0700",
        "hba_file": os.path.join(data_dir, HBA_NAME),
        "logging_collector": "off",  # the server log goes where pg_ctl -l says
        "hot_standby": "off",  # no connections mid-replay; no max_connections checks
        **settings,
    }
    if version >= 15:
        lines["archive_library"] = ""
    body = "\n".join(f"{k} = {quote(str(v))}" for k, v in lines.items())
    uid_gid = _ids(data_dir)
    _append(
        os.path.join(data_dir, "postgresql.auto.conf"),
        f"\n{OVERRIDES_BEGIN}\n{body}\n{OVERRIDES_END}\n",
        uid_gid,
    )
    _write(os.path.join(data_dir, HBA_NAME), "local all all trust\n", uid_gid)
    conf = os.path.join(data_dir, "postgresql.conf")
    if not os.path.exists(conf):  # Debian keeps it in /etc: the restored copy has none
        _write(conf, "# the source's postgresql.conf was outside its data directory\n", uid_gid)


IN_SERVICE_BEGIN = "# --- DR Portal: restored to a point, settings for service"
IN_SERVICE_END = "# --- end of DR Portal service settings"


def put_in_service(data_dir: str, *, port: int, settings: dict) -> list[str]:
    """Replace the private restore overrides by the settings the copy runs with from now
    on: its port, plus `settings` (a copy beside its source keeps archive_mode off, so it
    never archives into the source's repository). The server must be stopped. Returns notes
    on what was changed besides (a pg_hba.conf written when the source kept it outside)."""
    path = os.path.join(data_dir, "postgresql.auto.conf")
    with open(path) as fh:
        text = fh.read()
    for begin, end in ((OVERRIDES_BEGIN, OVERRIDES_END), (IN_SERVICE_BEGIN, IN_SERVICE_END)):
        text = re.sub(rf"\n?{re.escape(begin)}\n.*?{re.escape(end)}\n", "\n", text, flags=re.S)
    body = "\n".join(f"{k} = {quote(str(v))}" for k, v in {"port": port, **settings}.items())
    ids = _ids(data_dir)
    _write(path, f"{text.rstrip()}\n{IN_SERVICE_BEGIN}\n{body}\n{IN_SERVICE_END}\n", ids)
    notes = []
    try:
        os.unlink(os.path.join(data_dir, HBA_NAME))
    except FileNotFoundError:
        pass
    if not os.path.exists(os.path.join(data_dir, "pg_hba.conf")):
        # Debian keeps pg_hba.conf in /etc: without one the server would not start.
        _write(os.path.join(data_dir, "pg_hba.conf"), "local all all peer\n", ids)
        notes.append(
            "the source's pg_hba.conf was outside its data directory: the copy got one "
            "allowing local peer logins only (edit it before giving others access)"
        )
    return notes


def start_in_service(data_dir: str, log_path: str, preferred_bin: str = "") -> None:
    """Start the copy with its service settings and wait until it accepts connections."""
    code, text = pg_ctl(
        data_dir,
        "start",
        "-w",
        "-t",
        "120",
        "-s",
        "-l",
        log_path,
        preferred_bin=preferred_bin,
        timeout=180,
    )
    if code != 0:
        raise RestoreServerError(
            f"pg_ctl could not start the restored server: {text}; its log ends:\n"
            + log_tail(log_path, [])
        )


def drop_recovery_target(data_dir: str) -> None:
    """Comment out recovery_target_* so a restart replays to the end of the archive."""
    path = os.path.join(data_dir, "postgresql.auto.conf")
    with open(path) as fh:
        text = fh.read()
    text = re.sub(r"(?m)^(recovery_target\w*\s*=)", r"# \1", text)
    _write(path, text, _ids(data_dir))


def _ids(data_dir: str) -> tuple[int, int]:
    st = os.stat(data_dir)
    return st.st_uid, st.st_gid


def _append(path: str, text: str, ids) -> None:
    with open(path, "a") as fh:
        fh.write(text)
    os.chown(path, *ids)


def _write(path: str, text: str, ids) -> None:
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
    os.chown(path, *ids)


def pg_ctl(
    data_dir: str, *args: str, preferred_bin: str = "", timeout: float = 120
) -> tuple[int, str]:
    tool = os.path.join(bin_dir(version_of(data_dir), preferred_bin), "pg_ctl")
    code, out, err = execute(
        [tool, *args, "-D", data_dir], os_user=owner_of(data_dir), timeout=timeout, kill_group=False
    )
    return code, (out + err).strip()


def start(data_dir: str, log_path: str, preferred_bin: str = "") -> None:
    """Start without waiting (-W): the caller waits for the end of recovery itself."""
    code, text = pg_ctl(data_dir, "start", "-W", "-s", "-l", log_path, preferred_bin=preferred_bin)
    if code != 0:
        raise RestoreServerError(f"pg_ctl could not start the restored server: {text}")


def postmaster_pid(data_dir: str) -> int | None:
    """The pid in postmaster.pid when that process is alive."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as fh:
            pid = int(fh.readline().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def wait_for_postmaster(data_dir: str, log_path: str, offset: int, within: float = 30) -> None:
    """pg_ctl -W returns before postmaster.pid exists: wait until it does, or until the log
    (past `offset`, where this start began writing) shows the server already gave up."""
    deadline = time.monotonic() + within
    while postmaster_pid(data_dir) is None:
        said = _log_since(log_path, offset)
        if "database system is shut down" in said or "FATAL:" in said:
            if postmaster_pid(data_dir) is None:
                return  # the caller finds it dead and reports the log
        if time.monotonic() > deadline:
            raise RestoreServerError(
                f"the restored server did not start within {within:.0f} s; its log ends:\n"
                + log_tail(log_path, [], offset)
            )
        time.sleep(0.1)


def log_size(log_path: str) -> int:
    try:
        return os.path.getsize(log_path)
    except OSError:
        return 0


def _log_since(log_path: str, offset: int) -> str:
    try:
        with open(log_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def socket_dir_of(data_dir: str) -> str:
    """The socket directory a (running or crashed) server recorded in postmaster.pid."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return ""
    return lines[4].strip() if len(lines) > 4 else ""


def stop(data_dir: str, preferred_bin: str = "") -> None:
    """Stop the server on `data_dir` now: fast, then immediate, then SIGKILL."""
    if postmaster_pid(data_dir) is None:
        return
    for mode in ("fast", "immediate"):
        try:
            pg_ctl(
                data_dir,
                "stop",
                "-m",
                mode,
                "-w",
                "-t",
                "30",
                preferred_bin=preferred_bin,
                timeout=45,
            )
        except PgBackRestError:
            pass
        if postmaster_pid(data_dir) is None:
            return
    pid = postmaster_pid(data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)  # the children notice the postmaster is gone and exit
        deadline = time.monotonic() + 10
        while postmaster_pid(data_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.1)


def log_tail(log_path: str, secrets: list[str], offset: int = 0, lines: int = 15) -> str:
    text = _log_since(log_path, offset)[-20000:]
    if not text:
        return "(the server log is empty)"
    return "\n".join(clean(text, secrets).strip().splitlines()[-lines:])


def connect(socket_dir: str, port: int, user: str, dbname: str = "template1"):
    return psycopg.connect(
        host=socket_dir, port=port, user=user, dbname=dbname, autocommit=True, connect_timeout=5
    )


def promoted(socket_dir: str, port: int, user: str):
    """(True, last replayed commit time) once out of recovery; (False, None) before."""
    try:
        with connect(socket_dir, port, user) as conn:
            in_recovery, replayed = conn.execute(
                "SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()"
            ).fetchone()
    except psycopg.OperationalError:
        return False, None
    return (not in_recovery), replayed


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        raise RestoreServerError(f"could not remove {path}")
