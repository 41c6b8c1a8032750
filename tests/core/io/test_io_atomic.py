"""Tests of atomic_write, atomic_open, temp names and the clean-up of leftover temp files."""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.core.io import (
    TEMP_SUFFIX,
    _atomic,
    atomic_open,
    atomic_write,
    fsync_directory,
    is_temp_file,
    temp_name_for,
)

try:
    import h5py
except ImportError:  # pragma: no cover - exercised only without the extra
    h5py = None

HAS_PROC_FD = Path("/proc/self/fd").is_dir()
needs_proc = pytest.mark.skipif(not HAS_PROC_FD, reason="needs /proc/self/fd to name fds")

OLD = b"old content\n" * 100
NEW = b"new content!\n" * 200


def fd_path(fd: int) -> str:
    """Return the path an open fd refers to."""
    return os.readlink(f"/proc/self/fd/{fd}")


def temp_files(directory: Path) -> list[Path]:
    """Return the temp files in a directory."""
    return sorted(p for p in directory.iterdir() if is_temp_file(p))


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A file holding OLD, about to be replaced."""
    path = tmp_path / "state.bin"
    path.write_bytes(OLD)
    return path


# --- the happy path -------------------------------------------------------------------------


def test_atomic_write_replaces_content_and_returns_size(target: Path) -> None:
    """atomic_write leaves exactly the new bytes at the target and reports how many."""
    assert atomic_write(target, NEW) == len(NEW)
    assert target.read_bytes() == NEW
    assert temp_files(target.parent) == []


def test_atomic_write_creates_missing_target(tmp_path: Path) -> None:
    """A target that does not exist yet is created."""
    path = tmp_path / "fresh.bin"
    atomic_write(str(path), b"abc")
    assert path.read_bytes() == b"abc"


def test_atomic_write_chunks_are_written_in_order(target: Path) -> None:
    """An iterable of header, memoryview, strided and datetime arrays lands back to back."""
    arr = np.arange(1000, dtype=np.float64)
    stamps = np.array(["2024-01-01", "2024-06-30"], dtype="M8[D]")
    chunks = [b"LSSC1\n", memoryview(arr), arr[::3], bytearray(b"end"), stamps]
    expected = b"LSSC1\n" + arr.tobytes() + arr[::3].tobytes() + b"end" + stamps.tobytes()
    assert atomic_write(target, (chunk for chunk in chunks)) == len(expected)
    assert target.read_bytes() == expected


def test_atomic_write_does_not_copy_a_large_array(tmp_path: Path) -> None:
    """Writing [header, 64 MB array] allocates far less than the array: nothing is joined."""
    arr = np.ones(8 << 20, dtype=np.float64)
    tracemalloc.start()
    try:
        atomic_write(tmp_path / "big.bin", [b"header", arr], fsync=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert (tmp_path / "big.bin").stat().st_size == arr.nbytes + 6


def test_atomic_write_keeps_permissions_of_replaced_file(target: Path) -> None:
    """A target made private (0600) stays private after being replaced."""
    target.chmod(0o600)
    atomic_write(target, NEW)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_atomic_open_commits_only_on_clean_exit(target: Path) -> None:
    """Inside the block readers still see the old file; after it, the new one."""
    with atomic_open(target) as fh:
        fh.write(NEW[:10])
        fh.write(NEW[10:])
        assert target.read_bytes() == OLD
        assert len(temp_files(target.parent)) == 1
    assert target.read_bytes() == NEW
    assert temp_files(target.parent) == []


def test_atomic_open_discards_on_exception(target: Path) -> None:
    """An exception in the block propagates, leaves the target untouched and no temp file."""

    def write_then_fail() -> None:
        with atomic_open(target) as fh:
            fh.write(NEW)
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        write_then_fail()
    assert target.read_bytes() == OLD
    assert temp_files(target.parent) == []


def test_atomic_open_read_write_reads_back_what_it_wrote_before_the_commit(target: Path) -> None:
    """mode "w+b" gives a seekable file that reads its own writes; the target changes on exit."""
    with atomic_open(target, "w+b") as fh:
        fh.write(NEW)
        fh.seek(4)
        assert fh.read(9) == NEW[4:13]
        fh.seek(0)
        fh.write(b"NEW")
        assert target.read_bytes() == OLD
    assert target.read_bytes() == b"NEW" + NEW[3:]
    assert temp_files(target.parent) == []


@pytest.mark.skipif(h5py is None, reason="needs h5py")
def test_h5py_writes_through_atomic_open_and_the_file_reads_back(target: Path) -> None:
    """h5py.File on an "w+b" atomic file writes a normal HDF5 file, seen only after the block."""
    values = np.arange(50_000, dtype=np.float64).reshape(500, 100)
    with atomic_open(target, "w+b") as fh:
        with h5py.File(fh, "w") as handle:
            handle.create_dataset("sets/a/samples", data=values)
            handle["sets/a"].attrs["units"] = "1"
        assert target.read_bytes() == OLD
    with h5py.File(target, "r") as handle:
        np.testing.assert_array_equal(handle["sets/a/samples"][...], values)
        assert handle["sets/a"].attrs["units"] == "1"


@pytest.mark.parametrize("mode", ["rb", "r+b", "ab", "w", "xb", "w+"])
def test_atomic_open_refuses_other_modes_before_touching_anything(target: Path, mode: str) -> None:
    """Only "wb" and "w+b" make sense for a new file; any other mode is refused, nothing made."""
    refused = f"mode must be 'wb' or 'w\\+b', got '{re.escape(mode)}'"
    with pytest.raises(ValueError, match=refused), atomic_open(target, mode):
        pytest.fail("the block ran")
    assert target.read_bytes() == OLD
    assert temp_files(target.parent) == []


def test_big_writes_are_streamed_to_disk_as_they_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With fsync on, every slice of a big write is handed to writeback (and the one before
    dropped from the page cache) while writing goes on, front to back; fsync=False does not."""
    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(_atomic, "_STREAM_SLICE", 1 << 20)
    monkeypatch.setattr(
        _atomic,
        "_fadvise",
        lambda fd, offset, length, advice: calls.append((offset, length, advice)),
    )
    data = bytes(range(256)) * (5 * 4096 + 7)  # a little over 5 MiB
    path = tmp_path / "big.bin"
    atomic_write(path, [b"h", data])
    assert path.read_bytes() == b"h" + data
    assert len(calls) == 5
    assert {advice for _, _, advice in calls} == {os.POSIX_FADV_DONTNEED}
    ends = [offset + length for offset, length, _ in calls]
    assert calls[0][0] == 0
    assert all(calls[i][0] <= ends[i - 1] < ends[i] for i in range(1, len(calls)))
    assert ends[-1] > 5 << 20
    calls.clear()
    atomic_write(path, data, fsync=False)
    assert calls == []


