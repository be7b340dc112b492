"""Point-in-time recovery on pgBackRest: the portal writes its configuration and drives it.

pgBackRest takes base backups, archives WAL, keeps both, encrypts and restores; the portal
owns configuration, schedules, tests and evidence. One source is one stanza; its
repositories are the source's destinations. Plain Python, no Django: the backups app builds
a `Stanza` from a source (`Source.to_stanza()`) and calls these functions.

Every call runs pgBackRest through `pgbackrest_run.run` (argument list, as the cluster's OS
user, secrets masked in errors); the configuration file is rendered by `pgbackrest_conf`
and the WAL arithmetic of the recoverable window lives in `pgbackrest_wal`.
"""

import json
import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from . import pgbackrest_conf as conf
from . import pgbackrest_wal as wal
from .errors import Cancelled, PgBackRestError
from .pgbackrest_conf import ConfigError
from .pgbackrest_run import CIPHER_MISMATCH, explain, run
from .pgbackrest_types import BackupSet, Repo, Stanza, Window

__all__ = [
    "BACKUP_TYPES",
    "CIPHER_MISMATCH",
    "BackupSet",
    "Cancelled",
    "ConfigError",
    "PgBackRestError",
    "Repo",
    "Stanza",
    "Window",
]

BACKUP_TYPES = ("full", "diff", "incr")


def config_path(stanza: Stanza) -> str:
    return os.path.join(os.path.normpath(stanza.config_dir), f"{stanza.name}.conf")


def write_config(stanza: Stanza) -> str:
    """Write `<config_dir>/<name>.conf` atomically, mode 0600, owned by `os_user`.

    Also creates log/, lock/, spool/ and each local repository's directory for that user:
    PostgreSQL's archive_command runs as the server's OS user and must read and write them.
    """
    text = conf.render(stanza)
    ids = conf.owner_ids(stanza.os_user)
    base = os.path.normpath(stanza.config_dir)
    conf.make_dir(base, ids, 0o700)
    for sub in ("log", "lock", "spool"):
        conf.make_dir(os.path.join(base, sub), ids, 0o700)
    for repo in stanza.repos:
        if repo.kind == "local" and not stanza.read_only:
            conf.make_dir(os.path.join(os.path.normpath(repo.path), "pgbackrest"), ids)
    path = config_path(stanza)
    conf.write_atomically(path, text, ids)
    return path


def _ensure_config(stanza: Stanza) -> None:
    """Write the file on first use, and again when the stanza changed (a destination or S3
    key edit) — but never over a different encryption passphrase: archive_command reads
    this file, and a key ring that no longer matches the repository must show up as a
    failing check (every call passes the stanza's passphrase in its environment), not
    silently break archiving while WAL piles up on the database server."""
    try:
        with open(config_path(stanza)) as fh:
            current = fh.read()
    except FileNotFoundError:
        write_config(stanza)
        return
    wanted = conf.render(stanza)
    if current != wanted and conf.cipher_passes(current) == conf.cipher_passes(wanted):
        write_config(stanza)


def ensure_config(stanza: Stanza) -> str:
    """Write the file unless it exists with a different passphrase (see _ensure_config)."""
    _ensure_config(stanza)
    return config_path(stanza)


def archive_command(stanza: Stanza) -> str:
    conf.validate(stanza)
    return conf.archive_command_for(stanza)


def postgresql_conf_lines(stanza: Stanza) -> list[str]:
    """The lines the DBA adds to postgresql.conf (archive_mode, archive_command, …)."""
    return [
        "archive_mode = on",
        f"archive_command = {conf.conf_quote(archive_command(stanza))}",
        f"archive_timeout = {int(stanza.archive_timeout_s)}",
        "wal_level = replica",
    ]


def refuse_if_read_only(stanza: Stanza, command: str) -> None:
    """An adopted stanza belongs to its DBA: the portal never writes to its repository."""
    if stanza.read_only:
        raise PgBackRestError(
            f"stanza {stanza.name} is adopted (read-only): the portal does not run {command} "
            "on it; its own archive_command and schedule do"
        )


def stanza_create(stanza: Stanza) -> None:
    refuse_if_read_only(stanza, "stanza-create")
    write_config(stanza)
    run(stanza, "stanza-create", timeout=300)


_ARCHIVED = re.compile(r"WAL segment (\w+) successfully archived to .* on (repo\d+)")


def check(stanza: Stanza) -> str:
    """Archive a WAL segment and read it back; raise PgBackRestError naming what is missing."""
    _ensure_config(stanza)
    started = datetime.now(UTC)
    out = run(stanza, "check", options=["--log-level-console=info"], timeout=300)
    found = _ARCHIVED.findall(out)
    took = (datetime.now(UTC) - started).total_seconds()
    if not found:
        return f"pgBackRest check passed for stanza {stanza.name} ({took:.1f} s)"
    segment = found[-1][0]
    repos = ", ".join(dict.fromkeys(repo for _, repo in found))
    return f"WAL segment {segment} archived and found in {repos} ({took:.1f} s)"


