"""atomic_write: the files it leaves are readable as any new file is, and durable once it returns."""

import errno
import os
import shutil
import stat

import pytest

from vfcross import io


def test_atomic_write_gives_the_file_the_mode_the_umask_allows(tmp_path):
    """A report or checkpoint in a shared folder must be readable by the group (mkstemp made every file 0600)."""
    previous = os.umask(0o002)
    try:
        io.atomic_write(tmp_path / "report.json", lambda stream: stream.write(b"{}"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o664
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left behind


@pytest.mark.skipif(os.name != "posix", reason="folders can be fsynced on POSIX systems only")
def test_atomic_write_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "fsync", fsync)
    monkeypatch.setattr(io.os, "replace", replace)
    io.atomic_write(tmp_path / "checkpoint.pt", lambda stream: stream.write(b"weights"))
    assert events == ["fsync file", "rename", "fsync folder"]
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"weights"


def test_a_write_that_fails_on_a_full_disk_names_the_file_and_the_cause(tmp_path, monkeypatch):
    def torch_like_failure(stream):
        stream.write(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 476691904 vs 476691796")

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(io.shutil, "disk_usage", lambda folder: usage._replace(free=1_000_000))
    with pytest.raises(OSError, match=r"checkpoint\.pt: not written, its disk is full \(\[enforce") as caught:
        io.atomic_write(tmp_path / "checkpoint.pt", torch_like_failure)
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value.__cause__, RuntimeError)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone, no checkpoint left


def test_a_write_that_fails_with_room_on_the_disk_raises_its_own_error(tmp_path, monkeypatch):
    def failure(stream):
        raise ValueError("not serialisable")

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(io.shutil, "disk_usage", lambda folder: usage._replace(free=10 * 2**30))

    with pytest.raises(ValueError, match="not serialisable"):
        io.atomic_write(tmp_path / "record.json", failure)
    assert list(tmp_path.iterdir()) == []
