"""Restore a pgBackRest stanza to a point in time, into an empty data directory.

`restore()` fetches the backup chain (`pgbackrest restore`), replays WAL up to `at`
(inclusive, then promotes) or to the end of the archive, and — with `start=True` — runs the
server until it is out of recovery, on a private socket, without archiving. `ScratchRestore`
does the same in a throwaway directory and removes it (server included) on every exit
path; `sweep()` removes what a killed worker left behind. Plain Python, no Django.
"""

import os
import re
import secrets as _secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from backups.engine import pgbackrest
from backups.engine.errors import Cancelled, PgBackRestError
from backups.engine.pgbackrest import Stanza
from backups.engine.pgbackrest_conf import check_path, make_dir, owner_ids
from backups.engine.pgbackrest_run import run, secrets_of
from recovery.engine import heartbeat
from recovery.engine import pitr_server as server

SCRATCH_PREFIX = "dr_pitr_"
SOCKET_PREFIX = "dr_pitr_sock_"
# dr_pitr_<epoch>_<hex>: the epoch lets sweep() tell a leftover from a restore in progress.
_SCRATCH_NAME = re.compile(rf"^{SCRATCH_PREFIX}(\d+)_[0-9a-f]+$")
_RESTORED_SET = re.compile(r"restore backup set (\S+?),")
DEFAULT_TIMEOUT_S = 6 * 3600
SCRATCH_SETTINGS = {"shared_buffers": "128MB", "max_wal_size": "1GB"}


class PitrError(PgBackRestError):
    """A point-in-time restore was refused or failed; the message says why, with no secret."""


@dataclass(frozen=True)
class RestoreResult:
    """What a restore reached, and how long each phase took."""

    target: datetime | None  # the point asked for; None: the end of the archive
    recovered_to: datetime | None  # the last replayed commit (None: not started, or none)
    label: str  # the backup set restored
    phases: dict[str, float]  # seconds: {"fetch": …, "replay": …}
    data_dir: str
    port: int
    socket_dir: str
    user: str = "postgres"  # the restored cluster's superuser, over the socket
    log_path: str = ""
    # The asked point lay past the last archived commit: PostgreSQL stopped short, and the
    # restore went on to the end of the archive (every archived commit ≤ target is there).
    replayed_to_end: bool = False
    pg_version: str = ""
    window: pgbackrest.Window | None = field(default=None, repr=False)

    def connect(self, dbname: str = "postgres"):
        return server.connect(self.socket_dir, self.port, self.user, dbname)


def _phase(on_phase, name: str) -> None:
    if on_phase is not None:
        on_phase(name)


def _check_target(stanza: Stanza, at: datetime | None, repo: int = 0) -> pgbackrest.Window | None:
    if at is None:
        return None
    if at.tzinfo is None:
        raise PitrError("the point to restore to needs a time zone (for example +00:00)")
    win = pgbackrest.window(stanza, repo=repo or 1)
    if win.error or win.oldest is None or win.newest is None:
        raise PitrError(
            f"stanza {stanza.name} has no recoverable window: {win.error or 'no backup yet'}"
        )
    if not win.oldest <= at <= win.newest:
        raise PitrError(
            f"{at.astimezone(UTC).isoformat()} is outside the recoverable window of stanza "
            f"{stanza.name}: {win.oldest.isoformat()} to {win.newest.isoformat()}"
            + (f" (WAL segment {win.missing_segment} is missing)" if win.missing_segment else "")
        )
    return win


def _prepare_dir(stanza: Stanza, data_dir: str, onto_source: bool) -> tuple[int, int] | None:
    """The target must be empty and not a running cluster's; create it for the OS user.
    `onto_source`: the caller moved the stopped source's directory aside, so its path is
    free to restore into."""
    check_path("restore data directory", data_dir)
    same = os.path.normpath(data_dir) == os.path.normpath(stanza.pg_data)
    if same and not onto_source:
        raise PitrError(
            f"{data_dir} is the source's own data directory: stop the server and move it aside "
            "first (the portal never restores over a live cluster)"
        )
    if server.postmaster_pid(data_dir) is not None:
        raise PitrError(f"{data_dir} belongs to a running PostgreSQL server")
    if os.path.exists(data_dir) and os.listdir(data_dir):
        raise PitrError(f"{data_dir} is not empty: restore into an empty or new directory")
    if not os.path.isdir(os.path.dirname(os.path.normpath(data_dir))):
        raise PitrError(f"the parent of {data_dir} does not exist")
    ids = owner_ids(stanza.os_user)
    make_dir(data_dir, ids, 0o700)
    os.chmod(data_dir, 0o700)
    return ids


