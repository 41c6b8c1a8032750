"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


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
