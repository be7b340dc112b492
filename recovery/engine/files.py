"""Files restores: a tar extracted with everything it holds (symlinks with absolute targets,
FIFOs, devices, hard links, setuid/setgid/sticky modes, owners, mtimes), compared with its
own listing, and switched into place without deleting live data first.

Extraction happens in a private 0700 directory on the target's file system. Where the
target can be renamed, the old tree is renamed aside and the new one renamed in; where it
cannot (a mount point, EBUSY/EXDEV), its entries are moved into a kept-aside directory
inside it and the restored entries moved in, so the volume is never emptied.
"""

import errno
import grp
import os
import pwd
import shutil
import sqlite3
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from recovery.engine.pg import RestoreError
from recovery.engine.staging import private_dir

KIND_OF = {
    tarfile.DIRTYPE: "dir",
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "chardev",
    tarfile.BLKTYPE: "blockdev",
}
FORMAT_OF = {
    "dir": stat.S_IFDIR,
    "file": stat.S_IFREG,
    "symlink": stat.S_IFLNK,
    "fifo": stat.S_IFIFO,
    "chardev": stat.S_IFCHR,
    "blockdev": stat.S_IFBLK,
}
DEVICES = ("chardev", "blockdev")
# A mount point's own entries (mkfs and e2fsck use lost+found): left where they are.
FILE_SYSTEM_OWN = ("lost+found",)


def sqlite_integrity(path: str) -> None:
    """Raise RestoreError unless PRAGMA integrity_check says ok."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise RestoreError(f"the restored SQLite file cannot be opened: {exc}") from None
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise RestoreError(f"the restored file is not a usable SQLite database: {exc}") from None
    finally:
        conn.close()
    if rows != ["ok"]:
        raise RestoreError("PRAGMA integrity_check: " + "; ".join(rows[:5]))


# --- the archive's own listing ----------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """What the archive says one member is: compared with what lands on disk."""

    kind: str
    size: int = 0
    mode: int = 0
    linkname: str = ""
    uid: int = 0
    gid: int = 0
    uname: str = ""
    gname: str = ""
    mtime: float = 0.0
    device: tuple[int, int] = (0, 0)


def _entry(member: tarfile.TarInfo) -> Entry:
    kind = KIND_OF.get(member.type, "other")
    return Entry(
        kind=kind,
        size=member.size if kind == "file" else 0,
        mode=member.mode & 0o7777,
        linkname=member.linkname if kind in ("symlink", "hardlink") else "",
        uid=member.uid,
        gid=member.gid,
        uname=member.uname,
        gname=member.gname,
        mtime=float(member.mtime),
        device=(member.devmajor, member.devminor) if kind in DEVICES else (0, 0),
    )


def tar_listing(tar_path: str) -> dict[str, Entry]:
    """{name: Entry} of a tar's members."""
    listing = {}
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            for member in tar:
                listing[member.name.rstrip("/") or "."] = _entry(member)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RestoreError(f"the restored tar cannot be read: {exc}") from None
    return listing


# --- extraction -------------------------------------------------------------------


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