def _prepare_socket_dir(socket_dir: str, port: int, ids) -> str:
    if not socket_dir:
        socket_dir = tempfile.mkdtemp(prefix=SOCKET_PREFIX)
    make_dir(socket_dir, ids, 0o700)
    os.chmod(socket_dir, 0o700)
    if len(os.path.join(socket_dir, f".s.PGSQL.{port}")) > server.SOCKET_PATH_MAX:
        raise PitrError(f"the socket directory {socket_dir} is too long a path for a socket")
    return socket_dir


def fetch(stanza: Stanza, data_dir: str, *, at, label, timeout_s, cancel, repo: int = 0) -> str:
    """`pgbackrest restore` into data_dir (from repository `repo`; 0: pgBackRest's choice,
    the first that has the backup); return the backup set it used."""
    options = [f"--pg1-path={data_dir}", "--archive-mode=off", "--log-level-console=info"]
    if repo:
        options.append(f"--repo={int(repo)}")
    if at is not None:
        target = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        options += ["--type=time", f"--target={target}", "--target-action=promote"]
    if label:
        options.append(f"--set={label}")
    if stanza.pg_host:
        options.append("--reset-pg1-host")  # the copy is restored here, not on the DB host
    out = run(stanza, "restore", options=options, timeout=timeout_s, cancel=cancel)
    match = _RESTORED_SET.search(out)
    return match.group(1) if match else (label or "")


def restore(
    stanza: Stanza,
    data_dir: str,
    *,
    at: datetime | None,
    port: int,
    label: str | None = None,
    start: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cancel: threading.Event | None = None,
    on_phase: Callable[[str], None] | None = None,
    socket_dir: str = "",
    settings: dict | None = None,
    onto_source: bool = False,
    repo: int = 0,
) -> RestoreResult:
    """Restore `stanza` into the empty `data_dir` up to `at` (None: the end of the archive).

    Refuses a point outside the recoverable window and a directory that is not empty. With
    `start`, the server is left running (on `socket_dir`, port `port`, no TCP) once it is
    out of recovery; stop it with `stop_and_remove()` or `pitr_server.stop()`. On failure
    a server this call started is stopped; the directory is left for inspection.
    """
    if not 1 <= int(port) <= 65535:
        raise PitrError(f"port {port} is not between 1 and 65535")
    deadline = time.monotonic() + timeout_s
    win = _check_target(stanza, at, repo)
    ids = _prepare_dir(stanza, data_dir, onto_source)
    _phase(on_phase, "fetch")
    began = time.monotonic()
    used = fetch(
        stanza, data_dir, at=at, label=label, timeout_s=timeout_s, cancel=cancel, repo=repo
    )
    phases = {"fetch": round(time.monotonic() - began, 3)}
    result = RestoreResult(
        target=at,
        recovered_to=None,
        label=used,
        phases=phases,
        data_dir=data_dir,
        port=int(port),
        socket_dir="",
        user=stanza.pg_user,
        log_path=os.path.join(data_dir, "log", "dr_pitr_startup.log"),
        pg_version=server.version_of(data_dir),
        window=win,
    )
    if not start:
        return result
    sock = _prepare_socket_dir(socket_dir, port, ids)
    server.write_overrides(data_dir, port=port, socket_dir=sock, settings=settings or {})
    make_dir(os.path.dirname(result.log_path), ids, 0o700)
    _phase(on_phase, "replay")
    began = time.monotonic()
    try:
        recovered, to_end = _replay(stanza, result, sock, at, deadline, cancel)
    except BaseException:
        server.stop(data_dir, stanza.pg_bin_dir)
        raise
    phases["replay"] = round(time.monotonic() - began, 3)
    return replace(result, recovered_to=recovered, socket_dir=sock, replayed_to_end=to_end)


def _replay(stanza, result, sock, at, deadline, cancel) -> tuple[datetime | None, bool]:
    """Start the server and wait until it is promoted. When PostgreSQL stops because the
    archive ended before `at`, replay to the end of the archive instead (the window said
    `at` was covered, so every archived commit up to it is there)."""
    data_dir, secrets = result.data_dir, secrets_of(stanza)
    to_end = False
    offset = _start(stanza, result)
    while True:
        done, replayed = server.promoted(sock, result.port, result.user)
        if done:
            return (replayed.astimezone(UTC) if replayed else None), to_end
        if cancel is not None and cancel.is_set():
            raise Cancelled("restore cancelled")
        if time.monotonic() > deadline:
            raise PitrError("the restored server was still recovering when the restore timed out")
        if server.postmaster_pid(data_dir) is None:
            tail = server.log_tail(result.log_path, secrets, offset)
            if at is not None and not to_end and server.NOT_REACHED in tail:
                server.drop_recovery_target(data_dir)
                to_end = True
                offset = _start(stanza, result)
                continue
            raise PitrError(f"the restored server stopped during recovery; its log ends:\n{tail}")
        time.sleep(0.2)


