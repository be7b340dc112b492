"""A directory on a local or mounted disk: temp name, fsync, atomic rename, manifest last."""

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DestinationError
from ..specs import DestinationSpec
from . import ARTIFACT_SUFFIX, MANIFEST_SUFFIX, check_artifact_key


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(final: Path, data: bytes) -> None:
    tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class LocalWriter:
    storage_class = ""

    def __init__(self, root: Path, artifact_key: str):
        self.final = root / (check_artifact_key(artifact_key) + ARTIFACT_SUFFIX)
        self.manifest_path = self.final.with_name(self.final.name + MANIFEST_SUFFIX)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp-{secrets.token_hex(4)}")
        self._committed = False
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            if self.final.exists():
                raise DestinationError(f"{self.final} already exists")
            self._fh = open(self.tmp, "xb")  # noqa: SIM115 - closed in commit/abort
        except OSError as exc:
            raise DestinationError(
                f"cannot write to {self.final.parent}: {exc.strerror or exc}"
            ) from None

    def write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as exc:
            raise DestinationError(
                f"writing {self.tmp.name} failed: {exc.strerror or exc}"
            ) from None

    def _publish(self) -> None:
        """Atomically give the temp file its final name, never replacing an existing backup."""
        try:
            os.link(self.tmp, self.final)  # fails if final exists, unlike rename
        except FileExistsError:
            raise
        except OSError:
            os.replace(self.tmp, self.final)  # a filesystem without hard links
            return
        self.tmp.unlink()

    def commit(self) -> str:
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._publish()
            self._committed = True
            _fsync_dir(self.final.parent)
        except FileExistsError:
            raise DestinationError(f"{self.final} already exists") from None
        except OSError as exc:
            raise DestinationError(
                f"finishing {self.final} failed: {exc.strerror or exc}"
            ) from None
        return str(self.final)

    def write_manifest(self, manifest: dict) -> str:
        try:
            _write_atomic(
                self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode()
            )
        except OSError as exc:
            raise DestinationError(
                f"writing manifest {self.manifest_path} failed: {exc.strerror or exc}"
            ) from None
        return str(self.manifest_path)

    def abort(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass
        self.tmp.unlink(missing_ok=True)
        if self._committed:
            self.final.unlink(missing_ok=True)
            self.manifest_path.unlink(missing_ok=True)


class LocalDestination:
    def __init__(self, spec: DestinationSpec):
        self.name = spec.name
        path = spec.config.get("path")
        if not path:
            raise DestinationError(f"destination {spec.name}: no path configured")
        self.root = Path(path)

    def probe(self) -> None:
        probe = self.root / f".dr-portal-probe-{secrets.token_hex(6)}"
        payload = secrets.token_bytes(64)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _write_atomic(probe, payload)
            if probe.read_bytes() != payload:
                raise DestinationError(f"{self.root}: the probe file read back differently")
        except OSError as exc:
            raise DestinationError(f"cannot write to {self.root}: {exc.strerror or exc}") from None
        finally:
            try:
                probe.unlink(missing_ok=True)
            except OSError:
                pass

    def open_write(self, artifact_key: str) -> LocalWriter:
        return LocalWriter(self.root, artifact_key)

    def _path(self, location: str) -> Path:
        path = Path(location)
        return path if path.is_absolute() else self.root / location

    def open_read(self, location: str) -> BinaryIO:
        try:
            return open(self._path(location), "rb")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise DestinationError(f"cannot read {location}: {exc.strerror or exc}") from None

    def discard_partial(self, artifact_key: str) -> list[str]:
        """Remove the temporary files an unfinished write of this artifact left (a dead worker)."""
        final = self.root / (check_artifact_key(artifact_key) + ARTIFACT_SUFFIX)
        removed = []
        for pattern in (f".{final.name}.tmp-*", f".{final.name}{MANIFEST_SUFFIX}.tmp-*"):
            for path in final.parent.glob(pattern):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    raise DestinationError(f"cannot remove {path}: {exc.strerror or exc}") from None
                removed.append(str(path))
        return removed

    def abort_stale_uploads(self, older_than_s: float) -> list[str]:
        """Remove temporary files of writes started over `older_than_s` ago (dead workers)."""
        cutoff = time.time() - older_than_s
        removed = []
        for path in self.root.rglob(".*.tmp-*"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(str(path))
            except OSError as exc:
                raise DestinationError(f"cannot remove {path}: {exc.strerror or exc}") from None
        return removed

    def delete(self, location: str) -> None:
        path = self._path(location)
        try:
            path.unlink(missing_ok=True)
            path.with_name(path.name + MANIFEST_SUFFIX).unlink(missing_ok=True)
        except OSError as exc:
            raise DestinationError(f"cannot delete {location}: {exc.strerror or exc}") from None

    def exists(self, location: str) -> bool:
        if not self.root.is_dir():  # an unmounted volume says nothing about its artifacts
            raise DestinationError(f"{self.root} is not a directory (not mounted?)")
        return self._path(location).is_file()

    def iter_manifests(self) -> Iterator[tuple[str, dict]]:
        if not self.root.is_dir():
            raise DestinationError(f"{self.root} is not a directory")
        for path in sorted(self.root.rglob(f"*{MANIFEST_SUFFIX}")):
            if path.name.startswith("."):
                continue
            try:
                yield str(path), json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a damaged manifest is skipped; its artifact stays on disk
