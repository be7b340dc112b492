"""Archived objects (GLACIER, DEEP_ARCHIVE): asking the store for a temporary readable copy
(RestoreObject) and reading where that stands from a HEAD's `x-amz-restore` header.

A restore is asked only when a person (or `manage.py scrub --restore-archived`) says so: it is
billed per GB and takes minutes (Expedited) to 48 hours (Bulk on DEEP_ARCHIVE). While the
temporary copy exists, GET reads it like any object.
"""

import datetime as dt
import re
from email.utils import parsedate_to_datetime

TIERS = ("Expedited", "Standard", "Bulk")
MAX_DAYS = 30  # the temporary copy is billed as STANDARD for each of these days


def check_request(tier: str, days: int) -> None:
    if tier not in TIERS:
        raise ValueError(f"unknown retrieval tier {tier!r}: one of {', '.join(TIERS)}")
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a restored copy is kept 1 to {MAX_DAYS} days, not {days}")


def request_restore(dest, key: str, tier: str, days: int) -> str:
    """RestoreObject: "in progress" (202), "available" (200: already restored, days
    extended) or "in progress" when the store says one is already running (409)."""
    check_request(tier, days)
    try:
        with dest.errors(f"requesting a restore of {dest.location(key)}", "RestoreObject"):
            answer = dest.client.restore_object(
                Bucket=dest.bucket,
                Key=key,
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
            )
    except Exception as exc:
        if getattr(exc, "code", "") == "RestoreAlreadyInProgress":
            return "in progress"
        raise
    status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return "available" if status == 200 else "in progress"


_EXPIRY = re.compile(r'expiry-date="([^"]+)"')


def restore_state(head: dict) -> tuple[str, dt.datetime | None]:
    """From a HEAD answer: ("not requested" | "in progress" | "available", until)."""
    header = head.get("Restore") or ""
    if not header:
        return "not requested", None
    if 'ongoing-request="true"' in header:
        return "in progress", None
    match = _EXPIRY.search(header)
    return "available", parsedate_to_datetime(match.group(1)) if match else None


def head_restore(dest, key: str) -> tuple[str, dt.datetime | None]:
    with dest.errors(f"reading the restore state of {dest.location(key)}", "HeadObject"):
        head = dest.client.head_object(Bucket=dest.bucket, Key=key)
    return restore_state(head)