def _start(stanza: Stanza, result: RestoreResult) -> int:
    offset = server.log_size(result.log_path)
    server.start(result.data_dir, result.log_path, stanza.pg_bin_dir)
    server.wait_for_postmaster(result.data_dir, result.log_path, offset)
    return offset


def read_heartbeat(result: RestoreResult, dbname: str = "postgres") -> datetime | None:
    """The newest portal heartbeat in the restored database (the RPO the data proves)."""
    with result.connect(dbname) as conn:
        return heartbeat.read_pg(conn)


def free_port() -> int:
    """A port no one listens on over loopback (the copy itself listens on its socket only,
    but the number names the socket and tools expect it free)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_and_remove(path: str, preferred_bin: str = "") -> None:
    """Stop the server on a restored data directory (or on `<path>/data` for a scratch
    directory) and remove the directory, with a socket directory restore() made for it."""
    if not os.path.lexists(path):
        return
    data_dir = os.path.join(path, "data") if _SCRATCH_NAME.match(os.path.basename(path)) else path
    sock = server.socket_dir_of(data_dir) if os.path.isdir(data_dir) else ""
    if os.path.isdir(data_dir) and os.path.exists(os.path.join(data_dir, "PG_VERSION")):
        server.stop(data_dir, preferred_bin)
    server.remove_tree(path)
    if sock and os.path.basename(sock).startswith(SOCKET_PREFIX):
        shutil.rmtree(sock, ignore_errors=True)


def sweep(parent_dir: str, older_than_s: float = 6 * 3600) -> list[str]:
    """Remove the scratch directories under `parent_dir` named more than `older_than_s`
    ago (stopping their servers): what a killed worker or a power cut left behind."""
    removed = []
    try:
        names = os.listdir(parent_dir)
    except FileNotFoundError:
        return removed
    cutoff = time.time() - older_than_s
    for name in sorted(names):
        match = _SCRATCH_NAME.match(name)
        if match and int(match.group(1)) < cutoff:
            stop_and_remove(os.path.join(parent_dir, name))
            removed.append(name)
    return removed


class ScratchRestore:
    """`with ScratchRestore(stanza, parent, at=T) as result:` — a restored, running copy in
    `<parent>/dr_pitr_<epoch>_<hex>/` (data/, sock/, the server log), removed with its
    server when the block ends, also on an exception or a cancel."""

    def __init__(self, stanza: Stanza, parent_dir: str, *, port: int | None = None, **restore_kw):
        self.stanza, self.parent_dir, self.port = stanza, parent_dir, port
        self.restore_kw = {"at": None, **restore_kw}
        self.path = ""

    def __enter__(self) -> RestoreResult:
        check_path("scratch directory", self.parent_dir)
        if not os.path.isdir(self.parent_dir):
            raise PitrError(f"the scratch directory {self.parent_dir} does not exist")
        name = f"{SCRATCH_PREFIX}{int(time.time())}_{_secrets.token_hex(4)}"
        self.path = os.path.join(self.parent_dir, name)
        ids = owner_ids(self.stanza.os_user)
        try:
            make_dir(self.path, ids, 0o700)
            os.chmod(self.path, 0o700)
            _reachable(self.parent_dir, ids)
            settings = {**SCRATCH_SETTINGS, **(self.restore_kw.pop("settings", None) or {})}
            return restore(
                self.stanza,
                os.path.join(self.path, "data"),
                port=self.port or free_port(),
                socket_dir=os.path.join(self.path, "sock"),
                settings=settings,
                **self.restore_kw,
            )
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.path:
            stop_and_remove(self.path, self.stanza.pg_bin_dir)


def _reachable(path: str, ids: tuple[int, int] | None) -> None:
    """The OS user must traverse every directory above its scratch directory."""
    if ids is None:
        return
    uid, gid = ids
    current = os.path.abspath(path)
    while True:
        st = os.stat(current)
        mode = st.st_mode
        ok = (
            (st.st_uid == uid and mode & 0o100)
            or (st.st_gid == gid and mode & 0o010)
            or mode & 0o001
        )
        if not ok:
            raise PitrError(
                f"OS user uid {uid} cannot enter {current}: scratch directories must lie "
                "where the PostgreSQL OS user can reach them"
            )
        if current == "/":
            return
        current = os.path.dirname(current)