_LABEL = re.compile(r"new backup label = (\S+)")
_FILE_PCT = re.compile(r"backup file .*\(.*?(\d+(?:\.\d+)?)%\)")
_PHASES = (
    ("execute non-exclusive backup start", "checkpoint"),
    ("backup start archive =", "copying files"),
    ("backup stop", "waiting for WAL to be archived"),
    ("new backup label", "reading the backup back"),
)


class _Progress:
    """Turns pgBackRest's console lines into a few phase strings (at most one a second)."""

    def __init__(self, callback: Callable[[str], None] | None):
        self.callback, self.label, self.phase = callback, "", ""
        self.last_pct, self.last_at = -1.0, 0.0

    def __call__(self, line: str) -> None:
        if match := _LABEL.search(line):
            self.label = match.group(1)
        if self.callback is None:
            return
        for needle, phase in _PHASES:
            if needle in line:
                if phase != self.phase:
                    self.phase = phase
                    self.callback(phase)
                return
        if match := _FILE_PCT.search(line):
            pct, now = float(match.group(1)), datetime.now(UTC).timestamp()
            if pct - self.last_pct >= 1 and now - self.last_at >= 1:
                self.last_pct, self.last_at = pct, now
                self.callback(f"copying files {pct:.0f}%")


def backup(
    stanza: Stanza,
    kind: str = "full",
    *,
    cancel: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
    repo: int = 1,
    start_fast: bool = True,
    timeout_s: float | None = None,
) -> BackupSet:
    """Take a base backup into repository `repo`; return it as `info` lists it.

    `start_fast` asks for an immediate checkpoint (the backup starts now instead of after
    the next scheduled checkpoint, at the price of a burst of writes).
    """
    if kind not in BACKUP_TYPES:
        raise PgBackRestError(f"backup type {kind!r} is not one of {', '.join(BACKUP_TYPES)}")
    refuse_if_read_only(stanza, "backup")
    _ensure_config(stanza)
    watcher = _Progress(progress)
    # detail: a line per file copied, with the share done so far (only to report progress)
    level = "detail" if progress is not None else "info"
    options = [f"--type={kind}", f"--repo={repo}", f"--log-level-console={level}"]
    options.append("--start-fast" if start_fast else "--no-start-fast")
    run(
        stanza,
        "backup",
        options=options,
        timeout=timeout_s,
        cancel=cancel,
        on_line=watcher,
        keep_lines=200,
    )
    sets = [b for b in backups(stanza) if b.repo == repo]
    for found in sets:
        if found.label == watcher.label:
            return found
    if sets and not watcher.label:
        return sets[-1]
    raise PgBackRestError(f"backup {watcher.label or '?'} is not listed by pgBackRest info")


def _info(stanza: Stanza, timeout: float = 300) -> dict:
    """`pgbackrest info --output=json` for the stanza; raise when a repository is unreadable."""
    out = run(stanza, "info", options=["--output=json"], timeout=timeout)
    try:
        data = json.loads(out, strict=False)[0]  # messages may quote binary junk
    except (ValueError, IndexError, KeyError):
        raise PgBackRestError("pgBackRest info returned no readable JSON") from None
    for repo in data.get("repo", []):
        status = repo.get("status", {})
        if status.get("code", 0) not in (0, 2):  # 2: "no valid backups" is not an error
            raise PgBackRestError(
                explain(stanza, "info", 1, f"ERROR: [000]: {status.get('message', '')}")
            )
    return data


def _backup_set(entry: dict) -> BackupSet:
    info, stamps = entry.get("info", {}), entry.get("timestamp", {})
    return BackupSet(
        label=entry["label"],
        kind=entry["type"],
        prior=entry.get("prior"),
        started=datetime.fromtimestamp(stamps["start"], UTC),
        stopped=datetime.fromtimestamp(stamps["stop"], UTC),
        wal_start=entry["archive"]["start"],
        wal_stop=entry["archive"]["stop"],
        size=int(info.get("size", 0)),
        repo_size=int(info.get("repository", {}).get("size", 0)),
        repo_delta=int(info.get("repository", {}).get("delta", 0)),
        repo=int(entry.get("database", {}).get("repo-key", 1)),
    )


def backups(stanza: Stanza) -> list[BackupSet]:
    """Every backup set in every repository, oldest first."""
    _ensure_config(stanza)
    data = _info(stanza)
    sets = [_backup_set(e) for e in data.get("backup", []) if not e.get("error")]
    return sorted(sets, key=lambda b: (b.stopped, b.label, b.repo))