class _KeepFilter:
    """An extraction filter that refuses escapes but keeps what a restore must keep.

    tarfile's 'data' filter refuses absolute symlinks and strips setuid/setgid; its 'tar'
    filter strips them too. This one refuses absolute or '..' member names, members whose
    path (following links extracted so far) leaves the destination, and hard links to
    outside; it keeps modes, owners, special files and a symlink's target as written (a
    link's content is never followed while extracting: later members are checked against
    where they would really land). Devices are skipped, and named, when not root.
    """

    def __init__(self):
        self.skipped: list[str] = []

    def __call__(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        root = os.path.realpath(dest)
        name = member.name
        if os.path.isabs(name) or name.startswith("/"):
            raise tarfile.AbsolutePathError(member)
        where = os.path.realpath(os.path.join(root, name))
        if not _inside(root, where):
            raise tarfile.OutsideDestinationError(member, where)
        if member.islnk():
            linked = os.path.realpath(os.path.join(root, member.linkname))
            if not _inside(root, linked):
                raise tarfile.LinkOutsideDestinationError(member, linked)
        if member.isdev() and os.geteuid() != 0:
            self.skipped.append(name)
            return None
        return member


def extract_tar(tar_path: str, target: str) -> tuple[dict[str, Entry], list[str]]:
    """Extract everything safely into `target`; return (listing, names skipped)."""
    listing = tar_listing(tar_path)
    keep = _KeepFilter()
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            tar.extractall(target, filter=keep)
    except (tarfile.TarError, OSError) as exc:
        raise RestoreError(f"extracting the files failed: {exc}") from None
    return listing, keep.skipped


def _expected_owner(entry: Entry) -> tuple[int, int]:
    """The owner tarfile gives a member as root: by name when the name exists here."""
    uid, gid = entry.uid, entry.gid
    try:
        uid = pwd.getpwnam(entry.uname).pw_uid if entry.uname else uid
    except KeyError:
        pass
    try:
        gid = grp.getgrnam(entry.gname).gr_gid if entry.gname else gid
    except KeyError:
        pass
    return uid, gid


def _compare_one(root: Path, name: str, entry: Entry, owners: bool) -> str:
    path = root / name
    try:
        st = os.lstat(path)
    except OSError:
        return f"missing {entry.kind} {name}"
    if entry.kind == "hardlink":
        try:
            same = os.lstat(root / entry.linkname).st_ino == st.st_ino
        except OSError:
            same = False
        return "" if same else f"{name}: not a hard link of {entry.linkname}"
    fmt = FORMAT_OF.get(entry.kind)
    if fmt is not None and stat.S_IFMT(st.st_mode) != fmt:
        return f"{name}: not a {entry.kind}"
    if entry.kind == "symlink":
        target = os.readlink(path)
        return (
            "" if target == entry.linkname else f"{name}: links to {target}, not {entry.linkname}"
        )
    if stat.S_IMODE(st.st_mode) != entry.mode:
        return f"{name}: mode {stat.S_IMODE(st.st_mode):04o}, expected {entry.mode:04o}"
    if entry.kind == "file" and st.st_size != entry.size:
        return f"{name}: {st.st_size} bytes, expected {entry.size}"
    if entry.kind in DEVICES and (os.major(st.st_rdev), os.minor(st.st_rdev)) != entry.device:
        return (
            f"{name}: device {os.major(st.st_rdev)},{os.minor(st.st_rdev)}, expected {entry.device}"
        )
    if abs(st.st_mtime - entry.mtime) >= 1:
        return f"{name}: modified time differs from the archive"
    if owners and (st.st_uid, st.st_gid) != _expected_owner(entry):
        return f"{name}: owner {st.st_uid}:{st.st_gid}, expected {entry.uid}:{entry.gid}"
    return ""


def compare_tree(
    target: str, listing: dict[str, Entry], *, skipped: list[str] | tuple = ()
) -> list[str]:
    """Differences between an extracted directory and the archive listing (empty = identical):
    type, mode (setuid/setgid/sticky included), link target, size, device, mtime and, when
    running as root (the only case where extraction sets them), owner."""
    owners = os.geteuid() == 0
    left_out = {name.rstrip("/") for name in skipped}
    problems = []
    for name, entry in sorted(listing.items()):
        if name in left_out or entry.kind == "other":
            continue
        problem = _compare_one(Path(target), name, entry, owners)
        if problem:
            problems.append(problem)
    return problems


def extract_checked(tar_path: str, into: Path) -> tuple[dict[str, Entry], list[str]]:
    """Extract into a new directory `into` and compare; raise RestoreError on any difference."""
    listing, skipped = extract_tar(tar_path, str(into))
    if not into.is_dir():  # an archive without a "." member still restores into a directory
        into.mkdir(mode=0o700)
    problems = compare_tree(str(into), listing, skipped=skipped)
    if problems:
        raise RestoreError("restored files differ: " + "; ".join(problems[:5]))
    return listing, skipped


# --- switching a restored tree into place ------------------------------------------


@dataclass
class TreeRestore:
    kept_aside: str | None = None
    in_place: bool = False  # restored inside the target (a mount point), not by renaming it
    skipped: list[str] | None = None


def restore_tree(tar_path: str, target: str, stamp: str) -> TreeRestore:
    """Restore a tar onto `target`, keeping whatever was there aside; never delete live data.

    Staging is a private 0700 directory beside the target (same file system). Where the
    target is a mount point, or renaming it fails with EBUSY/EXDEV, the restore happens
    inside it instead (see restore_inside).
    """
    path = Path(target)
    if path.is_symlink():
        raise RestoreError(f"{path} is a symbolic link; refusing to restore through it")
    if os.path.lexists(path) and not path.is_dir():
        raise RestoreError(f"{path} exists and is not a directory; nothing was changed")
    if path.is_dir() and _is_mount_point(path):
        return restore_inside(tar_path, path, stamp)
    staging = private_dir(path.parent)
    try:
        tree = staging / "tree"
        _, skipped = extract_checked(tar_path, tree)
        if not os.path.lexists(path):
            _rename(tree, path)
            return TreeRestore(skipped=skipped)
        kept = path.with_name(f"{path.name}.before_restore_{stamp}")
        if os.path.lexists(kept):
            raise RestoreError(f"{kept} already exists; not overwriting it")
        try:
            os.rename(path, kept)
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.EXDEV):
                raise RestoreError(f"cannot move {path} aside: {exc.strerror}") from None
        else:
            try:
                os.rename(tree, path)
            except OSError as exc:
                os.rename(kept, path)
                raise RestoreError(f"cannot move the restored tree into place: {exc}") from None
            return TreeRestore(kept_aside=str(kept), skipped=skipped)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return restore_inside(tar_path, path, stamp)  # the rename said EBUSY or EXDEV


