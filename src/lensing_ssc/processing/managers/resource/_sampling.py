"""Measuring the job and the machine: one :class:`ResourceUsage` per call, cheaply.

Covers the job's own figures (resident memory and CPU time of this process and all its
descendants) and the machine's (memory, swap, disk of the run directory). On Linux the job
is read from ``/proc`` directly: one ``stat`` file per process and the ``children`` file
of each thread, through file descriptors kept open between samples, so a sample costs tens
of microseconds whatever the process's size. ``psutil.Process.memory_full_info`` walks
every page mapping instead and grows with the process, and ``Process.children`` scans the
whole process table. Machine memory and swap come from one read of ``/proc/meminfo``:
``psutil.swap_memory`` also reads ``/proc/vmstat`` and warns on every call where that file
lacks swap counters, which a monitor thread must not do. Elsewhere psutil's cheap counters
are used. A figure that cannot be read (a child that vanished, an unreadable file) is
skipped, never raised.

Limits are not here: see :mod:`.limits` and :mod:`.usage`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from lensing_ssc.processing.managers.resource._usage import ResourceUsage

__all__ = [
    "JobFigures",
    "JobReader",
    "MachineFigures",
    "ProcfsJobReader",
    "PsutilJobReader",
    "Sampler",
    "UsageSampler",
    "default_job_reader",
]

_log = logging.getLogger("lensing_ssc.processing.managers.resource")

MIB = 1024 * 1024
GIB = 1024 * MIB
# CPU percent is measured over at least this many seconds; closer samples reuse the last.
_MIN_CPU_SPAN = 0.05
_READ_SIZE = 65536


@dataclass(frozen=True)
class JobFigures:
    """Resident bytes, CPU seconds and process count of a process tree."""

    rss_bytes: int
    cpu_seconds: float
    process_count: int


class Sampler(Protocol):
    """Takes one :class:`ResourceUsage` per call; the ResourceManager's ``sampler=``."""

    def sample(self) -> ResourceUsage: ...

    def close(self) -> None: ...


class JobReader(Protocol):
    """Reads the job's figures; ``None`` when even this process cannot be read."""

    def read(self) -> JobFigures | None: ...

    def close(self) -> None: ...


