"""Reachability of the enabled destinations, for /health/destinations: short timeouts, no secrets."""

import os
from functools import partial
from pathlib import Path

import boto3
from botocore.config import Config

from backups.models import Destination, reveal

S3_TIMEOUT_S = 3


def _local(destination):
    path = Path(destination.path)
    if not path.is_dir():
        return False, "directory missing"
    if not os.access(path, os.W_OK | os.X_OK):
        return False, "directory not writable"
    return True, "directory writable"


def _s3(destination):
    config = Config(
        connect_timeout=S3_TIMEOUT_S, read_timeout=S3_TIMEOUT_S, retries={"max_attempts": 1}
    )
    kwargs = {"config": config}
    if destination.region:
        kwargs["region_name"] = destination.region
    if destination.endpoint_url:
        kwargs["endpoint_url"] = destination.endpoint_url
    if destination.access_key_id:
        kwargs["aws_access_key_id"] = reveal(destination.access_key_id)
        kwargs["aws_secret_access_key"] = reveal(destination.secret_access_key)
    client = boto3.client("s3", **kwargs)
    try:
        client.head_bucket(Bucket=destination.bucket)
    except Exception as exc:  # the detail names the failure kind only, never a credential
        code = (
            getattr(exc, "response", {}).get("Error", {}).get("Code")
            if hasattr(exc, "response")
            else None
        )
        return False, f"bucket not reachable ({code or type(exc).__name__})"
    return True, "bucket reachable"


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
