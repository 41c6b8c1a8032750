"""What one sample measures: the job's process tree (not the machine), its CPU, and skips.

Real child processes allocate memory and burn CPU; the readers must count them, must not
crash when they vanish, and must never use psutil's slow ``memory_full_info``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from lensing_ssc.processing.managers.resource._sampling import (
    JobFigures,
    ProcfsJobReader,
    PsutilJobReader,
    UsageSampler,
    default_job_reader,
)

MIB = 1 << 20
needs_procfs = pytest.mark.skipif(not ProcfsJobReader.available(), reason="needs Linux /proc")

HOLDER = textwrap.dedent(
    """
    import subprocess, sys
    import numpy as np
    depth, mib = int(sys.argv[1]), int(sys.argv[2])
    block = np.ones(mib << 17)  # mib MiB of float64, every page touched
    if depth > 1:
        code = sys.argv[3]
        child = subprocess.Popen([sys.executable, "-c", code, str(depth - 1), str(mib), code],
                                 stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        child.stdout.readline()
    print("ready", flush=True)
    sys.stdin.readline()
    """
)


def start_holders(depth: int, mib: int) -> subprocess.Popen[bytes]:
    """A chain of ``depth`` processes (child, grandchild, ...) each holding ``mib`` MiB."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(depth), str(mib), HOLDER],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """Release a holder chain and reap it."""
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.close()
    process.wait(timeout=30)
    process.stdout.close()


@needs_procfs
def test_procfs_reader_counts_children_and_grandchildren() -> None:
    """Memory held by a child and a grandchild is part of the job's memory and process count."""
    reader = ProcfsJobReader()
    try:
        before = reader.read()
        assert before is not None
        holders = start_holders(depth=2, mib=120)
        try:
            during = reader.read()
        finally:
            stop(holders)
        after = reader.read()
    finally:
        reader.close()
    assert during is not None
    assert after is not None
    assert during.process_count == before.process_count + 2
    assert during.rss_bytes - before.rss_bytes >= 2 * 110 * MIB
    assert after.process_count == before.process_count
    assert after.rss_bytes < during.rss_bytes - 200 * MIB


@needs_procfs
def test_procfs_and_psutil_readers_agree_with_psutil_itself() -> None:
    """Both readers report the tree's resident memory that psutil's own calls add up to."""
    me = psutil.Process()
    # Children that outlive tests (multiprocessing's resource tracker, once anything used
    # spawn) are part of the tree too; the holder must add exactly one process to it.
    others = len(me.children(recursive=True))
    holders = start_holders(depth=1, mib=64)
    procfs, portable = ProcfsJobReader(), PsutilJobReader()
    try:
        tree = [me, *me.children(recursive=True)]
        expected = sum(process.memory_info().rss for process in tree)
        fast, slow = procfs.read(), portable.read()
    finally:
        stop(holders)
        procfs.close()
    assert fast is not None
    assert slow is not None
    assert fast.process_count == slow.process_count == len(tree) == others + 2
    assert fast.rss_bytes == pytest.approx(expected, rel=0.05)
    assert slow.rss_bytes == pytest.approx(expected, rel=0.05)


@needs_procfs
def test_children_vanishing_mid_sampling_never_crash_the_reader() -> None:
    """Short-lived children started and reaped while sampling are skipped, never raised."""
    reader = ProcfsJobReader()
    done = threading.Event()

    def churn() -> None:
        while not done.is_set():
            subprocess.run(["true"], check=True)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        results = [reader.read() for _ in range(300)]
    finally:
        done.set()
        thread.join()
        reader.close()
    assert all(isinstance(result, JobFigures) for result in results)
    assert all(result is not None and result.process_count >= 1 for result in results)


@needs_procfs
def test_descriptors_follow_threads_and_are_all_released_on_close() -> None:
    """Threads that come and go leave no descriptors behind, and close() releases them all."""

    def open_fds() -> int:
        # Only descriptors on procfs files, the reader's kind: files of earlier tests that the
        # garbage collector happens to close meanwhile must not change the count.
        targets = []
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # the listing's own descriptor, now closed
                targets.append(os.readlink(f"/proc/self/fd/{name}"))
        return sum(target.startswith("/proc/") for target in targets)

    def wait_until_exited(threads: list[threading.Thread]) -> None:
        # join() returns before the kernel removes the thread from /proc/self/task; a read in
        # between rightly keeps a descriptor for the still-listed thread.
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/self/task/{thread.native_id}").exists() for thread in threads):
            assert time.monotonic() < deadline, "joined threads still listed after 10 s"
            time.sleep(0.001)

    before = open_fds()
    reader = ProcfsJobReader()
    reader.read()
    steady = open_fds()
    assert steady > before
    for _ in range(20):
        done = threading.Event()
        threads = [threading.Thread(target=done.wait) for _ in range(5)]
        for thread in threads:
            thread.start()
        reader.read()
        assert open_fds() >= steady + 5
        done.set()
        for thread in threads:
            thread.join()
    wait_until_exited(threads)
    reader.read()
    assert open_fds() == steady
    reader.close()
    assert open_fds() == before


@needs_procfs
def test_reader_of_a_process_that_is_gone_returns_none() -> None:
    """A reader whose root process has exited reports nothing instead of raising."""
    process = subprocess.Popen(["true"])
    process.wait()
    reader = ProcfsJobReader(process.pid)
    assert reader.read() is None


@pytest.mark.parametrize("reader_type", [ProcfsJobReader, PsutilJobReader])
def test_cpu_time_of_children_counts_while_alive_and_after_reaping(reader_type) -> None:
    """A child's CPU seconds count while it runs and stay counted once it is reaped."""
    if reader_type is ProcfsJobReader and not ProcfsJobReader.available():
        pytest.skip("needs Linux /proc")
    reader = reader_type()
    burner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "while time.process_time() < 0.4: pass\n"
            "print('burnt', flush=True); sys.stdin.readline()",
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
    )
    try:
        before = reader.read()
        assert burner.stdout is not None
        assert burner.stdout.readline() == b"burnt\n"
        alive = reader.read()
    finally:
        stop(burner)
    reaped = reader.read()
    reader.close()
    assert before is not None
    assert alive is not None
    assert reaped is not None
    assert alive.cpu_seconds - before.cpu_seconds >= 0.3
    assert reaped.cpu_seconds >= alive.cpu_seconds - 0.02