@needs_proc
def test_replaced_big_file_is_released_off_the_callers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replacing a big file hands the last hold on the old file to a background release,
    which closes it: the caller does not wait for its blocks to be freed, and no
    descriptor leaks."""
    monkeypatch.setattr(_atomic, "_RELEASE_IN_BACKGROUND", 1000)
    path = tmp_path / "big.bin"
    path.write_bytes(b"o" * 5000)
    held: list[int] = []
    monkeypatch.setattr(_atomic, "_release_later", held.append)
    atomic_write(path, b"n" * 6000)
    assert path.read_bytes() == b"n" * 6000
    assert len(held) == 1
    assert fd_path(held[0]).endswith("big.bin (deleted)")
    assert os.pread(held[0], 10, 0) == b"o" * 10
    os.close(held[0])
    monkeypatch.undo()

    monkeypatch.setattr(_atomic, "_RELEASE_IN_BACKGROUND", 1000)
    before = set(os.listdir("/proc/self/fd"))
    atomic_write(path, b"m" * 7000)
    for thread in threading.enumerate():
        if thread.name == "lensing_ssc-io-release":
            thread.join(timeout=10)
    assert set(os.listdir("/proc/self/fd")) == before
    assert path.read_bytes() == b"m" * 7000


@needs_proc
def test_failed_rename_over_a_big_file_leaks_nothing(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rename over a big file fails, the hold on the old file is closed at once and
    the old content stays."""
    monkeypatch.setattr(_atomic, "_RELEASE_IN_BACKGROUND", 10)
    before = set(os.listdir("/proc/self/fd"))

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(errno.EXDEV, "injected rename failure")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="injected rename failure"):
        atomic_write(target, NEW)
    monkeypatch.undo()
    assert set(os.listdir("/proc/self/fd")) == before
    assert target.read_bytes() == OLD
    assert temp_files(target.parent) == []


