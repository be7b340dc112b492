"""S3 Object Lock: every artifact and manifest written with a retain-until date, and checked.

A destination with `lock_days` writes each object with ObjectLockMode (GOVERNANCE or
COMPLIANCE) and ObjectLockRetainUntilDate = upload time + lock_days, then reads the object's
lock back (HEAD) and, where the store ignored the headers (several compatible stores do on
multipart uploads), sets it with PutObjectRetention; a copy whose lock cannot be confirmed
fails. Until that date no credential can delete the object's version (COMPLIANCE), or only
one allowed s3:BypassGovernanceRetention (GOVERNANCE; the portal never sends the bypass).

Object Lock needs a versioned bucket: a DeleteObject without a version only hides the
object behind a delete marker. So a locked destination reads through delete markers (the
newest real version), and its deletes remove every version of the key, after checking
that none is still locked.
"""

import datetime as dt

from botocore.exceptions import ClientError

from ..errors import DestinationError
from ..specs import LOCK_MODES

# The store may round the date it keeps (seconds, not microseconds).
SLACK = dt.timedelta(seconds=2)


def retain_until(days: int, now: dt.datetime | None = None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).replace(microsecond=0) + dt.timedelta(days=days)


def check_mode(mode: str) -> str:
    mode = (mode or "").upper()
    if mode not in LOCK_MODES:
        raise ValueError(f"unknown Object Lock mode {mode!r}: GOVERNANCE or COMPLIANCE")
    return mode


def lock_args(mode: str, until: dt.datetime | None) -> dict:
    """create_multipart_upload / put_object arguments that lock the object until `until`."""
    if until is None:
        return {}
    return {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": until}


def held_until(head: dict) -> dt.datetime | None:
    """The retain-until date of a HEAD answer, or None when the object is not locked."""
    if not head.get("ObjectLockMode"):
        return None
    return head.get("ObjectLockRetainUntilDate")


def ensure_locked(dest, key: str, mode: str, until: dt.datetime) -> None:
    """Make sure `key` is locked in `mode` until at least `until`; DestinationError if not."""
    with dest.errors(f"reading the lock of {key}", "HeadObject"):
        head = dest.client.head_object(Bucket=dest.bucket, Key=key)
    held = held_until(head)
    if held is not None and head.get("ObjectLockMode") == mode and held >= until - SLACK:
        return
    with dest.errors(f"locking {key} until {until:%Y-%m-%d %H:%M} UTC", "PutObjectRetention"):
        dest.client.put_object_retention(
            Bucket=dest.bucket,
            Key=key,
            VersionId=head.get("VersionId") or None,
            Retention={"Mode": mode, "RetainUntilDate": until},
        )
        head = dest.client.head_object(Bucket=dest.bucket, Key=key)
    held = held_until(head)
    if held is None or held < until - SLACK:
        raise DestinationError(
            f"S3 destination {dest.name}: the store did not keep the Object Lock on {key} "
            f"(asked {mode} until {until:%Y-%m-%d %H:%M} UTC): enable Object Lock on the bucket"
        )


def bucket_lock(dest) -> str:
    """What the bucket says about Object Lock: "enabled", "enabled, default GOVERNANCE 30
    days", or "not enabled" (raises StoreOperationError when the store cannot be asked)."""
    try:
        answer = dest.client.get_object_lock_configuration(Bucket=dest.bucket)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"):
            return "not enabled"
        with dest.errors("reading the bucket's Object Lock configuration", "GetObjectLock"):
            raise
    config = answer.get("ObjectLockConfiguration") or {}
    if config.get("ObjectLockEnabled") != "Enabled":
        return "not enabled"
    default = (config.get("Rule") or {}).get("DefaultRetention") or {}
    if default.get("Mode"):
        span = f"{default['Days']} days" if default.get("Days") else f"{default.get('Years')} years"
        return f"enabled, default {default['Mode']} {span}"
    return "enabled"


def versions(dest, key: str) -> tuple[list[dict], list[dict]]:
    """(versions, delete markers) of exactly `key`, newest first."""
    found, markers = [], []
    with dest.errors(f"listing the versions of {key}", "ListObjectVersions"):
        pages = dest.client.get_paginator("list_object_versions")
        for page in pages.paginate(Bucket=dest.bucket, Prefix=key):
            found += [v for v in page.get("Versions", []) if v["Key"] == key]
            markers += [m for m in page.get("DeleteMarkers", []) if m["Key"] == key]
    found.sort(key=lambda v: v["LastModified"], reverse=True)
    return found, markers


def newest_version(dest, key: str) -> str | None:
    """The newest real version of `key` (behind any delete marker), or None."""
    found, _ = versions(dest, key)
    return found[0]["VersionId"] if found else None


def delete_all_versions(dest, key: str, now: dt.datetime | None = None) -> None:
    """Delete every version and delete marker of `key`, refusing (before deleting anything)
    while one is still locked."""
    now = now or dt.datetime.now(dt.UTC)
    found, markers = versions(dest, key)
    for version in found:
        with dest.errors(f"reading the lock of {key}", "HeadObject"):
            head = dest.client.head_object(
                Bucket=dest.bucket, Key=key, VersionId=version["VersionId"]
            )
        held = held_until(head)
        if held is not None and held > now:
            raise DestinationError(
                f"S3 destination {dest.name}: {dest.location(key)} is locked until "
                f"{held:%Y-%m-%d %H:%M} UTC (Object Lock, {head['ObjectLockMode']}): "
                "it cannot be deleted before then"
            )
    for version in found + markers:
        with dest.errors(f"deleting {dest.location(key)}", "DeleteObject"):
            dest.delete_client.delete_object(
                Bucket=dest.bucket, Key=key, VersionId=version["VersionId"]
            )
