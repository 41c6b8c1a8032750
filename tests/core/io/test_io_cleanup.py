"""Tests of cleanup_temp_files: leftovers of killed writers go, live writers' files stay."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lensing_ssc.core.io import cleanup_temp_files, temp_name_for


def _temp_with(directory: Path, *, pid: int | None = None, host: str | None = None) -> Path:
    """Create a temp file as if written by another pid and/or host."""
    name = temp_name_for(directory / "entry").name
    fields = name.split("~")
    if pid is not None:
        fields[2] = str(pid)
    if host is not None:
        fields[1] = host
    path = directory / "~".join(fields)
    path.write_bytes(b"partial")
    return path


def _dead_pid() -> int:
    """Return the pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_cleanup_removes_files_of_dead_writers_only(tmp_path: Path) -> None:
    """Leftovers of an exited process go; those of this live process and other files stay."""
    dead = _temp_with(tmp_path, pid=_dead_pid())
    mine = _temp_with(tmp_path)
    other = tmp_path / "entry"
    other.write_bytes(b"data")
    assert cleanup_temp_files(tmp_path) == [dead]
    assert not dead.exists()
    assert mine.exists()
    assert other.read_bytes() == b"data"


def test_cleanup_leaves_running_writers_alone_until_they_die(tmp_path: Path) -> None:
    """A temp file of another running process survives cleanup until that process is gone."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = _temp_with(tmp_path, pid=proc.pid)
        assert cleanup_temp_files(tmp_path) == []
        assert path.exists()
    finally:
        proc.kill()
        proc.wait()
    assert cleanup_temp_files(tmp_path) == [path]


def test_cleanup_treats_a_reused_pid_as_dead(tmp_path: Path) -> None:
    """A temp file older than the live process now holding its pid was left by a dead writer."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = _temp_with(tmp_path, pid=proc.pid)
        day_ago = time.time() - 86400
        os.utime(path, (day_ago, day_ago))
        assert cleanup_temp_files(tmp_path) == [path]
    finally:
        proc.kill()
        proc.wait()


def test_cleanup_of_other_hosts_needs_opting_in(tmp_path: Path) -> None:
    """Another node's temp files are kept unless only_dead_local_pids=False."""
    foreign = _temp_with(tmp_path, pid=_dead_pid(), host="other-node.cluster")
    assert cleanup_temp_files(tmp_path) == []
    assert cleanup_temp_files(tmp_path, only_dead_local_pids=False) == [foreign]


def test_cleanup_respects_older_than(tmp_path: Path) -> None:
    """Fresh temp files are kept when older_than asks for a minimum age."""
    path = _temp_with(tmp_path, pid=_dead_pid())
    assert cleanup_temp_files(tmp_path, older_than=3600) == []
    hour_ago = time.time() - 3700
    os.utime(path, (hour_ago, hour_ago))
    assert cleanup_temp_files(tmp_path, older_than=3600) == [path]


def test_cleanup_rejects_negative_age(tmp_path: Path) -> None:
    """A negative older_than is a ValueError naming the value."""
    with pytest.raises(ValueError, match=r"older_than must be >= 0 seconds, got -1"):
        cleanup_temp_files(tmp_path, older_than=-1)


def test_cleanup_of_missing_directory_raises(tmp_path: Path) -> None:
    """Cleaning a directory that does not exist is an error, not a silent no-op."""
    with pytest.raises(FileNotFoundError):
        cleanup_temp_files(tmp_path / "missing")
