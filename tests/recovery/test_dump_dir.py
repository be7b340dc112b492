"""Unpacking a parallel dump's tar: pg_dump's own files only, written new and private."""

import io
import os
import stat
import tarfile

import pytest

from backups.engine.pg_parallel import iter_tar
from recovery.engine.dumpdir import DumpDirWriter
from recovery.engine.pg import RestoreError


def _dump_dir(path):
    path.mkdir()
    (path / "toc.dat").write_bytes(b"PGDMP" + bytes(range(256)) * 3)
    (path / "3001.dat").write_bytes(b"1\tone\n2\ttwo\n\\.\n\n\n")
    (path / "3002.dat").write_bytes(b"")
    (path / "blobs.toc").write_bytes(b"16400 blob_16400.dat\n")
    (path / "blob_16400.dat").write_bytes(os.urandom(70_000))
    return path


def _feed(data: bytes, into, step: int) -> DumpDirWriter:
    into.mkdir(0o700)
    writer = DumpDirWriter(into)
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
    writer.close()
    return writer


@pytest.mark.parametrize("step", [7, 512, 1 << 20])
def test_tar_of_a_dump_unpacks_to_the_same_files_whatever_the_chunking(tmp_path, step):
    source = _dump_dir(tmp_path / "dump")
    data = b"".join(iter_tar(source, chunk=1000))
    writer = _feed(data, tmp_path / "out", step)
    assert writer.names[0] == "toc.dat"
    for path in source.iterdir():
        copy = tmp_path / "out" / path.name
        assert copy.read_bytes() == path.read_bytes()
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600


def _tar_with(member: tarfile.TarInfo, body: bytes = b"x") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        toc = tarfile.TarInfo("toc.dat")
        toc.size = 5
        tar.addfile(toc, io.BytesIO(b"PGDMP"))
        if member.isreg():
            member.size = len(body)
            tar.addfile(member, io.BytesIO(body))
        else:
            tar.addfile(member)
    return out.getvalue()


def _link(name, kind, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../escape.dat"),
        tarfile.TarInfo("sub/3001.dat"),
        tarfile.TarInfo("restore.sql"),
        tarfile.TarInfo(".bashrc"),
        _link("3001.dat", tarfile.SYMTYPE, "/etc/passwd"),
        _link("3002.dat", tarfile.LNKTYPE, "toc.dat"),
    ],
    ids=["parent", "subdir", "unknown", "dotfile", "symlink", "hardlink"],
)
def test_anything_but_a_plain_dump_file_is_refused(tmp_path, member):
    with pytest.raises(RestoreError, match="not a pg_dump file"):
        _feed(_tar_with(member), tmp_path / "out", 4096)
    assert not (tmp_path / "escape.dat").exists()
    assert {p.name for p in (tmp_path / "out").iterdir()} <= {"toc.dat"}


def test_a_truncated_or_damaged_tar_is_refused(tmp_path):
    data = b"".join(iter_tar(_dump_dir(tmp_path / "dump")))
    with pytest.raises(RestoreError, match="ends inside a file"):
        _feed(data[: len(data) // 2], tmp_path / "cut", 4096)
    with pytest.raises(RestoreError, match="without its end marker"):
        _feed(data[:-1024], tmp_path / "no-end", 4096)
    damaged = bytearray(data)
    damaged[10] ^= 1  # in toc.dat's header name
    with pytest.raises(RestoreError, match="bad checksum"):
        _feed(bytes(damaged), tmp_path / "bad", 4096)


def test_a_planted_file_is_never_overwritten(tmp_path):
    data = b"".join(iter_tar(_dump_dir(tmp_path / "dump")))
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").write_text("keep")
    os.symlink(tmp_path / "elsewhere", out / "3001.dat")
    writer = DumpDirWriter(out)
    with pytest.raises(RestoreError, match="already exists|cannot create"):
        writer.write(data)
    assert (tmp_path / "elsewhere").read_text() == "keep"
