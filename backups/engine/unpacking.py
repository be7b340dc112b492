"""unpack_artifact: verify, decrypt and decompress a stored artifact stream."""

import hashlib
from typing import BinaryIO

from .compress import decompress_stream
from .crypto import DecryptingReader, read_header
from .errors import ArtifactError


class _HashingReader:
    """Counts and hashes the stored bytes exactly as they are read."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        self.count += len(data)
        return data


def unpack_artifact(
    reader: BinaryIO,
    out: BinaryIO,
    master_keys,
    expected_sha256: str | None = None,
) -> dict:
    """Stream reader -> out; raise ArtifactError naming the cause if any check fails.

    Output is written as it is verified chunk by chunk; only when this returns is the
    whole artifact proven (final chunk, no trailing data, SHA-256 of the stored bytes).
    """
    hashed = _HashingReader(reader)
    header = read_header(hashed, list(master_keys or ()))
    body = DecryptingReader(hashed, header) if header.encrypted else hashed
    bytes_out = decompress_stream(body, out.write, header.compression)
    if hashed.raw.read(1):
        raise ArtifactError("trailing data after the end of the artifact")
    digest = hashed.sha.hexdigest()
    if expected_sha256 and digest != expected_sha256.strip().lower():
        raise ArtifactError(
            f"checksum mismatch: stored bytes have SHA-256 {digest}, expected {expected_sha256}"
        )
    return {
        "bytes_in": hashed.count,
        "bytes_out": bytes_out,
        "sha256": digest,
        "compression": header.compression,
        "encrypted": header.encrypted,
        "key_id": header.key_id,
    }