class ProcfsJobReader:
    """The process tree's figures from ``/proc``, with descriptors kept open.

    CPU time is ``utime + stime + cutime + cstime`` of every live process in the tree, so
    the time of a child that exited and was reaped stays counted by its parent.

    Args:
        pid: Root of the tree (this process by default).
        proc: Where procfs is mounted.
        max_open: Most descriptors kept open; beyond it files are opened per read.
    """

    def __init__(self, pid: int | None = None, *, proc: str = "/proc", max_open: int = 256) -> None:
        self.pid = os.getpid() if pid is None else pid
        self._proc = proc
        self._max_open = max_open
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._ticks = float(os.sysconf("SC_CLK_TCK"))
        # pid -> {tid: fd} of each thread's children file, with tid 0 for the stat file.
        self._fds: dict[int, dict[int, int]] = {}
        self._open = 0
        self._lock = threading.Lock()

    @staticmethod
    def available(proc: str = "/proc") -> bool:
        """Whether this system exposes the files the reader needs (Linux procfs)."""
        tid = threading.get_native_id()
        return (
            Path(f"{proc}/self/stat").is_file()
            and Path(f"{proc}/self/task/{tid}/children").is_file()
        )

    def read(self) -> JobFigures | None:
        """Sum the figures over the tree; processes that vanish mid-read are skipped."""
        with self._lock:
            rss_pages = 0
            cpu_ticks = 0
            seen: set[int] = set()
            stack = [self.pid]
            while stack:
                pid = stack.pop()
                if pid in seen:
                    continue
                data = self._pread(pid, 0, f"{self._proc}/{pid}/stat")
                if data is None:
                    if pid == self.pid:
                        return None
                    continue
                try:
                    # Fields after the parenthesised command name, from field 3 (state).
                    fields = data[data.rindex(b")") + 2 :].split()
                    cpu_ticks += sum(int(f) for f in fields[11:15])
                    rss_pages += int(fields[21])
                except (ValueError, IndexError):
                    continue
                seen.add(pid)
                stack.extend(self._children(pid))
            self._forget_except(seen)
            return JobFigures(rss_pages * self._page, cpu_ticks / self._ticks, len(seen))

    def close(self) -> None:
        """Close every descriptor kept open."""
        with self._lock:
            self._forget_except(set())

    # -- internals -----------------------------------------------------------------------
    def _children(self, pid: int) -> list[int]:
        try:
            tids = os.listdir(f"{self._proc}/{pid}/task")
        except OSError:
            return []
        live = {0, *(int(name) for name in tids)}
        cached = self._fds.get(pid, {})
        for tid in [tid for tid in cached if tid not in live]:  # threads that ended
            self._close(pid, tid)
        children: list[int] = []
        for name in tids:
            data = self._pread(pid, int(name), f"{self._proc}/{pid}/task/{name}/children")
            if data:
                children.extend(int(child) for child in data.split())
        return children

    def _pread(self, pid: int, tid: int, path: str) -> bytes | None:
        fd = self._fds.get(pid, {}).get(tid)
        if fd is not None:
            data = self._read_all(fd)
            if data is not None:
                return data
            # The process behind the cached descriptor is gone; its pid may be reused.
            self._close(pid, tid)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        data = self._read_all(fd)
        if data is not None and self._open < self._max_open:
            self._fds.setdefault(pid, {})[tid] = fd
            self._open += 1
        else:
            os.close(fd)
        return data

    def _close(self, pid: int, tid: int) -> None:
        by_tid = self._fds[pid]
        os.close(by_tid.pop(tid))
        self._open -= 1
        if not by_tid:
            del self._fds[pid]

    @staticmethod
    def _read_all(fd: int) -> bytes | None:
        try:
            data = os.pread(fd, _READ_SIZE, 0)
            while len(data) % _READ_SIZE == 0 and data:
                more = os.pread(fd, _READ_SIZE, len(data))
                if not more:
                    break
                data += more
        except OSError:
            return None
        return data

    def _forget_except(self, live: set[int]) -> None:
        for pid in [pid for pid in self._fds if pid not in live]:
            for tid in list(self._fds[pid]):
                self._close(pid, tid)


class PsutilJobReader:
    """The process tree's figures through psutil's cheap calls (any platform).

    Uses ``memory_info()`` and ``cpu_times()``, never ``memory_full_info()``. Finding the
    descendants scans the process table, so it costs more than :class:`ProcfsJobReader`.
    """

    def __init__(self, pid: int | None = None) -> None:
        self._process = psutil.Process(pid)

    def read(self) -> JobFigures | None:
        """Sum the figures over the tree; processes that vanish mid-read are skipped."""
        try:
            children = self._process.children(recursive=True)
        except psutil.Error:
            children = []
        rss = 0
        cpu = 0.0
        count = 0
        for process in [self._process, *children]:
            try:
                with process.oneshot():
                    memory = process.memory_info()
                    times = process.cpu_times()
            except psutil.Error:
                if process is self._process:
                    return None
                continue
            rss += memory.rss
            cpu += times.user + times.system + times.children_user + times.children_system
            count += 1
        return JobFigures(rss, cpu, count)

    def close(self) -> None:
        """Nothing to release; present for the :class:`JobReader` protocol."""


@dataclass(frozen=True)
class MachineFigures:
    """Memory used (percent), memory available (MiB) and swap used (percent); None: unread."""

    memory_percent: float | None
    available_mb: float | None
    swap_percent: float | None


def read_meminfo(fd: int) -> MachineFigures | None:
    """Parse an open ``/proc/meminfo``; ``None`` if it lacks the totals."""
    try:
        data = os.pread(fd, _READ_SIZE, 0)
    except OSError:
        return None
    kib: dict[bytes, int] = {}
    for line in data.splitlines():
        name, _, rest = line.partition(b":")
        if name in _MEMINFO_FIELDS:
            try:
                kib[name] = int(rest.split()[0])
            except (ValueError, IndexError):
                continue
    total = kib.get(b"MemTotal")
    if not total:
        return None
    available = kib.get(b"MemAvailable")
    if available is None:  # kernels before 3.14
        available = kib.get(b"MemFree", 0) + kib.get(b"Buffers", 0) + kib.get(b"Cached", 0)
    swap_total, swap_free = kib.get(b"SwapTotal"), kib.get(b"SwapFree")
    swap_percent = None
    if swap_total is not None and swap_free is not None:
        swap_percent = (swap_total - swap_free) / swap_total * 100.0 if swap_total else 0.0
    return MachineFigures((total - available) / total * 100.0, available / 1024.0, swap_percent)


