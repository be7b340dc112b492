"""Streaming compressors and bounded-memory decompressors: zstd (default), gzip, none."""

import zlib

import zstandard

from .errors import ArtifactError

DEFAULT_LEVELS = {"zstd": 3, "gzip": 6, "none": None}
FEED_SIZE = 64 * 1024  # decompress input in small pieces so output per call stays bounded


def default_level(compression: str, level: int | None) -> int | None:
    if compression not in DEFAULT_LEVELS:
        raise ValueError(f"unknown compression {compression!r} (zstd, gzip or none)")
    return DEFAULT_LEVELS[compression] if level is None else level


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def make_compressor(compression: str, level: int | None = None, threads: int = 0):
    """An object with compress(data) -> bytes and flush() -> bytes."""
    level = default_level(compression, level)
    if compression == "zstd":
        # The frame checksum lets unencrypted artifacts detect corruption too.
        return zstandard.ZstdCompressor(
            level=level, write_checksum=True, threads=threads
        ).compressobj(size=-1)
    if compression == "gzip":
        return zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip container
    return _Identity()


class _Pieces:
    """A compressor whose compress(data) and flush() return iterables of output pieces."""

    def __init__(self, compress, flush):
        self.compress = compress
        self.flush = flush


def _one(step):
    def run(*args):
        out = step(*args)
        return (out,) if out else ()

    return run


def make_chunked_compressor(
    compression: str, level: int | None = None, threads: int = 0, chunk_size: int = 1024 * 1024
):
    """make_compressor's output as iterables of pieces; zstd's are chunk_size bytes each.

    Multi-threaded zstd hands over a whole job's output at once (megabytes); cut into
    chunk_size pieces as it is produced, no burst is held whole, and with chunk_size the
    encryption chunk size each piece is sealed as it is, without a copy. Consume each
    iterable before the next call.
    """
    level = default_level(compression, level)
    if compression == "zstd":
        chunker = zstandard.ZstdCompressor(
            level=level, write_checksum=True, threads=threads
        ).chunker(size=-1, chunk_size=chunk_size)
        return _Pieces(chunker.compress, chunker.finish)
    plain = make_compressor(compression, level)
    return _Pieces(_one(plain.compress), _one(plain.flush))


def _copy_plain(reader, write) -> int:
    written = 0
    while block := reader.read(1024 * 1024):
        write(block)
        written += len(block)
    return written


def _feed(decoder, piece: bytes, write, gzip: bool) -> int:
    """Decompress one piece and write what it yields; the plaintext bytes written."""
    written = 0
    if gzip:
        # max_length bounds memory on highly compressible data
        out = decoder.decompress(piece, 4 * 1024 * 1024)
        while out:
            write(out)
            written += len(out)
            out = decoder.decompress(decoder.unconsumed_tail, 4 * 1024 * 1024)
        return written
    out = decoder.decompress(piece)
    if out:
        write(out)
    return len(out)


def decompress_stream(reader, write, compression: str) -> int:
    """Read compressed data from reader, write plaintext via write(); return bytes written.

    Raises ArtifactError when the stream is truncated, corrupt or followed by junk.
    """
    if compression == "none":
        return _copy_plain(reader, write)
    if compression == "zstd":
        decoder = zstandard.ZstdDecompressor().decompressobj()
    else:
        decoder = zlib.decompressobj(31)
    gzip = compression == "gzip"
    written = 0
    try:
        while block := reader.read(1024 * 1024):
            for start in range(0, len(block), FEED_SIZE):
                if decoder.eof:
                    raise ArtifactError("trailing data after the compressed stream")
                written += _feed(decoder, block[start : start + FEED_SIZE], write, gzip)
                if decoder.unused_data:
                    raise ArtifactError("trailing data after the compressed stream")
    except (zstandard.ZstdError, zlib.error) as exc:
        raise ArtifactError(f"corrupt {compression} stream: {exc}") from None
    if not decoder.eof:
        raise ArtifactError(f"truncated: the {compression} stream ends early")
    return written
