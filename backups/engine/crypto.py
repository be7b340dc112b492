"""The artifact header and the chunked AES-256-GCM envelope (see FORMAT.md).

Layout: MAGIC | version (1 byte) | fields length (u32 BE) | fields (JSON)
        [encrypted only: wrap length (u8) | wrap nonce (12) | wrapped data key (32 + 16 tag)]
        body.
The data key is wrapped with the fields JSON as associated data, so a modified header
fails at unwrap; every chunk carries SHA-256(header) in its associated data as well.
"""

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ArtifactError

MAGIC = b"DRPORTAL"
FORMAT_VERSION = 1
CHUNK_SIZE = 1024 * 1024  # plaintext bytes per GCM chunk
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 8  # nonce = 8-byte random prefix + 4-byte chunk counter
KEK_PURPOSE = "dr-portal artifact kek v1"
MAX_FIELDS = 64 * 1024
MAX_CHUNKS = 2**32  # the nonce counter is 32 bits


def _chunk_aad(header_hash: bytes, counter: int, final: bool) -> bytes:
    return header_hash + struct.pack(">QB", counter, 1 if final else 0)


def _nonce(prefix: bytes, counter: int) -> bytes:
    if counter >= MAX_CHUNKS:
        raise ValueError("artifact too large for one nonce prefix")
    return prefix + struct.pack(">I", counter)


@dataclass
class Header:
    compression: str
    encrypted: bool
    key_id: str = ""
    chunk_size: int = CHUNK_SIZE
    nonce_prefix: bytes = b""
    raw: bytes = b""  # the exact header bytes as stored
    data_key: bytes = field(default=b"", repr=False)

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.raw).digest()


def build_header(compression: str, master_key=None) -> Header:
    """A new header; with master_key, a fresh data key wrapped under its artifact KEK."""
    fields = {"compression": compression, "encryption": "none"}
    wrap = b""
    data_key = b""
    prefix = b""
    if master_key is not None:
        data_key = AESGCM.generate_key(bit_length=256)
        prefix = os.urandom(NONCE_PREFIX_SIZE)
        fields.update(
            encryption="aes-256-gcm-chunked",
            chunk_size=CHUNK_SIZE,
            key_id=master_key.key_id,
            kek=f"hkdf-sha256:{KEK_PURPOSE}",
            nonce_prefix=prefix.hex(),
        )
    fields_json = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    head = MAGIC + bytes([FORMAT_VERSION]) + struct.pack(">I", len(fields_json)) + fields_json
    if master_key is not None:
        wrap_nonce = os.urandom(12)
        kek = AESGCM(master_key.derive(KEK_PURPOSE))
        wrapped = wrap_nonce + kek.encrypt(wrap_nonce, data_key, head)
        wrap = bytes([len(wrapped)]) + wrapped
    return Header(
        compression=compression,
        encrypted=master_key is not None,
        key_id=fields.get("key_id", ""),
        nonce_prefix=prefix,
        raw=head + wrap,
        data_key=data_key,
    )


def _read_exact(reader: BinaryIO, size: int) -> bytes:
    parts = []
    remaining = size
    while remaining:
        block = reader.read(remaining)
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)