def test_sampler_reports_cpu_percent_of_the_job_from_the_second_sample(tmp_path: Path) -> None:
    """The first sample has no CPU figure; a busy job shows a CPU percent after that."""
    sampler = UsageSampler(tmp_path)
    try:
        first = sampler.sample()
        deadline = time.process_time() + 0.15
        while time.process_time() < deadline:
            pass
        second = sampler.sample()
    finally:
        sampler.close()
    assert first.cpu_percent is None
    assert second.cpu_percent is not None
    assert second.cpu_percent > 20


def test_sampler_measures_the_job_not_the_machine(tmp_path: Path) -> None:
    """memory_mb is the resident memory of this process tree, not the machine's used memory."""
    sampler = UsageSampler(tmp_path)
    try:
        usage = sampler.sample()
    finally:
        sampler.close()
    me = psutil.Process()
    # The tree may hold children that outlive tests (multiprocessing's resource tracker).
    job = sum(process.memory_info().rss for process in [me, *me.children(recursive=True)])
    assert usage.memory_mb == pytest.approx(job / MIB, rel=0.1)
    machine_used = psutil.virtual_memory().used / MIB
    assert usage.memory_mb < machine_used
    assert usage.disk_free_gb is not None
    assert usage.disk_free_gb > 0
    assert usage.system_memory_percent is not None
    assert usage.system_available_mb is not None


@pytest.mark.parametrize("error", [psutil.AccessDenied(), OSError(5, "I/O error")])
def test_failing_disk_usage_skips_only_disk_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: Exception
) -> None:
    """A failing psutil.disk_usage leaves the disk figures None and the others measured."""

    def broken(path):
        raise error

    monkeypatch.setattr(psutil, "disk_usage", broken)
    sampler = UsageSampler(tmp_path)
    try:
        usage = sampler.sample()
    finally:
        sampler.close()
    assert (usage.disk_percent, usage.disk_free_gb) == (None, None)
    assert usage.memory_mb is not None
    assert usage.system_memory_percent is not None


