"""Remove what a restore or restore test recorded as temporary (run.temporaries).

Called when a run ends (every exit path), by the reaper after a worker died ("worker lost"),
and by the periodic sweep for anything still listed on a finished run. Idempotent: a
database is dropped IF EXISTS, a path removed if present. What cannot be removed now stays
listed on the run (and in its log) for the next sweep; nothing here ever raises.
"""

import logging
import os
import shutil
import socket

from dr_portal.lib.redact import redact
from recovery.engine import pitr
from recovery.engine.pg import PgServer, database_exists, drop_database
from recovery.workspace import scratch_server

log = logging.getLogger(__name__)


def _server_for(run, entry):
    """The PostgreSQL server (maintenance database) that holds a recorded database."""

    if entry.get("server") == "scratch":
        return scratch_server(), None
    password = run.target_password.reveal() if getattr(run, "target_password", None) else ""
    target = PgServer.from_url(run.target, password=password)
    return target.with_db("postgres"), target.dbname


def _remove(run, entry) -> bool:
    """True when the thing is gone (now or already); False when it is not ours to remove here."""
    kind = entry.get("kind")
    if kind == "database":
        server, live_name = _server_for(run, entry)
        name = entry["name"]
        if name == live_name:  # never the target itself, whatever the record says
            return True
        if (
            _may_swap(run)
            and not database_exists(server, live_name)
            and database_exists(server, name)
        ):
            _interrupted_swap(run, name)
            return False
        drop_database(server, name)
        return True
    if kind == "pitr_scratch":  # a scratch data directory: stop its server, then remove it
        if entry.get("host") and entry["host"] != socket.gethostname():
            return False
        pitr.stop_and_remove(entry["path"])
        return True
    if kind == "path":
        if entry.get("host") and entry["host"] != socket.gethostname():
            return False  # another machine's disk: its own worker's sweep removes it
        path = entry["path"]
        target = entry.get("target")
        if _may_swap(run) and target and not os.path.lexists(target) and os.path.lexists(path):
            _interrupted_swap(run, path)
            return False
        for extra in ("", "-wal", "-shm", "-journal"):  # a SQLite file's companions too
            target = path + extra
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif os.path.lexists(target):
                os.unlink(target)
        return True
    return True  # an entry we do not understand: drop it from the list


def _may_swap(run) -> bool:
    """A restore allowed to replace existing data moves the target aside, then the staging
    copy in: a worker dying between the two leaves no target, and the staging copy is then
    the only current data. Such a staging copy is never removed automatically."""
    return bool(getattr(run, "overwrite_confirmed", False))


def _interrupted_swap(run, staging: str):
    message = (
        f"left {staging} in place: the target is missing, so the worker may have died "
        "mid-swap; it holds the restored data, and the previous data (if any) is kept aside "
        "under a name with 'before_restore'"
    )
    if message not in (run.log or ""):
        run.append_log(message)
    log.warning("%s: %s", run, message)


def remove_temporaries(run) -> list[str]:
    """Remove every recorded temporary of `run`; return what was removed. Never raises."""
    entries = list(run.temporaries or [])
    if not entries:
        return []
    removed, left = [], []
    for entry in entries:
        what = entry.get("name") or entry.get("path") or str(entry)
        try:
            if _remove(run, entry):
                removed.append(what)
            else:
                left.append(entry)
        except Exception as exc:  # a drop that fails (in use, server down) is retried later
            left.append(entry)
            message = redact(str(exc), _secrets(run))[:300]
            log.warning("%s: could not remove %s: %s", run, what, message)
            run.append_log(f"could not remove {what} (the sweep retries): {message}")
    type(run).objects.filter(pk=run.pk).update(temporaries=left)
    run.temporaries = left
    return removed


def _secrets(run) -> list[str]:
    try:
        password = getattr(run, "target_password", None)
        return [password.reveal()] if password else []
    except Exception:
        return []


def after_lost(run):
    """The reaper failed `run`: remove what its dead worker created, say so on the run."""
    removed = remove_temporaries(run)
    if removed:
        run.append_log(f"removed what the lost worker left: {', '.join(removed)}")
        log.warning("%s: removed what the lost worker left: %s", run, ", ".join(removed))
    return removed
