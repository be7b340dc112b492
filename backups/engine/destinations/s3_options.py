"""How an S3 destination talks to its store: checksum headers and part size (no boto3 here).

Checksums: AWS accepts the flexible-checksum headers (x-amz-checksum-*,
x-amz-sdk-checksum-algorithm); several S3-compatible stores answer 400 to any request that
carries them (Backblaze B2 until 2025, GCS's S3 API). "auto" sends them to AWS only; elsewhere
each part carries Content-MD5 and the artifact's own SHA-256 in the manifest proves the whole.

Part size: S3 allows at most 10,000 parts of 5 MiB to 5 GiB (the last may be smaller), and
several compatible stores want every part but the last the same size, so one size is chosen
before the upload starts and kept.
"""

import base64
import hashlib
import math
import zlib
from urllib.parse import urlsplit

CHECKSUM_MODES = ("auto", "sha256", "crc32", "none")
MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000
# Without a previous artifact to go by: 10,000 x 64 MiB = 625 GiB per artifact.
DEFAULT_PART_SIZE = 64 * MIB
# The previous artifact's size times this is the size an upload plans for.
GROWTH = 1.5


def is_aws_endpoint(endpoint_url: str | None) -> bool:
    """No endpoint (boto3's own AWS endpoints) or a host under amazonaws.com."""
    if not endpoint_url:
        return True
    host = (urlsplit(endpoint_url).hostname or "").lower().rstrip(".")
    return host == "amazonaws.com" or host.endswith(".amazonaws.com")


def resolve_checksums(mode: str | None, endpoint_url: str | None) -> str:
    """The mode actually used: sha256, crc32 or none ("auto" decided by the endpoint)."""
    mode = (mode or "auto").lower()
    if mode not in CHECKSUM_MODES:
        raise ValueError(f"unknown checksum mode {mode!r}: one of {', '.join(CHECKSUM_MODES)}")
    if mode == "auto":
        return "sha256" if is_aws_endpoint(endpoint_url) else "none"
    return mode


def auto_part_size(previous_bytes: int | None) -> int:
    """Part size for an artifact expected to be `previous_bytes` x GROWTH (whole MiB).

    No previous size: DEFAULT_PART_SIZE. Otherwise the smallest whole-MiB part that keeps the
    expected size within MAX_PARTS, clamped to S3's 5 MiB .. 5 GiB.
    """
    if not previous_bytes or previous_bytes <= 0:
        return DEFAULT_PART_SIZE
    expected = previous_bytes * GROWTH
    part = math.ceil(expected / MAX_PARTS / MIB) * MIB
    return max(MIN_PART_SIZE, min(MAX_PART_SIZE, part))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def part_checksum(mode: str, data: bytes) -> dict:
    """upload_part/put_object arguments proving `data` in `mode` (a resolved mode)."""
    if mode == "sha256":
        return {
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": _b64(hashlib.sha256(data).digest()),
        }
    if mode == "crc32":
        crc = zlib.crc32(data).to_bytes(4, "big")
        return {"ChecksumAlgorithm": "CRC32", "ChecksumCRC32": _b64(crc)}
    # Content-MD5 is plain S3 from 2006: every compatible store checks it.
    return {"ContentMD5": _b64(hashlib.md5(data, usedforsecurity=False).digest())}


def upload_checksum_args(mode: str) -> dict:
    """create_multipart_upload arguments for `mode`."""
    return {"ChecksumAlgorithm": mode.upper()} if mode in ("sha256", "crc32") else {}


def completed_part(number: int, etag: str, checksum: dict) -> dict:
    """One entry of complete_multipart_upload's part list (checksums only where sent)."""
    part = {"PartNumber": number, "ETag": etag}
    for key in ("ChecksumSHA256", "ChecksumCRC32"):
        if key in checksum:
            part[key] = checksum[key]
    return part
