"""Restoring chosen files or directories of a files backup into a directory (no Django).

Only the chosen members (a directory with everything under it) are extracted, with the
same escape-refusing filter as a full restore, into a private 0700 staging directory on
the target's file system; each is then renamed into place. Siblings are never touched.
A path that already exists is refused before anything is written, unless replacing was
confirmed: it is then renamed aside to `<path>.before_restore_<stamp>`, never deleted.
"""

import os
import posixpath
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from recovery.engine.files import _KeepFilter, compare_tree, tar_listing
from recovery.engine.pg import RestoreError
from recovery.engine.staging import private_dir


def clean_path(path: str) -> str:
    """A path relative to the backup's root ('etc/app.conf'); ValueError for anything else."""
    text = path.strip()
    if text.startswith("./"):
        text = text[2:]
    norm = posixpath.normpath(text) if text else ""
    if not norm or norm == "." or norm.startswith(("/", "../")) or norm == ".." or "\x00" in norm:
        raise ValueError(f"{path!r} is not a path inside the backup (relative, no '..')")
    return norm


def _member_name(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _chosen(listing: dict, paths: list[str]) -> dict:
    chosen = {}
    for path in paths:
        found = {
            _member_name(n): e
            for n, e in listing.items()
            if _member_name(n) == path or _member_name(n).startswith(path + "/")
        }
        if not found:
            raise RestoreError(
                f"the backup holds no {path!r} (manage.py backup_contents lists its paths)"
            )
        chosen.update(found)
    return chosen


@dataclass
class PathsRestored:
    restored: list[str]
    kept_aside: list[tuple[str, str]] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _destinations(root: Path, paths: list[str], replace: bool) -> None:
    """Refuse (before writing) a path whose parent leaves the target or that exists."""
    real_root = os.path.realpath(root)
    for path in paths:
        parent = os.path.realpath(root / path).rsplit("/", 1)[0] or "/"
        if os.path.commonpath([real_root, parent]) != real_root:
            raise RestoreError(f"{path} would be written outside {root} (a link on the way)")
        if os.path.lexists(root / path) and not replace:
            raise RestoreError(
                f"{root / path} already exists and replacing it was not confirmed: "
                "nothing was restored"
            )


def restore_paths(tar_path: str, target: str, paths: list[str], stamp: str, *, replace: bool):
    root = Path(target)
    if not root.is_dir():
        raise RestoreError(f"{target} is not a directory: paths are restored into one")
    paths = sorted({clean_path(p) for p in paths})
    paths = [p for p in paths if not any(p.startswith(q + "/") for q in paths)]
    chosen = _chosen(tar_listing(tar_path), paths)
    _destinations(root, paths, replace)
    staging = private_dir(root)
    result = PathsRestored(restored=paths, compared=sorted(chosen))
    try:
        keep = _KeepFilter()
        with tarfile.open(tar_path, "r:*") as tar:
            members = [m for m in tar if _member_name(m.name.rstrip("/")) in chosen]
            tar.extractall(staging, members=members, filter=keep)
        result.skipped = keep.skipped
        for path in paths:
            dst = root / path
            if os.path.lexists(dst):
                aside = f"{dst}.before_restore_{stamp}"
                os.rename(dst, aside)
                result.kept_aside.append((str(dst), aside))
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging / path, dst)
    except (tarfile.TarError, OSError) as exc:
        raise RestoreError(f"restoring the chosen paths failed: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.problems = compare_tree(str(root), chosen, skipped=result.skipped)
    return result
