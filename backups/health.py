"""The destination test, and reachability of the enabled destinations for /health/destinations:
short timeouts, no secrets."""

import os
from functools import partial
from pathlib import Path

from backups.engine import open_destination
from backups.engine.probe import probe_source
from backups.models import Destination, Source
from dr_portal.lib.redact import redact

S3_DONE = (
    "CreateMultipartUpload, UploadPart, CompleteMultipartUpload, PutObject, GetObject "
    "(same bytes) and DeleteObject succeeded"
)


def test_destination(destination: Destination) -> tuple[bool, str]:
    """What a backup does, on a throwaway object, with short timeouts: (ok, detail).

    S3: multipart create, upload a part, complete, put an object as the manifest is put,
    read back and compare, delete, with this destination's checksum and addressing
    settings; the detail names the first operation that failed and the store's error
    code. Local: write, read back, delete. Never a credential in the detail.
    """
    secrets = destination.secret_values()
    try:
        store = open_destination(destination.to_spec(quick=True))
        store.probe()  # a destination with immutable_days first checks the bucket's lock
    except Exception as exc:  # DestinationError or anything else: a detail, never a 500
        return False, redact(str(exc) or type(exc).__name__, secrets)
    if destination.kind == Destination.Kind.S3:
        lock = _object_lock(store, destination, secrets)
        done = S3_DONE
        if store.probe_report:  # the portal's key cannot delete; a delete credential may
            done = f"{S3_DONE.removesuffix(' and DeleteObject succeeded')} succeeded; "
            done += store.probe_report
        return True, f"{done} (checksums: {destination.effective_checksums}); {lock}"
    if store.probe_report:  # append-only
        return True, f"wrote, read back and deleted a probe file; {store.probe_report}"
    return True, (
        "wrote, read back and deleted a probe file; not immutable: the host can delete it"
    )


def _object_lock(store, destination: Destination, secrets) -> str:
    """The bucket's Object Lock as the store reports it, and what the portal does with it."""
    try:
        state = store.bucket_lock()
    except Exception as exc:  # a store without the API: say so, the test itself passed
        return f"Object Lock: the store did not say ({redact(str(exc), secrets)[:200]})"
    if destination.immutable:
        return (
            f"Object Lock {state}: copies locked {destination.lock_mode.lower()} for "
            f"{destination.immutable_days} days"
        )
    return f"Object Lock {state}; copies not locked (immutable_days is 0)"


def test_source(source: Source) -> tuple[bool, str]:
    """'Test connection' of a source (saved or not): can a backup read it? (ok, detail)."""
    spec = source.to_spec()
    try:
        return True, probe_source(spec)
    except Exception as exc:  # SourceError, a refused path, anything: a detail, never a 500
        return False, redact(str(exc) or type(exc).__name__, [spec.password])


def _local(destination):
    path = Path(destination.path)
    if not path.is_dir():
        return False, "directory missing"
    if not os.access(path, os.W_OK | os.X_OK):
        return False, "directory not writable"
    return True, "directory writable"


def _s3(destination):
    # The same test as the button: a bucket that answers HEAD but refuses the upload's
    # headers (checksums, addressing) must not look healthy.
    ok, detail = test_destination(destination)
    return ok, ("upload, read back and delete work" if ok else detail)


def probes() -> dict:
    """{name: callable -> (ok, detail)}, one per enabled destination; the caller runs them."""
    found = {}
    for destination in Destination.objects.filter(enabled=True).order_by("name"):
        check = _local if destination.kind == Destination.Kind.LOCAL else _s3
        found[f"destination:{destination.name}"] = partial(_guarded, check, destination)
    return found


def _guarded(check, destination):
    try:
        return check(destination)
    except Exception as exc:
        return False, type(exc).__name__


def checks() -> dict:
    return {name: probe() for name, probe in probes().items()}