def expire(stanza: Stanza, label: str, *, repo: int = 1) -> None:
    """Remove one backup set (and what depends on it) and the WAL no kept backup needs.

    `expire --set` removes the set but leaves WAL older than the oldest kept backup; a
    second expire with archive retention equal to the number of full backups left removes
    exactly that WAL. (Archive retention, not backup retention: if a backup finished in
    between, the worst case is WAL trimmed to one full backup fewer, never a backup lost.)
    """
    if not re.fullmatch(r"\d{8}-\d{6}[FDI](?:_\d{8}-\d{6}[DI])?", label or ""):
        raise PgBackRestError(f"{label!r} is not a pgBackRest backup label")
    refuse_if_read_only(stanza, "expire")
    _ensure_config(stanza)
    run(stanza, "expire", options=[f"--set={label}", f"--repo={repo}"], timeout=3600)
    fulls = sum(1 for b in backups(stanza) if b.repo == repo and b.kind == "full")
    if fulls:
        options = [f"--repo={repo}", f"--repo{repo}-retention-archive={fulls}"]
        run(stanza, "expire", options=options, timeout=3600)


def window(stanza: Stanza, now: datetime | None = None, *, repo: int = 1) -> Window:
    """The points in time repository `repo` can restore to; a read failure fills `error`."""
    checked = now or datetime.now(UTC)
    try:
        _ensure_config(stanza)
        data = _info(stanza)
        sets = [
            _backup_set(e)
            for e in data.get("backup", [])
            if not e.get("error") and e.get("database", {}).get("repo-key", 1) == repo
        ]
        if not sets:
            return Window(None, None, checked_at=checked)
        archive_id = _archive_id(data, repo)
        options = ["--output=json", "--recurse", f"--repo={repo}"]
        listing = json.loads(
            run(stanza, "repo-ls", f"archive/{stanza.name}/{archive_id}", options=options)
        )
    except (PgBackRestError, ValueError) as exc:
        return Window(None, None, checked_at=checked, error=str(exc).splitlines()[0])
    return _window_from(sets, listing, stanza.wal_segment_size, checked)


def _archive_id(data: dict, repo: int) -> str:
    """The archive of the current database (after a stanza-upgrade there are several)."""
    current = max(
        (d for d in data.get("db", []) if d.get("repo-key", 1) == repo),
        key=lambda d: d["id"],
        default=None,
    )
    for archive in data.get("archive", []):
        db = archive.get("database", {})
        if current and db.get("id") == current["id"] and db.get("repo-key", 1) == repo:
            return archive["id"]
    if current is None:
        raise PgBackRestError("pgBackRest info lists no database for this repository")
    return f"{current['version']}-{current['id']}"


# pgBackRest records a backup's stop time in whole seconds (rounded down) and restores to a
# time only from a backup that stopped before it: the first safe point is a second later.
STOP_ROUNDING = timedelta(seconds=1)


def _window_from(sets: list[BackupSet], listing: dict, segment_size: int, checked) -> Window:
    """Each backup restores up to the end of the unbroken run of WAL from its start; the
    window is the stretch reaching furthest, from the oldest backup that reaches it."""
    spl = wal.infer_per_log(wal.raw_triples(listing), wal.per_log(segment_size))
    segments = wal.archived_segments(listing, spl)
    runs = []
    for backup_set in sorted(sets, key=lambda b: b.stopped):
        start = wal.parse_name(backup_set.wal_start, spl)
        stop = wal.parse_name(backup_set.wal_stop, spl)
        runs.append((backup_set, wal.unbroken_run(segments, start), stop))
    usable = [(b, r) for b, r, stop in runs if r.last is not None and r.last.number >= stop.number]
    gaps = [r for _, r, _ in runs if r.missing is not None]
    if not usable:
        first = runs[0][1]
        missing = (first.missing or wal.parse_name(runs[0][0].wal_start, spl)).name(spl)
        return Window(
            None,
            None,
            gap_after=first.last.name(spl) if first.last else "",
            missing_segment=missing,
            checked_at=checked,
            error=f"no backup has all the WAL it needs: segment {missing} is missing",
        )
    end = max(r.last for _, r in usable)
    stretch = [(b, r) for b, r in usable if r.last == end]
    gap = stretch[0][1] if stretch[0][1].missing else (gaps[-1] if gaps else None)
    return Window(
        oldest=min(b.stopped for b, _ in stretch) + STOP_ROUNDING,
        newest=datetime.fromtimestamp(segments[end], UTC),
        newest_segment=end.name(spl),
        gap_after=gap.last.name(spl) if gap and gap.last else "",
        missing_segment=gap.missing.name(spl) if gap else "",
        checked_at=checked,
    )