def test_small_files_are_released_in_line(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing a small file starts no background thread."""
    held: list[int] = []
    monkeypatch.setattr(_atomic, "_release_later", held.append)
    atomic_write(target, NEW)
    assert held == []


# --- bad input ------------------------------------------------------------------------------


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    """Writing into a directory that does not exist names that directory and the fix."""
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError) as info:
        atomic_write(missing / "x.bin", b"data")
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)
    assert "does not exist" in str(info.value)
    assert "mkdir" in str(info.value)
    assert not missing.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("text", "atomic_write needs bytes, got str; encode it first"),
        (42, "atomic_write needs bytes-like data or an iterable of bytes-like chunks, got int"),
        ([b"ok", "text"], "expected bytes-like data, got str; encode it first"),
        ([b"ok", 3.5], "expected bytes-like data (bytes, bytearray, memoryview, numpy array)"),
    ],
)
def test_non_bytes_data_is_rejected_without_touching_target(
    target: Path, data: object, message: str
) -> None:
    """Text, numbers and bad chunks raise TypeError and leave the target and directory clean."""
    with pytest.raises(TypeError) as info:
        atomic_write(target, data)
    assert str(info.value).startswith(message)
    assert target.read_bytes() == OLD
    assert temp_files(target.parent) == []


# --- the order of fsync, close, rename, directory fsync -------------------------------------


@needs_proc
def test_fsync_then_close_then_rename_then_directory_fsync(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temp file is complete and synced before the rename; the directory is synced after."""
    calls: list[tuple[str, ...]] = []
    real_fsync, real_close, real_replace = os.fsync, os.close, os.replace

    def fsync(fd: int) -> None:
        path = fd_path(fd)
        calls.append(("fsync", path, str(os.fstat(fd).st_size)))
        real_fsync(fd)

    def close(fd: int) -> None:
        calls.append(("close", fd_path(fd)))
        real_close(fd)

    def replace(src: str, dst: str) -> None:
        calls.append(("replace", os.fspath(src), os.fspath(dst), str(Path(src).stat().st_size)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "close", close)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write(target, NEW)
    monkeypatch.undo()

    temp = calls[0][1]
    assert is_temp_file(temp)
    assert Path(temp).parent == target.parent
    size = str(len(NEW))
    assert calls == [
        ("fsync", temp, size),
        ("close", temp),
        ("replace", temp, str(target), size),
        ("fsync", str(target.parent), calls[3][2]),
        ("close", str(target.parent)),
    ]
    assert target.read_bytes() == NEW


@needs_proc
def test_atomic_open_syncs_in_the_same_order(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """atomic_open flushes its buffer, syncs the temp file, renames, then syncs the directory."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", fd_path(fd)))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        calls.append(("replace", Path(src).read_bytes().decode()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with atomic_open(target) as fh:
        fh.write(b"buffered")
    monkeypatch.undo()
    assert [name for name, _ in calls] == ["fsync", "replace", "fsync"]
    assert is_temp_file(calls[0][1])
    assert calls[1] == ("replace", "buffered")
    assert calls[2] == ("fsync", str(target.parent))


def test_fsync_false_skips_every_fsync(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With fsync=False no fsync is issued, and the content is still replaced atomically."""
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    atomic_write(target, NEW, fsync=False)
    assert synced == []
    assert target.read_bytes() == NEW


# --- a failure at each step -----------------------------------------------------------------


def _fail_on_temp(real: Callable[..., Any], exc: OSError) -> Callable[..., Any]:
    """Wrap an fd-taking os function so that it fails on temp files only."""
    closes = real is os.close  # decided now: once patched, os.close is this wrapper

    def wrapper(fd: int, *args: Any) -> Any:
        if is_temp_file(fd_path(fd)):
            if closes:  # a failed close still releases the descriptor, as the kernel does
                real(fd)
            raise exc
        return real(fd, *args)

    return wrapper


@needs_proc
@pytest.mark.parametrize("step", ["open", "write", "fsync", "close", "replace"])
def test_failure_before_rename_leaves_target_untouched(
    target: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Whichever step fails before the rename, the error propagates, the old content stays
    and no temp file is left behind."""
    error = OSError(errno.ENOSPC, f"injected failure at {step}")
    if step == "open":
        real_open = os.open

        def failing_open(path: str, flags: int, mode: int = 0o777) -> int:
            if is_temp_file(path):
                raise error
            return real_open(path, flags, mode)

        monkeypatch.setattr(os, "open", failing_open)
    elif step == "replace":

        def failing_replace(src: str, dst: str) -> None:
            raise error

        monkeypatch.setattr(os, "replace", failing_replace)
    else:
        monkeypatch.setattr(os, step, _fail_on_temp(getattr(os, step), error))
    with pytest.raises(OSError, match=f"injected failure at {step}"):
        atomic_write(target, [NEW[:5], NEW[5:]])
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert temp_files(target.parent) == []


def test_failing_chunk_iterator_leaves_target_untouched(target: Path) -> None:
    """An iterator that raises halfway through aborts the write cleanly."""

    def chunks() -> Iterator[bytes]:
        yield NEW
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        atomic_write(target, chunks())
    assert target.read_bytes() == OLD
    assert temp_files(target.parent) == []


def test_keyboard_interrupt_mid_write_cleans_up(target: Path) -> None:
    """Ctrl-C while chunks are being written removes the temp file and re-raises."""

    def chunks() -> Iterator[bytes]:
        yield NEW
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, chunks())
    assert target.read_bytes() == OLD
    assert temp_files(target.parent) == []


@needs_proc
def test_failed_directory_fsync_is_reported_after_the_rename(
    target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If only the final directory fsync fails, the new content is in place and the error
    is raised so the caller knows durability is not guaranteed; no temp file remains."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if Path(fd_path(fd)).is_dir():
            raise OSError(errno.EIO, "injected directory fsync failure")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="injected directory fsync failure"):
        atomic_write(target, NEW)
    monkeypatch.undo()
    assert target.read_bytes() == NEW
    assert temp_files(target.parent) == []


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOTSUP])
def test_directory_fsync_unsupported_by_filesystem_is_tolerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Filesystems that cannot sync directories (EINVAL/ENOTSUP) do not fail the write."""

    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fsync)
    fsync_directory(tmp_path)


def test_fsync_directory_on_missing_path_raises(tmp_path: Path) -> None:
    """Syncing a directory that does not exist raises FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        fsync_directory(tmp_path / "missing")


# --- temp names -----------------------------------------------------------------------------


def test_temp_name_sits_beside_target_and_names_its_writer(tmp_path: Path) -> None:
    """Temp names are hidden, in the target's directory, carry host, pid and thread, and
    are unique per call."""
    target = tmp_path / "cache.entry"
    first, second = temp_name_for(target), temp_name_for(target)
    assert first != second
    assert first.parent == tmp_path
    assert first.name.startswith(".cache.entry~")
    assert first.name.endswith(TEMP_SUFFIX)
    host = socket.gethostname()[:64]
    fields = first.name.split("~")
    assert fields[1] == "".join(c if c.isalnum() or c in ".-" else "_" for c in host)
    assert fields[2] == str(os.getpid())
    assert fields[3] == str(threading.get_native_id())
    assert is_temp_file(first)


def test_temp_name_of_a_long_target_fits_filesystem_limits(tmp_path: Path) -> None:
    """A 250-character target name still gives a temp name below 255 bytes that works."""
    target = tmp_path / ("k" * 250)
    assert len(temp_name_for(target).name.encode()) < 255
    atomic_write(target, b"x")
    assert target.read_bytes() == b"x"


@pytest.mark.parametrize(
    "name", ["state.bin", ".state.bin", "x" + TEMP_SUFFIX, ".a~host~12~34~zzzzzzzz" + TEMP_SUFFIX]
)
def test_ordinary_names_are_not_temp_files(name: str) -> None:
    """Targets and look-alike names are never taken for temp files."""
    assert not is_temp_file(name)