_MEMINFO_FIELDS = frozenset(
    {b"MemTotal", b"MemAvailable", b"MemFree", b"Buffers", b"Cached", b"SwapTotal", b"SwapFree"}
)


def default_job_reader() -> JobReader:
    """:class:`ProcfsJobReader` where ``/proc`` allows it, :class:`PsutilJobReader` elsewhere."""
    if ProcfsJobReader.available():
        return ProcfsJobReader()
    return PsutilJobReader()


class UsageSampler:
    """Takes one :class:`ResourceUsage`: the job's figures plus the machine's.

    Args:
        disk_path: A directory on the filesystem whose space is watched.
        job_reader: Reads the job's process tree; :func:`default_job_reader` when ``None``.
    """

    def __init__(
        self,
        disk_path: Path,
        job_reader: JobReader | None = None,
        *,
        meminfo: str | None = "/proc/meminfo",
    ) -> None:
        self.disk_path = str(disk_path)
        self._job = default_job_reader() if job_reader is None else job_reader
        self._meminfo: int | None = None
        if meminfo is not None:
            try:
                self._meminfo = os.open(meminfo, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._meminfo = None
        self._cpu_lock = threading.Lock()
        self._cpu_ref: tuple[float, float] | None = None  # (monotonic time, cpu seconds)
        self._cpu_percent: float | None = None

    def sample(self) -> ResourceUsage:
        """Measure now; unreadable figures are ``None``."""
        timestamp = time.time()
        job = self._job.read()
        memory_mb = cpu_percent = process_count = None
        if job is not None:
            memory_mb = job.rss_bytes / MIB
            process_count = job.process_count
            cpu_percent = self._cpu(time.monotonic(), job.cpu_seconds)
        machine = self._machine()
        disk_percent = free_gb = None
        try:
            disk = psutil.disk_usage(self.disk_path)
            disk_percent, free_gb = disk.percent, disk.free / GIB
        except (OSError, psutil.Error) as exc:
            _log.debug("disk usage of %s not readable: %s", self.disk_path, exc)
        return ResourceUsage(
            timestamp=timestamp,
            memory_mb=memory_mb,
            process_count=process_count,
            cpu_percent=cpu_percent,
            system_memory_percent=machine.memory_percent if machine else None,
            system_available_mb=machine.available_mb if machine else None,
            swap_percent=machine.swap_percent if machine else None,
            disk_percent=disk_percent,
            disk_free_gb=free_gb,
        )

    def close(self) -> None:
        """Release the job reader's and ``/proc/meminfo``'s descriptors."""
        self._job.close()
        fd, self._meminfo = self._meminfo, None
        if fd is not None:
            os.close(fd)

    def _machine(self) -> MachineFigures | None:
        if self._meminfo is not None:
            return read_meminfo(self._meminfo)
        percent = available_mb = swap_percent = None
        try:
            memory = psutil.virtual_memory()
            percent, available_mb = memory.percent, memory.available / MIB
        except (OSError, psutil.Error) as exc:
            _log.debug("system memory not readable: %s", exc)
        try:
            swap_percent = psutil.swap_memory().percent
        except (OSError, psutil.Error) as exc:
            _log.debug("swap not readable: %s", exc)
        return MachineFigures(percent, available_mb, swap_percent)

    def _cpu(self, now: float, cpu_seconds: float) -> float | None:
        with self._cpu_lock:
            if self._cpu_ref is None:
                self._cpu_ref = (now, cpu_seconds)
                return None
            then, cpu_then = self._cpu_ref
            if now - then >= _MIN_CPU_SPAN:
                # A child re-parented away takes its time with it: never report negative use.
                self._cpu_percent = max(0.0, (cpu_seconds - cpu_then) / (now - then) * 100.0)
                self._cpu_ref = (now, cpu_seconds)
            return self._cpu_percent