def restore_inside(tar_path: str, target: Path, stamp: str) -> TreeRestore:
    """Restore into a directory that cannot be renamed (a mount point).

    Everything happens on the target's own file system: extract into a private directory
    inside it, move its current entries into `.dr-kept-aside-<stamp>/` inside it, move the
    restored entries in, then give the directory itself the archive's mode, owner and
    mtime. Any failure moves every entry back: the live data is never deleted.
    """
    staging = private_dir(target)
    kept = target / f".dr-kept-aside-{stamp}"
    moved: list[tuple[Path, Path]] = []
    try:
        tree = staging / "tree"
        _, skipped = extract_checked(tar_path, tree)
        root_stat = os.lstat(tree)  # before moving its entries out changes its mtime
        os.mkdir(kept, 0o700)
        for name in os.listdir(target):
            if name not in (staging.name, kept.name, *FILE_SYSTEM_OWN):
                _move(target / name, kept / name, moved)
        for name in os.listdir(tree):
            if name in FILE_SYSTEM_OWN and os.path.lexists(target / name):
                continue
            _move(tree / name, target / name, moved)
        _copy_root_attributes(root_stat, target)
    except BaseException as exc:
        problems = _undo(moved)
        if os.path.isdir(kept) and not os.listdir(kept):
            os.rmdir(kept)
        if problems:
            raise RestoreError(
                f"restoring inside {target} failed ({exc}) and moving back failed: "
                + "; ".join(problems[:5])
            ) from None
        if isinstance(exc, OSError):
            raise RestoreError(f"restoring inside {target} failed: {exc}") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TreeRestore(kept_aside=str(kept), in_place=True, skipped=skipped)


def _is_mount_point(path: Path) -> bool:
    try:
        return os.path.ismount(path) or os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


def _rename(src: Path, dst: Path) -> None:
    try:
        os.rename(src, dst)
    except OSError as exc:
        raise RestoreError(f"cannot move the restored tree to {dst}: {exc.strerror}") from None


def _move(src: Path, dst: Path, moved: list) -> None:
    os.rename(src, dst)
    moved.append((src, dst))


def _undo(moved: list[tuple[Path, Path]]) -> list[str]:
    problems = []
    for src, dst in reversed(moved):
        try:
            os.rename(dst, src)
        except OSError as exc:
            problems.append(f"{dst} -> {src}: {exc.strerror}")
    return problems


def _copy_root_attributes(st: os.stat_result, target: Path) -> None:
    if os.geteuid() == 0:
        os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
