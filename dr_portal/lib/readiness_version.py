"""The version of everything recovery readiness is computed from, for its cache.

Bumped whenever a run, test, copy, window or configuration it reads changes (model signals
in recovery.apps, `Run.finish`, `BackupCopy.mark_lost`); a cached entry names the version it
was read at, so a bump makes every older entry unreachable at once.

The counter lives in Django's cache. With a shared cache (the database cache by default,
Redis with REDIS_URL) every gunicorn worker sees one counter; a per-process cache (LocMem)
would only be invalidated in the process that wrote.
"""

import time

from django.core.cache import cache
from django.db import transaction

VERSION_KEY = "dr:readiness-version"


def current() -> int:
    version = cache.get(VERSION_KEY)
    if version is None:
        # A fresh start, never a number an old entry may still carry (the key was evicted).
        version = time.time_ns()
        if not cache.add(VERSION_KEY, version, timeout=None):
            version = cache.get(VERSION_KEY)  # another process started it first
    return version


def _bump() -> None:
    try:
        cache.incr(VERSION_KEY)
    except ValueError:  # no counter yet (or evicted): start a fresh one
        cache.add(VERSION_KEY, time.time_ns(), timeout=None)


def bump() -> None:
    """Invalidate now (this connection already sees the change) and again after commit.

    The second bump closes the race in which another request read the rows before the
    commit and stored them under the version the first bump made."""
    _bump()
    transaction.on_commit(_bump)
