"""S3 or an S3-compatible store: our own multipart upload, checksums as the store accepts them.

Parts are one size per upload (s3_options: explicit, or from the previous artifact's size,
else 64 MiB, so a stream of unknown length can reach 10,000 x 64 MiB = 625 GiB). Checksum
headers go only where the destination's mode says (s3_options.resolve_checksums); Content-MD5
otherwise. The upload is completed only after the source and every byte verified; on
failure it is aborted. The manifest object is written last, in STANDARD class, so the
catalog can be rebuilt without restoring archived objects.
"""

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from typing import BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from dr_portal.lib.redact import redact

from ..errors import DeletionRefused, DestinationError, StoreOperationError
from ..specs import STORAGE_CLASSES, DestinationSpec
from . import ARTIFACT_SUFFIX, MANIFEST_SUFFIX, check_artifact_key, s3_archive, s3_lock
from .s3_options import (
    MAX_PARTS,
    MIB,
    auto_part_size,
    completed_part,
    part_checksum,
    resolve_checksums,
    upload_checksum_args,
)

# Where the destination test writes its throwaway objects (never a manifest: the catalog
# rebuild lists *.manifest.json under the prefix).
PROBE_PREFIX = ".dr-portal-test/"
PROBE_BYTES = 64 * 1024


def _client(spec: DestinationSpec, checksums: str, *, for_deletes: bool = False):
    # Created per destination object: workers are forked, clients are not fork-safe.
    # for_deletes: the separate delete credential (delete_access_key_id), never the everyday key.
    prefix = "delete_" if for_deletes else ""

    options = {
        "retries": {"max_attempts": int(spec.config.get("max_attempts", 5)), "mode": "standard"},
        "connect_timeout": float(spec.config.get("connect_timeout", 10)),
        "read_timeout": float(spec.config.get("read_timeout", 120)),
    }
    if checksums == "none":
        # boto3 >= 1.36 adds CRC32 headers to every upload and asks for checksums on every
        # read (x-amz-checksum-mode) unless told "when_required"; those headers are what
        # stores without flexible checksums refuse.
        options.update(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    if spec.config.get("addressing_style"):
        options["s3"] = {"addressing_style": spec.config["addressing_style"]}
    return boto3.client(
        "s3",
        region_name=spec.config.get("region") or "us-east-1",
        endpoint_url=spec.config.get("endpoint_url") or None,
        aws_access_key_id=spec.secrets.get(f"{prefix}access_key_id") or None,
        aws_secret_access_key=spec.secrets.get(f"{prefix}secret_access_key") or None,
        config=Config(**options),
    )


class S3Writer:
    def __init__(self, dest: "S3Destination", artifact_key: str, *, lock: bool = True):
        self.dest = dest
        self.key = dest.prefix + check_artifact_key(artifact_key) + ARTIFACT_SUFFIX
        self.storage_class = dest.storage_class
        self._buffer = bytearray()
        self._parts: list[dict] = []
        self._completed = False
        self._manifest_key = self.key + MANIFEST_SUFFIX
        # Object Lock: the artifact and its manifest are kept at least until this moment.
        self.locked_until = (
            s3_lock.retain_until(dest.lock_days) if lock and dest.lock_days else None
        )
        # What the manifest of this copy records about how it was uploaded.
        self.manifest_fields = {"upload_checksums": dest.checksums, "part_size": dest.part_size}
        if self.locked_until:
            self.manifest_fields.update(
                lock_mode=dest.lock_mode, locked_until=self.locked_until.isoformat()
            )
        with dest.errors(f"starting upload of {self.key}", "CreateMultipartUpload"):
            self._upload_id = dest.client.create_multipart_upload(
                Bucket=dest.bucket,
                Key=self.key,
                StorageClass=self.storage_class,
                ContentType="application/octet-stream",
                **upload_checksum_args(dest.checksums),
                **s3_lock.lock_args(dest.lock_mode, self.locked_until),
            )["UploadId"]

    def _send_part(self, data: bytearray) -> None:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            size = self.dest.part_size
            raise DestinationError(
                f"S3 destination {self.dest.name}: the artifact outgrew {MAX_PARTS} parts of "
                f"{size // MIB} MiB ({size * MAX_PARTS / 1024**3:.0f} GiB); set a larger "
                "part size (part_size_mb)"
            )
        checksum = part_checksum(self.dest.checksums, data)
        with self.dest.errors(f"uploading part {number} of {self.key}", "UploadPart"):
            response = self.dest.client.upload_part(
                Bucket=self.dest.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
                **checksum,
            )
        self._parts.append(completed_part(number, response["ETag"], checksum))

    def write(self, data: bytes) -> None:
        self._buffer += data
        size = self.dest.part_size
        while len(self._buffer) >= size:
            # Hand the buffer itself over and keep only the small remainder: one part in
            # memory at a time, not two or three copies of it.
            part, self._buffer = self._buffer, bytearray(self._buffer[size:])
            del part[size:]
            self._send_part(part)

    def commit(self) -> str:
        if self._buffer or not self._parts:
            part, self._buffer = self._buffer, bytearray()
            self._send_part(part)
        with self.dest.errors(f"completing upload of {self.key}", "CompleteMultipartUpload"):
            self.dest.client.complete_multipart_upload(
                Bucket=self.dest.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._completed = True
        if self.locked_until:
            s3_lock.ensure_locked(self.dest, self.key, self.dest.lock_mode, self.locked_until)
        return self.dest.location(self.key)

    def write_manifest(self, manifest: dict) -> str:
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        self.dest.put_small(
            self._manifest_key,
            body,
            f"writing manifest {self._manifest_key}",
            locked_until=self.locked_until,
        )
        return self.dest.location(self._manifest_key)

    def abort(self) -> None:
        self._buffer.clear()
        bucket = self.dest.bucket
        try:
            if self._completed:
                deleter = self.dest.delete_client
                deleter.delete_object(Bucket=bucket, Key=self.key)
                deleter.delete_object(Bucket=bucket, Key=self._manifest_key)
            else:
                self.dest.client.abort_multipart_upload(
                    Bucket=bucket, Key=self.key, UploadId=self._upload_id
                )
        except Exception:  # noqa: BLE001 - best effort; a lifecycle rule cleans the rest
            pass


class _Errors:
    """Context manager turning boto errors into DestinationError without secrets."""

    def __init__(self, dest: "S3Destination", doing: str, operation: str):
        self.dest, self.doing, self.operation = dest, doing, operation

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, DestinationError):
            return False
        if not isinstance(exc, Exception):
            return False
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(
                error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            )
            detail = str(error.get("Message") or "")
        else:  # no answer: connection refused, timeout, DNS
            code, detail = type(exc).__name__, str(exc)
        detail = redact(detail, list(self.dest.secret_values))
        raise StoreOperationError(
            f"S3 destination {self.dest.name}: {self.operation} failed ({code})"
            + (f": {detail}" if detail else "")
            + f", {self.doing}",
            self.operation,
            code,
        ) from None


class S3Destination:
    def __init__(self, spec: DestinationSpec):
        self.name = spec.name
        config = spec.config
        self.bucket = config.get("bucket") or ""
        if not self.bucket:
            raise DestinationError(f"destination {spec.name}: no bucket configured")
        prefix = (config.get("prefix") or "").lstrip("/")
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.storage_class = config.get("storage_class") or "STANDARD"
        if self.storage_class not in STORAGE_CLASSES:
            raise DestinationError(
                f"destination {spec.name}: unknown storage class {self.storage_class}"
            )
        self.part_size = int(config.get("part_size") or auto_part_size(config.get("previous_size")))
        try:
            self.checksums = resolve_checksums(config.get("checksums"), config.get("endpoint_url"))
        except ValueError as exc:
            raise DestinationError(f"destination {spec.name}: {exc}") from None
        self.lock_days = int(config.get("lock_days") or 0)
        try:
            self.lock_mode = s3_lock.check_mode(config.get("lock_mode") or "GOVERNANCE")
        except ValueError as exc:
            raise DestinationError(f"destination {spec.name}: {exc}") from None
        self.secret_values = [v for v in spec.secrets.values() if v]
        self.spec = spec
        self._client = None
        # The everyday key may lack s3:DeleteObject* (a compromised portal then cannot delete
        # copies): deletes go through the separate delete credential, or nowhere.
        self.portal_cannot_delete = bool(config.get("portal_cannot_delete"))
        self.has_delete_credential = bool(
            spec.secrets.get("delete_access_key_id")
            and spec.secrets.get("delete_secret_access_key")
        )
        self._delete_client = None
        self.probe_report = ""

    @property
    def client(self):
        if self._client is None:
            self._client = _client(self.spec, self.checksums)
        return self._client

    @property
    def can_delete(self) -> bool:
        return self.has_delete_credential or not self.portal_cannot_delete

    @property
    def delete_client(self):
        """The client every Delete* call goes through: the delete credential's when one is
        given, else the everyday key's, unless that key is declared unable to delete."""
        if self._delete_client is None:
            if self.has_delete_credential:
                self._delete_client = _client(self.spec, self.checksums, for_deletes=True)
            elif self.portal_cannot_delete:
                raise DeletionRefused(
                    f"S3 destination {self.name}: the portal's key cannot delete and no delete "
                    "credential is set: old copies are left to the bucket's lifecycle rule"
                )
            else:
                self._delete_client = self.client
        return self._delete_client

    def errors(self, doing: str, operation: str) -> _Errors:
        return _Errors(self, doing, operation)

    def put_small(self, key: str, body: bytes, doing: str, locked_until=None) -> None:
        """One PutObject in STANDARD class, proven the way this destination's parts are
        (and locked until `locked_until`, when given)."""
        with self.errors(doing, "PutObject"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                StorageClass="STANDARD",
                **part_checksum(self.checksums, body),
                **s3_lock.lock_args(self.lock_mode, locked_until),
            )
        if locked_until:
            s3_lock.ensure_locked(self, key, self.lock_mode, locked_until)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _key(self, location: str) -> str:
        base = f"s3://{self.bucket}/"
        if location.startswith(base):
            return location[len(base) :]
        if location.startswith("s3://"):
            raise DestinationError(f"{location} is not in bucket {self.bucket}")
        return location

    def probe(self) -> None:
        """What a backup does, on a small throwaway artifact: CreateMultipartUpload,
        UploadPart, CompleteMultipartUpload, PutObject (as the manifest is written), GetObject
        and compare, DeleteObject. Raises StoreOperationError naming the first operation the
        store refused, with its error code."""
        if self.lock_days:
            self.check_bucket_lock()
        artifact = f"{PROBE_PREFIX}{secrets.token_hex(6)}"
        payload = secrets.token_bytes(PROBE_BYTES)
        # Never locked: a locked probe object could not be deleted for lock_days.
        writer = S3Writer(self, artifact, lock=False)
        try:
            writer.write(payload)
            location = writer.commit()
            self.put_small(writer.key + ".json", b"{}", f"writing {writer.key}.json")
        except BaseException:
            writer.abort()
            self._delete_quietly(writer.key + ".json")
            raise
        try:
            with self.errors(f"reading back {location}", "GetObject"):
                body = self.client.get_object(Bucket=self.bucket, Key=writer.key)["Body"].read()
            if body != payload:
                raise DestinationError(
                    f"S3 destination {self.name}: the test object read back differently"
                )
        finally:
            self.probe_report = self._remove_probe((writer.key, writer.key + ".json"))

    def _remove_probe(self, keys: tuple[str, ...]) -> str:
        """Delete the probe's objects the way retention deletes; say how it went."""
        report = ""
        if self.portal_cannot_delete:
            self._check_key_cannot_delete(keys[0])
            report = "DeleteObject refused to the portal's key, as declared"
        if not self.can_delete:
            return report + "; test objects left under .dr-portal-test/ to the lifecycle rule"
        for key in keys:
            with self.errors(f"deleting {self.location(key)}", "DeleteObject"):
                self.delete_client.delete_object(Bucket=self.bucket, Key=key)
            if self.lock_days:  # a versioned bucket keeps the probe behind a marker
                self._delete_versions_quietly(key)
        if self.has_delete_credential:
            return (report + "; " if report else "") + "deleted with the delete credential"
        return report

    def _check_key_cannot_delete(self, key: str) -> None:
        """A destination declared portal_cannot_delete proves it: the everyday key's
        DeleteObject of the throwaway object must be refused (the one Delete* it sends)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("AccessDenied", "403"):
                return
            with self.errors(f"deleting {self.location(key)}", "DeleteObject"):
                raise
        raise StoreOperationError(
            f"S3 destination {self.name}: the portal's key deleted the test object, yet the "
            "destination says the portal cannot delete: remove s3:DeleteObject and "
            "s3:DeleteObjectVersion from that key's policy",
            "DeleteObject",
            "KeyCanDelete",
        )

    def bucket_lock(self) -> str:
        """The bucket's Object Lock state, as s3_lock.bucket_lock words it."""
        return s3_lock.bucket_lock(self)

    def check_bucket_lock(self) -> None:
        """A destination asked to lock its copies needs a bucket with Object Lock enabled."""
        state = self.bucket_lock()
        if not state.startswith("enabled"):
            raise StoreOperationError(
                f"S3 destination {self.name}: GetObjectLockConfiguration says bucket "
                f"{self.bucket} does not have Object Lock "
                f"enabled, so copies cannot be made immutable for {self.lock_days} days; "
                "create the bucket with Object Lock (it cannot be turned on for every store "
                "afterwards) or set immutable_days to 0",
                "GetObjectLockConfiguration",
                "ObjectLockNotEnabled",
            )

    def _delete_versions_quietly(self, key: str) -> None:
        try:
            s3_lock.delete_all_versions(self, key)
        except DestinationError:  # a bucket default retention locked it: it expires there
            pass

    def _delete_quietly(self, key: str) -> None:
        try:
            self.delete_client.delete_object(Bucket=self.bucket, Key=key)
        except Exception:  # noqa: BLE001 - cleanup after a failure already being reported
            pass

    def open_write(self, artifact_key: str) -> S3Writer:
        return S3Writer(self, artifact_key)

    def open_read(self, location: str) -> BinaryIO:
        key = self._key(location)
        with self.errors(f"reading {location}", "GetObject"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            except ClientError as exc:
                version = self._behind_delete_marker(key, exc)
                if version is None:
                    raise
                return self.client.get_object(Bucket=self.bucket, Key=key, VersionId=version)[
                    "Body"
                ]

    def _behind_delete_marker(self, key: str, exc: ClientError) -> str | None:
        """On a locked destination, the newest real version of a key a DeleteObject (an
        intruder's, say) hid behind a delete marker: the data is still there, so read it."""
        code = exc.response.get("Error", {}).get("Code")
        if not self.lock_days or code not in ("404", "NoSuchKey", "NotFound"):
            return None
        return s3_lock.newest_version(self, key)

    def discard_partial(self, artifact_key: str) -> list[str]:
        """Abort the multipart uploads an unfinished write of this artifact left (a dead worker)."""
        key = self.prefix + check_artifact_key(artifact_key) + ARTIFACT_SUFFIX
        aborted = []
        with self.errors(f"aborting unfinished uploads of {key}", "AbortMultipartUpload"):
            uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
            for upload in uploads.get("Uploads", []):
                if upload["Key"] == key:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]
                    )
                    aborted.append(upload["UploadId"])
        return aborted

    def abort_stale_uploads(self, older_than_s: float) -> list[str]:
        """Abort multipart uploads under the prefix started over `older_than_s` ago.

        No live writer runs longer than a task may, so these are leftovers: a worker killed
        while S3 was unreachable could not abort its own upload.
        """
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_s)
        aborted = []
        with self.errors("aborting stale multipart uploads", "AbortMultipartUpload"):
            pages = self.client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted.append(upload["Key"])
        return aborted

    def delete(self, location: str) -> None:
        """Delete the artifact and its manifest. A locked destination deletes every version
        (a plain delete would only add a delete marker) and refuses while one is locked."""
        key = self._key(location)
        if self.lock_days:
            s3_lock.delete_all_versions(self, key)
            s3_lock.delete_all_versions(self, key + MANIFEST_SUFFIX)
            return
        with self.errors(f"deleting {location}", "DeleteObject"):
            self.delete_client.delete_object(Bucket=self.bucket, Key=key)
            self.delete_client.delete_object(Bucket=self.bucket, Key=key + MANIFEST_SUFFIX)

    def request_restore(self, location: str, tier: str, days: int) -> str:
        """Ask for a temporary readable copy of an archived artifact (s3_archive)."""
        return s3_archive.request_restore(self, self._key(location), tier, days)

    def restore_state(self, location: str):
        """("not requested" | "in progress" | "available", until) of an archived artifact."""
        return s3_archive.head_restore(self, self._key(location))

    def exists(self, location: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(location))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return self._behind_delete_marker(self._key(location), exc) is not None
            raise DestinationError(
                f"S3 destination {self.name}: checking {location} failed: "
                + redact(str(exc), self.secret_values)
            ) from None

    def iter_manifests(self) -> Iterator[tuple[str, dict]]:
        with self.errors(f"listing s3://{self.bucket}/{self.prefix}", "ListObjectsV2"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            keys = [
                item["Key"]
                for page in pages
                for item in page.get("Contents", [])
                if item["Key"].endswith(MANIFEST_SUFFIX)
            ]
        for key in sorted(keys):
            with self.errors(f"reading {key}", "GetObject"):
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            try:
                yield self.location(key), json.loads(body)
            except ValueError:
                continue