def read_fields(reader: BinaryIO) -> tuple[bytes, dict]:
    """The header's bytes up to the end of the fields JSON, and the fields (not authenticated)."""
    start = _read_exact(reader, len(MAGIC) + 5)
    if len(start) < len(MAGIC) + 5 or not start.startswith(MAGIC):
        raise ArtifactError("not a DR Portal artifact (bad magic)")
    version = start[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise ArtifactError(f"unsupported artifact format version {version}")
    (length,) = struct.unpack(">I", start[len(MAGIC) + 1 :])
    if length > MAX_FIELDS:
        raise ArtifactError("header is corrupt (implausible length)")
    fields_json = _read_exact(reader, length)
    if len(fields_json) < length:
        raise ArtifactError("truncated: artifact ends inside its header")
    try:
        fields = json.loads(fields_json)
        if not isinstance(fields, dict):
            raise ValueError("not an object")
    except ValueError:
        raise ArtifactError("header is corrupt (modified header fields)") from None
    return start + fields_json, fields


def read_header(reader: BinaryIO, master_keys) -> Header:
    """Parse and authenticate the header; unwraps the data key with the ring's matching key."""
    head, fields = read_fields(reader)
    try:
        compression = fields["compression"]
        encryption = fields["encryption"]
    except KeyError:
        raise ArtifactError("header is corrupt (modified header fields)") from None
    if compression not in ("zstd", "gzip", "none"):
        raise ArtifactError(f"header is corrupt (unknown compression {compression!r})")
    if encryption == "none":
        return Header(compression=compression, encrypted=False, raw=head)
    if encryption != "aes-256-gcm-chunked":
        raise ArtifactError(f"header is corrupt (unknown encryption {encryption!r})")
    try:
        key_id = str(fields["key_id"])
        chunk_size = int(fields["chunk_size"])
        prefix = bytes.fromhex(fields["nonce_prefix"])
    except (KeyError, TypeError, ValueError):
        raise ArtifactError("header is corrupt (modified header fields)") from None
    if len(prefix) != NONCE_PREFIX_SIZE or not 0 < chunk_size <= 64 * CHUNK_SIZE:
        raise ArtifactError("header is corrupt (modified header fields)")
    wrap_len = _read_exact(reader, 1)
    wrapped = _read_exact(reader, wrap_len[0]) if wrap_len else b""
    if not wrap_len or len(wrapped) < wrap_len[0]:
        raise ArtifactError("truncated: artifact ends inside its header")
    master = next((k for k in master_keys if k.key_id == key_id), None)
    if master is None:
        raise ArtifactError(
            f"key {key_id} not in the key ring (it sealed this artifact; was it rotated out?)"
        )
    try:
        kek = AESGCM(master.derive(KEK_PURPOSE))
        data_key = kek.decrypt(wrapped[:12], wrapped[12:], head)
    except (InvalidTag, ValueError):
        raise ArtifactError(
            "authentication failed (modified or wrong key): the header or wrapped data key was modified"
        ) from None
    return Header(
        compression=compression,
        encrypted=True,
        key_id=key_id,
        chunk_size=chunk_size,
        nonce_prefix=prefix,
        raw=head + wrap_len + wrapped,
        data_key=data_key,
    )


class ChunkEncryptor:
    """Cuts plaintext into chunk_size pieces; the final chunk is always shorter (maybe empty)."""

    def __init__(self, header: Header):
        self._aead = AESGCM(header.data_key)
        self._hash = header.hash
        self._prefix = header.nonce_prefix
        self._size = header.chunk_size
        self._buffer = bytearray()
        self._counter = 0

    def _seal(self, data: bytes, final: bool) -> bytes:
        counter = self._counter
        self._counter += 1
        return self._aead.encrypt(
            _nonce(self._prefix, counter), data, _chunk_aad(self._hash, counter, final)
        )

    def update(self, data) -> Iterator[bytes]:
        """Seal each whole chunk as it completes; the rest waits for the next call.

        A generator over slices of `data`: a burst of compressor output (a whole zstd job,
        megabytes) is sealed a chunk at a time, never copied into the buffer first, and only
        the partial chunk at its end is kept. Consume it before reusing `data`.
        """
        view = memoryview(data).cast("B")
        size = self._size
        if self._buffer:
            take = size - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) < size:
                return
            chunk = bytes(self._buffer)
            self._buffer.clear()
            yield self._seal(chunk, False)
        while len(view) >= size:
            yield self._seal(view[:size], False)
            view = view[size:]
        self._buffer += view

    def finish(self) -> bytes:
        chunk = self._seal(bytes(self._buffer), True)
        self._buffer.clear()
        return chunk


class DecryptingReader:
    """A file-like reader of plaintext that verifies every chunk, the order and the final flag."""

    def __init__(self, raw: BinaryIO, header: Header):
        self._raw = raw
        self._aead = AESGCM(header.data_key)
        self._hash = header.hash
        self._prefix = header.nonce_prefix
        self._size = header.chunk_size
        self._counter = 0
        self._done = False
        self._pending = memoryview(b"")

    def _next_chunk(self) -> bytes:
        sealed = _read_exact(self._raw, self._size + TAG_SIZE)
        counter = self._counter
        self._counter += 1
        if not sealed:
            where = f"after chunk {counter - 1}" if counter else "right after its header"
            raise ArtifactError(f"truncated: artifact ends {where} without its final chunk")
        final = len(sealed) < self._size + TAG_SIZE
        if final and len(sealed) < TAG_SIZE:
            raise ArtifactError(f"truncated: artifact ends inside chunk {counter}")
        try:
            plain = self._aead.decrypt(
                _nonce(self._prefix, counter), sealed, _chunk_aad(self._hash, counter, final)
            )
        except InvalidTag:
            if final:
                raise ArtifactError(
                    f"authentication failed (modified or wrong key) on last chunk {counter}: "
                    "the artifact is truncated or its end was modified"
                ) from None
            raise ArtifactError(
                f"authentication failed (modified or wrong key) on chunk {counter}"
            ) from None
        if final:
            self._done = True
            if self._raw.read(1):
                raise ArtifactError("trailing data after the final chunk (artifact was modified)")
        return plain

    def read(self, size: int = -1) -> bytes:
        while not self._pending and not self._done:
            self._pending = memoryview(self._next_chunk())
        if size is None or size < 0:
            size = len(self._pending)
        out = bytes(self._pending[:size])
        self._pending = self._pending[size:]
        return out