@pytest.mark.parametrize(
    ("function", "skipped"),
    [
        ("virtual_memory", ("system_memory_percent", "system_available_mb")),
        ("swap_memory", ("swap_percent",)),
    ],
)
def test_psutil_fallback_failing_call_skips_only_its_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, function: str, skipped: tuple[str, ...]
) -> None:
    """Without /proc/meminfo, a failing psutil call leaves only its own figures None."""

    def broken():
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, function, broken)
    sampler = UsageSampler(tmp_path, meminfo=None)
    try:
        view = sampler.sample().to_dict()
    finally:
        sampler.close()
    assert all(view[name] is None for name in skipped)
    others = {"memory_mb", "disk_free_gb", "system_memory_percent", "swap_percent"} - set(skipped)
    assert all(view[name] is not None for name in others)


MEMINFO = """\
MemTotal:       16000000 kB
MemFree:         2000000 kB
MemAvailable:   12000000 kB
Buffers:          100000 kB
Cached:          3000000 kB
SwapTotal:       4000000 kB
SwapFree:        3000000 kB
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MEMINFO, (25.0, 12000000 / 1024, 25.0)),
        (  # an old kernel without MemAvailable: free + buffers + cache
            MEMINFO.replace("MemAvailable:   12000000 kB\n", ""),
            (100 - 5100000 / 160000, 5100000 / 1024, 25.0),
        ),
        (  # no swap configured
            MEMINFO.replace("SwapTotal:       4000000 kB", "SwapTotal: 0 kB").replace(
                "SwapFree:        3000000 kB", "SwapFree: 0 kB"
            ),
            (25.0, 12000000 / 1024, 0.0),
        ),
        (MEMINFO.replace("SwapFree:        3000000 kB\n", ""), (25.0, 12000000 / 1024, None)),
        ("MemTotal: lots\nSwapTotal:\n", None),
        ("", None),
    ],
)
def test_meminfo_figures(tmp_path: Path, text: str, expected) -> None:
    """Machine memory and swap come from /proc/meminfo; garbled or missing lines are skipped."""
    path = tmp_path / "meminfo"
    path.write_text(text)
    sampler = UsageSampler(tmp_path, meminfo=str(path))
    try:
        usage = sampler.sample()
    finally:
        sampler.close()
    figures = (usage.system_memory_percent, usage.system_available_mb, usage.swap_percent)
    if expected is None:
        assert figures == (None, None, None)
    else:
        assert figures == pytest.approx(expected)


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="needs /proc/meminfo")
def test_meminfo_agrees_with_psutil_and_never_warns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Our figures match psutil's, and sampling never warns where psutil.swap_memory does."""
    sampler = UsageSampler(tmp_path)
    try:
        usage = sampler.sample()
    finally:
        sampler.close()
    assert usage.system_memory_percent == pytest.approx(psutil.virtual_memory().percent, abs=2)
    assert usage.swap_percent == pytest.approx(psutil.swap_memory().percent, abs=2)
    # A procfs without /proc/vmstat (some containers): psutil warns on every call ...
    fake_proc = tmp_path / "proc"
    fake_proc.mkdir()
    (fake_proc / "meminfo").write_text(Path("/proc/meminfo").read_text())
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(fake_proc))
    with pytest.warns(RuntimeWarning, match="swap memory stats couldn't be determined"):
        psutil.swap_memory()
    # ... and a sampler reading that meminfo does not (warnings are errors in this suite).
    sampler = UsageSampler(tmp_path, meminfo=str(fake_proc / "meminfo"))
    try:
        assert sampler.sample().swap_percent is not None
    finally:
        sampler.close()


def test_unreadable_job_leaves_job_figures_none(tmp_path: Path) -> None:
    """A job reader that cannot read even this process gives no memory or CPU, no crash."""

    class Unreadable:
        def read(self) -> None:
            return None

        def close(self) -> None:
            return None

    sampler = UsageSampler(tmp_path, job_reader=Unreadable())
    try:
        usage = sampler.sample()
    finally:
        sampler.close()
    assert (usage.memory_mb, usage.cpu_percent, usage.process_count) == (None, None, None)
    assert usage.disk_free_gb is not None


def test_readers_never_call_memory_full_info(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Sampling never uses psutil's memory_full_info, whose cost grows with the process."""

    def forbidden(self):
        raise AssertionError("memory_full_info walks every mapping and must not be used")

    monkeypatch.setattr(psutil.Process, "memory_full_info", forbidden)
    for reader in (default_job_reader(), PsutilJobReader()):
        sampler = UsageSampler(tmp_path, job_reader=reader)
        assert sampler.sample().memory_mb is not None
        sampler.close()
