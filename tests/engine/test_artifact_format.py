"""The artifact format: round trips and every verification failure names its cause."""

import io
import os

import pytest

from backups.engine import ArtifactError, unpack_artifact
from backups.engine.compress import make_compressor
from backups.engine.crypto import CHUNK_SIZE, ChunkEncryptor, build_header
from dr_portal.lib.keyring import MasterKey


def make_artifact(plain: bytes, compression: str, master=None, feed: int = 300_000) -> bytes:
    """Pack like the pipeline does, feeding odd-sized pieces."""
    header = build_header(compression, master)
    compressor = make_compressor(compression)
    encryptor = ChunkEncryptor(header) if master else None
    out = [header.raw]
    body = []
    for start in range(0, len(plain), feed):
        body.append(compressor.compress(plain[start : start + feed]))
    body.append(compressor.flush())
    data = b"".join(body)
    if encryptor:
        out += encryptor.update(data)
        out.append(encryptor.finish())
    else:
        out.append(data)
    return b"".join(out)


def unpack(artifact: bytes, keys, expected=None) -> bytes:
    out = io.BytesIO()
    info = unpack_artifact(io.BytesIO(artifact), out, keys, expected)
    assert info["bytes_out"] == len(out.getvalue())
    assert info["bytes_in"] == len(artifact)
    return out.getvalue()


# Incompressible and compressible parts, several GCM chunks after compression.
PLAIN = os.urandom(2 * CHUNK_SIZE + 12345) + b"row value " * 200_000


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
@pytest.mark.parametrize("encrypted", [True, False])
def test_round_trip(compression, encrypted, keys):
    artifact = make_artifact(PLAIN, compression, keys[0] if encrypted else None)
    assert artifact.startswith(b"DRPORTAL\x01")
    assert unpack(artifact, keys) == PLAIN


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 2 * CHUNK_SIZE])
def test_chunk_boundaries_round_trip(size, keys):
    plain = os.urandom(size)
    artifact = make_artifact(plain, "none", keys[0])
    # every chunk is sealed: the final chunk is always shorter than a full one
    assert unpack(artifact, keys) == plain


def test_older_key_in_the_ring_still_opens_the_artifact(keys, other_keys):
    artifact = make_artifact(b"data" * 1000, "zstd", other_keys[0])
    assert unpack(artifact, keys + other_keys) == b"data" * 1000


def test_flipped_byte_in_the_body_is_authentication_failure(keys):
    artifact = bytearray(make_artifact(PLAIN, "zstd", keys[0]))
    artifact[len(artifact) // 3] ^= 0x01
    with pytest.raises(ArtifactError, match=r"authentication failed \(modified or wrong key\)"):
        unpack(bytes(artifact), keys)


@pytest.mark.parametrize("cut", [1, 100, CHUNK_SIZE // 2])
def test_truncated_artifact_is_named(cut, keys):
    artifact = make_artifact(os.urandom(3 * CHUNK_SIZE), "none", keys[0])
    with pytest.raises(ArtifactError, match="truncated"):
        unpack(artifact[:-cut], keys)


def test_truncated_at_a_chunk_boundary_is_named(keys):
    artifact = make_artifact(os.urandom(3 * CHUNK_SIZE), "none", keys[0])
    header_len = len(build_header("none", keys[0]).raw)
    cut = header_len + 2 * (CHUNK_SIZE + 16)  # exactly two whole chunks, no final one
    with pytest.raises(ArtifactError, match="truncated: artifact ends after chunk 1"):
        unpack(artifact[:cut], keys)


def test_cut_right_after_the_header_is_truncated(keys):
    artifact = make_artifact(b"rows" * 1000, "zstd", keys[0])
    header_len = len(build_header("zstd", keys[0]).raw)
    with pytest.raises(ArtifactError, match="truncated: artifact ends right after its header"):
        unpack(artifact[:header_len], keys)
    with pytest.raises(ArtifactError, match="truncated: artifact ends inside its header"):
        unpack(artifact[: header_len - 5], keys)


def test_reordered_chunks_fail(keys):
    artifact = make_artifact(os.urandom(3 * CHUNK_SIZE), "none", keys[0])
    header_len = len(build_header("none", keys[0]).raw)
    size = CHUNK_SIZE + 16
    body = artifact[header_len:]
    swapped = body[size : 2 * size] + body[:size] + body[2 * size :]
    with pytest.raises(ArtifactError, match="authentication failed"):
        unpack(artifact[:header_len] + swapped, keys)


def test_wrong_key_material_with_the_same_id_fails_authentication(keys):
    artifact = make_artifact(b"secret rows", "zstd", keys[0])
    impostor = [MasterKey(keys[0].key_id, b"x" * 32)]
    with pytest.raises(ArtifactError, match=r"authentication failed \(modified or wrong key\)"):
        unpack(artifact, impostor)


def test_missing_key_id_is_named(keys, other_keys):
    artifact = make_artifact(b"secret rows", "zstd", keys[0])
    with pytest.raises(ArtifactError, match=f"key {keys[0].key_id} not in the key ring"):
        unpack(artifact, other_keys)


def test_header_tamper_is_detected(keys):
    artifact = make_artifact(b"secret rows" * 100, "zstd", keys[0])
    tampered = artifact.replace(b'"compression":"zstd"', b'"compression":"gzip"', 1)
    assert tampered != artifact
    with pytest.raises(ArtifactError, match="authentication failed.*header"):
        unpack(tampered, keys)


def test_header_garbage_is_named(keys):
    artifact = bytearray(make_artifact(b"secret rows", "zstd", keys[0]))
    artifact[14] = ord("#")  # inside the JSON fields
    with pytest.raises(ArtifactError, match="header is corrupt"):
        unpack(bytes(artifact), keys)


def test_not_an_artifact(keys):
    with pytest.raises(ArtifactError, match="not a DR Portal artifact"):
        unpack(b"PGDMP" + os.urandom(100), keys)


def test_checksum_mismatch_is_named(keys):
    artifact = make_artifact(b"rows" * 1000, "zstd", keys[0])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        unpack(artifact, keys, expected="0" * 64)


def test_unencrypted_flipped_byte_is_caught_by_the_manifest_checksum(keys):
    import hashlib

    artifact = make_artifact(os.urandom(100_000), "none", None)
    digest = hashlib.sha256(artifact).hexdigest()
    broken = bytearray(artifact)
    broken[-10] ^= 0xFF
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        unpack(bytes(broken), keys, expected=digest)


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_unencrypted_truncated_stream_is_named(compression, keys):
    artifact = make_artifact(os.urandom(200_000), compression, None)
    with pytest.raises(ArtifactError, match="truncated"):
        unpack(artifact[:-50], keys)


def test_appended_bytes_are_rejected(keys):
    encrypted = make_artifact(b"rows" * 1000, "zstd", keys[0])
    with pytest.raises(ArtifactError, match="authentication failed"):
        unpack(encrypted + b"junk", keys)
    plain = make_artifact(b"rows" * 1000, "zstd", None)
    with pytest.raises(ArtifactError, match="trailing data"):
        unpack(plain + b"junk", keys)
