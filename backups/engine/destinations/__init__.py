"""Destinations: where artifacts and their manifests are stored.

A destination opens a Writer per artifact: write() the stored bytes, commit() makes the
artifact visible atomically, write_manifest() puts the manifest beside it (always last),
abort() removes every trace of an unfinished copy.
"""

from collections.abc import Iterator
from typing import BinaryIO, Protocol

from ..errors import DestinationError
from ..specs import DestinationSpec

ARTIFACT_SUFFIX = ".drpa"  # DR Portal artifact (FORMAT.md)
MANIFEST_SUFFIX = ".manifest.json"


def check_artifact_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
        raise ValueError(f"invalid artifact key {key!r}: relative, no '..', no empty parts")
    return key


class Writer(Protocol):
    storage_class: str

    def write(self, data: bytes) -> None: ...
    def commit(self) -> str: ...  # returns the artifact location
    def write_manifest(self, manifest: dict) -> str: ...  # returns the manifest location
    def abort(self) -> None: ...


class Destination(Protocol):
    name: str

    def probe(self) -> None: ...
    def open_write(self, artifact_key: str) -> Writer: ...
    def open_read(self, location: str) -> BinaryIO: ...
    def delete(self, location: str) -> None: ...
    def exists(self, location: str) -> bool: ...
    def iter_manifests(self) -> Iterator[tuple[str, dict]]: ...


def open_destination(spec: DestinationSpec) -> Destination:
    if spec.kind == "local":
        # The kind modules import this package (import cycle at the top); s3 loads boto3.
        from .local import LocalDestination  # noqa: PLC0415

        return LocalDestination(spec)
    if spec.kind == "s3":
        from .s3 import S3Destination  # noqa: PLC0415

        return S3Destination(spec)
    raise DestinationError(f"unknown destination kind {spec.kind!r}")


__all__ = [
    "ARTIFACT_SUFFIX",
    "MANIFEST_SUFFIX",
    "Destination",
    "Writer",
    "check_artifact_key",
    "open_destination",
]
