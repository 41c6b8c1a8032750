"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

# One OpenMP thread in the test process: the HEALPix transforms of some tests would otherwise
# leave GNU OpenMP threads behind, and process pools started later in the same session would
# then start afresh instead of forking (runner/_fork_guard.py), so a test's speed and its
# start method would depend on which tests ran before it. The guard's own tests set
# OMP_NUM_THREADS for the processes they start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--memory-limit-mb``: run the tests as a job with a memory limit would run."""
    parser.addoption(
        "--memory-limit-mb",
        type=float,
        default=None,
        help="set a soft RLIMIT_RSS of this many MiB for the tests and every process they "
        "start: the job's memory limit as the ResourceManager reads it, as under a SLURM "
        "job's cgroup (Linux does not enforce it; nothing is killed)",
    )


def pytest_configure(config: pytest.Config) -> None:
    limit = config.getoption("--memory-limit-mb")
    if limit is None:
        return
    import resource  # POSIX only, as the option

    _, hard = resource.getrlimit(resource.RLIMIT_RSS)
    soft = int(limit * 2**20)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_RSS, (soft, hard))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's LENSING_SSC_* variables from changing what tests see."""
    for name in list(os.environ):
        if name.startswith("LENSING_SSC_"):
            monkeypatch.delenv(name)


class ChildProcesses:
    """Subprocesses a test starts; any still running when the test ends is killed and reaped."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[Any]] = []

    def start(self, args: list[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``args`` with :class:`subprocess.Popen` and keep it for the clean-up."""
        proc = subprocess.Popen(args, **popen_kwargs)
        self._started.append(proc)
        return proc

    @staticmethod
    def sigkill(proc: subprocess.Popen[Any]) -> None:
        """Kill ``proc`` with SIGKILL and check that this is how it ended."""
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL

    def close(self) -> None:
        for proc in self._started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def children() -> Iterator[ChildProcesses]:
    """Start subprocesses that never outlive the test."""
    started = ChildProcesses()
    try:
        yield started
    finally:
        started.close()


def _wait_for_patches(run_dir: Path, count: int, proc: subprocess.Popen[str]) -> None:
    """Wait until the run's log shows ``count`` measured patches (the process still running)."""
    log = run_dir / "logs" / "lensing_ssc.log"
    deadline = time.monotonic() + 90
    while True:
        # Bytes: a read may end inside a character the writer has not finished.
        text = log.read_bytes() if log.exists() else b""
        if text.count(b'"step":"statistics"') >= count:
            return
        assert proc.poll() is None, f"the run ended before it could be stopped: {proc.stderr}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)


@pytest.fixture
def wait_for_patches() -> Callable[[Path, int, subprocess.Popen[str]], None]:
    """Waits until a ``lensing-ssc run`` subprocess has measured some patches, for a signal."""
    return _wait_for_patches


def _measured_patches(run_dir: Path, offset: int = 0) -> list[str]:
    """The patch keys the run's JSON log says were measured, from byte ``offset`` on.

    One ``patch <key> measured in ...`` record per execution of a patch (DEBUG level), from
    whichever worker ran it: counting them counts executions.
    """
    log = run_dir / "logs" / "lensing_ssc.log"
    with log.open("rb") as stream:
        stream.seek(offset)
        lines = stream.read().decode().splitlines()
    keys = []
    for line in filter(None, lines):
        message = json.loads(line)["message"]
        if message.startswith("patch ") and " measured in " in message:
            keys.append(message.split()[1])
    return keys


@pytest.fixture
def measured_patches() -> Callable[..., list[str]]:
    """``measured_patches(run_dir, offset=0)``: the patch keys a run's log says were measured."""
    return _measured_patches


def _same_numbers(path: Path, reference: Path) -> None:
    """Assert two results files hold the same arrays, byte for byte (``meta/`` aside)."""
    from lensing_ssc.pipelines import read_results

    got, expected = read_results(path), read_results(reference)
    names = sorted(k for k in expected if not k.startswith("meta/"))
    assert names == sorted(k for k in got if not k.startswith("meta/"))
    for name in names:
        a, b = np.asarray(got[name]), np.asarray(expected[name])
        assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes()), name


@pytest.fixture
def same_numbers() -> Callable[[Path, Path], None]:
    """``same_numbers(path, reference)``: two results files' arrays are byte-identical."""
    return _same_numbers
