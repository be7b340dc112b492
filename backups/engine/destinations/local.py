"""A directory on a local or mounted disk: temp name, fsync, atomic rename, manifest last.

Append-only (config "append_only"): each artifact and manifest is made read-only (0444) and,
where the file system and the process allow it (root with CAP_LINUX_IMMUTABLE; ext4, xfs,
btrfs, tmpfs do, overlayfs and NFS do not), immutable (the FS_IMMUTABLE_FL of `chattr +i`):
then not even root unlinks it without first running `chattr -i`. The portal never deletes
there; the host's own job (or a person) does.
"""

import errno
import fcntl
import json
import os
import secrets
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DeletionRefused, DestinationError
from ..specs import DestinationSpec
from . import ARTIFACT_SUFFIX, MANIFEST_SUFFIX, check_artifact_key

# linux/fs.h: the flags ioctls take an int, whatever their name says.
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def _set_flag(path: Path, on: bool) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        (flags,) = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0)))
        wanted = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
        if wanted != flags:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", wanted))
    finally:
        os.close(fd)


def set_immutable(path: Path) -> str:
    """`chattr +i path`: "" when set, else why it is not, in words for the operator."""
    if os.geteuid() != 0:
        return "immutable flag not supported here: the portal does not run as root"
    try:
        _set_flag(path, True)
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
            return "immutable flag not supported here: the file system has no chattr +i"
        if exc.errno == errno.EPERM:
            return "immutable flag not supported here: no CAP_LINUX_IMMUTABLE (a container?)"
        return f"immutable flag not set: {exc.strerror or exc}"
    return ""


def is_immutable(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        (flags,) = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0)))
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(flags & FS_IMMUTABLE_FL)


def protect(path: Path) -> str:
    """Read-only (0444) and, where possible, immutable; says what was done."""
    os.chmod(path, 0o444)
    why_not = set_immutable(path)
    return (
        f"read-only (0444); {why_not}" if why_not else "read-only (0444) and immutable (chattr +i)"
    )


def unprotect(path: Path) -> None:
    """Undo protect() for the writer's own unfinished copy (or a test's probe)."""
    try:
        if os.geteuid() == 0:
            _set_flag(path, False)
    except OSError:
        pass


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

    def __init__(self, root: Path, artifact_key: str, *, append_only: bool = False):
        self.append_only = append_only
        self.manifest_fields: dict = {}
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
            if self.append_only:
                self.manifest_fields = {"append_only": protect(self.final)}
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
            if self.append_only:
                protect(self.manifest_path)
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
            unprotect(self.final)
            self.final.unlink(missing_ok=True)
            self.manifest_path.unlink(missing_ok=True)


class LocalDestination:
    def __init__(self, spec: DestinationSpec):
        self.name = spec.name
        path = spec.config.get("path")
        if not path:
            raise DestinationError(f"destination {spec.name}: no path configured")
        self.root = Path(path)
        self.append_only = bool(spec.config.get("append_only"))
        self.probe_report = ""

    def probe(self) -> None:
        """Write, read back and delete a probe file; append-only: protect it first (the
        report says whether the immutable flag took) and undo that to delete it."""
        probe = self.root / f".dr-portal-probe-{secrets.token_hex(6)}"
        payload = secrets.token_bytes(64)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            _write_atomic(probe, payload)
            if probe.read_bytes() != payload:
                raise DestinationError(f"{self.root}: the probe file read back differently")
            if self.append_only:
                self.probe_report = "append-only: files made " + protect(probe)
        except OSError as exc:
            raise DestinationError(f"cannot write to {self.root}: {exc.strerror or exc}") from None
        finally:
            try:
                if probe.exists():
                    unprotect(probe)
                probe.unlink(missing_ok=True)
            except OSError:
                pass

    def open_write(self, artifact_key: str) -> LocalWriter:
        return LocalWriter(self.root, artifact_key, append_only=self.append_only)

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
        if self.append_only:
            raise DeletionRefused(
                f"destination {self.name} is append-only: the portal does not delete {location}"
            )
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
